"""Reading texts (and the columns that travel with them) from .txt, .csv, .tsv, .jsonl or stdin."""

from embedx.inputs.readers import InputSpec, Record, read_records

__all__ = ["InputSpec", "Record", "read_records"]
