"""Turn an input file into records: the text to embed, its line, and the other columns."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from embedx.errors import InputError
from embedx.inputs.decoding import EncodingErrors, decoded_lines, strip_newline

Format = Literal["txt", "csv", "tsv", "jsonl"]
FORMATS: tuple[str, ...] = ("txt", "csv", "tsv", "jsonl")
_SUFFIXES = {".txt": "txt", ".text": "txt", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
             ".ndjson": "jsonl"}


@dataclass
class Record:
    text: str
    line: int
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass
class InputSpec:
    """Where texts come from and how to read them."""

    path: str
    format: str | None = None
    text_field: str = "text"
    encoding_errors: EncodingErrors = "strict"

    @property
    def source(self) -> str:
        return "<stdin>" if self.path == "-" else self.path

    @property
    def resolved_format(self) -> str:
        if self.format:
            if self.format not in FORMATS:
                raise InputError(f"--format {self.format!r}: choose one of {', '.join(FORMATS)}")
            return self.format
        if self.path == "-":
            return "txt"
        suffix = Path(self.path).suffix.lower()
        if suffix not in _SUFFIXES:
            raise InputError(f"{self.path}: cannot tell the format from {suffix or 'no suffix'!r}; "
                             f"pass --format ({', '.join(FORMATS)})")
        return _SUFFIXES[suffix]

    @property
    def default_name(self) -> str:
        return "stdin" if self.path == "-" else Path(self.path).stem


@contextmanager
def _open(spec: InputSpec) -> Iterator[BinaryIO]:
    if spec.path == "-":
        yield sys.stdin.buffer
        return
    path = Path(spec.path)
    if not path.exists():
        raise InputError(f"{path}: no such input file")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a .txt, .csv, .tsv or .jsonl file")
    with open(path, "rb") as handle:
        yield handle


def read_records(spec: InputSpec) -> tuple[list[Record], list[str]]:
    """All records of the input, and the names of the columns kept beside the text."""
    fmt = spec.resolved_format
    with _open(spec) as handle:
        lines = decoded_lines(handle, spec.source, spec.encoding_errors)
        if fmt == "txt":
            return [Record(strip_newline(text), number) for number, text in lines], []
        if fmt == "jsonl":
            return _read_jsonl(lines, spec)
        return _read_delimited(lines, spec, "," if fmt == "csv" else "\t")


def _read_delimited(lines: Iterator[tuple[int, str]], spec: InputSpec, delimiter: str) -> tuple[list[Record], list[str]]:
    csv.field_size_limit(sys.maxsize)
    current = [0]

    def texts() -> Iterator[str]:
        for number, text in lines:
            current[0] = number
            yield text

    reader = csv.reader(texts(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{spec.source}: empty file, expected a header row") from None
    except csv.Error as exc:
        raise InputError(f"{spec.source}, line {current[0]}: {exc}") from None
    if spec.text_field not in header:
        raise InputError(f"{spec.source}: no column {spec.text_field!r} (columns: {', '.join(header)}); "
                         "choose one with --text-column")
    text_at = header.index(spec.text_field)
    others = [(i, name) for i, name in enumerate(header) if i != text_at]
    records = []
    while True:
        start = current[0] + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"{spec.source}, line {current[0]}: {exc}") from None
        if not row:
            continue  # a blank physical line is not a record in CSV
        if len(row) != len(header):
            raise InputError(f"{spec.source}, line {start}: {len(row)} fields, but the header has {len(header)}")
        records.append(Record(row[text_at], start, {name: row[i] for i, name in others}))
    return records, [name for _, name in others]


def _read_jsonl(lines: Iterator[tuple[int, str]], spec: InputSpec) -> tuple[list[Record], list[str]]:
    records, columns = [], {}
    for number, text in lines:
        if not text.strip():
            continue  # blank lines separate nothing in JSON Lines; they are not records
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{spec.source}, line {number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{spec.source}, line {number}: expected a JSON object, got {type(obj).__name__}")
        if spec.text_field not in obj:
            raise InputError(f"{spec.source}, line {number}: no field {spec.text_field!r} "
                             f"(fields: {', '.join(obj) or 'none'}); choose one with --text-field")
        value = obj.pop(spec.text_field)
        if not isinstance(value, str):
            raise InputError(f"{spec.source}, line {number}: field {spec.text_field!r} is "
                             f"{type(value).__name__}, expected a string")
        if "\x00" in value and spec.encoding_errors == "strict":
            raise InputError(f"{spec.source}, line {number}: NUL character in field {spec.text_field!r}; "
                             "pass --encoding-errors replace or ignore")
        value = value.replace("\x00", "\ufffd" if spec.encoding_errors == "replace" else "")
        row = {k: v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v) for k, v in obj.items()}
        for key in row:
            columns.setdefault(key, None)
        records.append(Record(value, number, row))
    return records, list(columns)
