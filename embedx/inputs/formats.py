"""Turn an input file into records: the text to embed, its line, and the other columns."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from embedx.contract.errors import InputError
from embedx.inputs.decoding import EncodingErrors, decoded_lines, strip_newline
from embedx.inputs.text_checks import check_column_names, clean_string, is_blank

Format = Literal["txt", "csv", "tsv", "jsonl"]
FORMATS: tuple[str, ...] = ("txt", "csv", "tsv", "jsonl")
_SUFFIXES = {".txt": "txt", ".text": "txt", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
             ".ndjson": "jsonl"}


@dataclass
class Record:
    text: str
    line: int
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing to embed: whitespace, separators or zero-width/format characters only."""
        return is_blank(self.text)


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


class RecordStream:
    """The records of one input, read lazily in one pass; ``columns`` is known before the first.

    Use it as a context manager (or exhaust it) so the file is closed. Every check that could
    otherwise fail when the input table is written happens here, naming the line: strings
    must be storable as UTF-8, column names must stay distinct once made safe for HDF5.
    """

    def __init__(self, spec: InputSpec):
        self.spec = spec
        self.format = spec.resolved_format
        self._stack = ExitStack()
        self._records: Iterator[Record]
        try:
            handle = self._stack.enter_context(_open(spec))
            if self.format == "jsonl":
                handle = self._rewindable(handle)
                self.columns = _jsonl_columns(handle, spec)
                handle.seek(0)
            lines = decoded_lines(handle, spec.source, spec.encoding_errors)
            if self.format == "txt":
                self.columns, self._records = [], (Record(strip_newline(t), n) for n, t in lines)
            elif self.format == "jsonl":
                self._records = _jsonl_records(lines, spec)
            else:
                self.columns, self._records = _delimited(lines, spec, "," if self.format == "csv" else "\t")
            check_column_names(self.columns, spec.source)
        except BaseException:
            self._stack.close()
            raise

    def _rewindable(self, handle: BinaryIO) -> BinaryIO:
        """JSON Lines need two passes (the columns are every field seen); stdin is spooled to disk."""
        if handle.seekable():
            return handle
        spool = self._stack.enter_context(tempfile.TemporaryFile())
        shutil.copyfileobj(handle, spool)
        spool.seek(0)
        return spool

    def __iter__(self) -> Iterator[Record]:
        return self

    def __next__(self) -> Record:
        try:
            return next(self._records)
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> RecordStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def iter_records(spec: InputSpec) -> RecordStream:
    """Stream the records of ``spec`` in bounded memory; ``stream.columns`` lists the other columns."""
    return RecordStream(spec)


def read_records(spec: InputSpec) -> tuple[list[Record], list[str]]:
    """All records of the input, and the names of the columns kept beside the text."""
    with iter_records(spec) as stream:
        return list(stream), stream.columns


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


def _delimited(lines: Iterator[tuple[int, str]], spec: InputSpec, delimiter: str) -> tuple[list[str], Iterator[Record]]:
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

    def records() -> Iterator[Record]:
        while True:
            start = current[0] + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(f"{spec.source}, line {current[0]}: {exc}") from None
            if not row:
                continue  # a blank physical line is not a record in CSV
            if len(row) != len(header):
                raise InputError(f"{spec.source}, line {start}: {len(row)} fields, but the header has {len(header)}")
            yield Record(row[text_at], start, {name: row[i] for i, name in others})

    return [name for _, name in others], records()


class JsonNumber(str):
    """A JSON number kept as the text the input wrote, where Python's number would lose or refuse it.

    Integers too long for Python's int-string conversion limit (or for any column type), numbers
    that overflow a float (``1e999``), and the ``NaN`` / ``Infinity`` / ``-Infinity`` literals
    Python's parser accepts become their text: a column value as written, never a traceback, and
    never taken for a text to embed.
    """


