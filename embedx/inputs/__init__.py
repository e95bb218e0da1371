"""Reading texts (and the columns that travel with them) from .txt, .csv, .tsv, .jsonl or stdin."""

from embedx.inputs.columns import typed_column
from embedx.inputs.formats import InputSpec, Record, RecordStream, iter_records, read_records
from embedx.inputs.text_checks import is_blank

__all__ = ["InputSpec", "Record", "RecordStream", "is_blank", "iter_records", "read_records", "typed_column"]