#: integers with more digits than this stay text (int64 has 19; Python refuses past 4,300)
MAX_INT_DIGITS = 64


def _parse_int(text: str) -> int | JsonNumber:
    return int(text) if len(text) <= MAX_INT_DIGITS else JsonNumber(text)


def _parse_float(text: str) -> float | JsonNumber:
    number = float(text)
    return number if math.isfinite(number) else JsonNumber(text)


def _load_json(text: str) -> Any:
    return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=JsonNumber)


def _jsonl_objects(lines: Iterator[tuple[int, str]], spec: InputSpec) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in lines:
        if not text.strip():
            continue  # blank lines separate nothing in JSON Lines; they are not records
        try:
            obj = _load_json(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise InputError(f"{spec.source}, line {number}: invalid JSON ({why})") from None
        except (ValueError, OverflowError, MemoryError) as exc:  # anything else the parser can refuse
            raise InputError(f"{spec.source}, line {number}: invalid JSON ({type(exc).__name__}: "
                             f"{str(exc)[:200]})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{spec.source}, line {number}: expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def _field_name(name: str, number: int, spec: InputSpec) -> str:
    return clean_string(name, f"{spec.source}, line {number}, the name of field {name!r}", spec.encoding_errors)


def _jsonl_columns(handle: BinaryIO, spec: InputSpec) -> list[str]:
    """Every field other than the text, in order of first appearance (a first, cheap pass)."""
    columns: dict[str, None] = {}
    for number, obj in _jsonl_objects(decoded_lines(handle, spec.source, spec.encoding_errors), spec):
        for key in obj:
            if key != spec.text_field:
                columns.setdefault(_field_name(key, number, spec), None)
    return list(columns)


def _jsonl_records(lines: Iterator[tuple[int, str]], spec: InputSpec) -> Iterator[Record]:
    errors = spec.encoding_errors
    for number, obj in _jsonl_objects(lines, spec):
        if spec.text_field not in obj:
            raise InputError(f"{spec.source}, line {number}: no field {spec.text_field!r} "
                             f"(fields: {', '.join(obj) or 'none'}); choose one with --text-field")
        value = obj.pop(spec.text_field)
        if not isinstance(value, str) or isinstance(value, JsonNumber):
            kind = "a number" if isinstance(value, JsonNumber) else type(value).__name__
            raise InputError(f"{spec.source}, line {number}: field {spec.text_field!r} is "
                             f"{kind}, expected a string")
        value = clean_string(value, f"{spec.source}, line {number}, field {spec.text_field!r}", errors)
        row = {}
        for key, v in obj.items():
            where = f"{spec.source}, line {number}, field {key!r}"
            if isinstance(v, (list, dict)):
                v = _json_text(v)  # lists and objects are kept as their JSON text
            elif isinstance(v, JsonNumber):
                v = str(v)  # a number Python cannot hold as written: kept as its text
            if isinstance(v, str):
                v = clean_string(v, where, errors)
            row[_field_name(key, number, spec)] = v
        yield Record(value, number, row)


def _json_text(value: Any) -> str:
    """A list or object as JSON text, with numbers as the input wrote them (iterative: any nesting the
    parser accepted is written back, with no recursion limit to hit)."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Literal):
            parts.append(item.text)
        elif isinstance(item, dict):
            todo: list[Any] = [_Literal("{")]
            for i, (k, v) in enumerate(item.items()):
                todo += [_Literal((", " if i else "") + json.dumps(k) + ": "), v]
            stack += reversed([*todo, _Literal("}")])
        elif isinstance(item, list):
            todo = [_Literal("[")]
            for i, v in enumerate(item):
                todo += [_Literal(", "), v] if i else [v]
            stack += reversed([*todo, _Literal("]")])
        elif isinstance(item, JsonNumber):
            parts.append(str(item))
        else:
            parts.append(json.dumps(item))
    return "".join(parts)


class _Literal:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text
