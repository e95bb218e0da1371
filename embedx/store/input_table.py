"""An input file's rows, written as they stream past: keys in input order, text, flags, typed columns.

Rows go to input pieces (segments) a chunk at a time, so the table never has to fit in memory.
A column is stored as integers or floats when every value of the whole input is one (as text or
number), as text otherwise; that is only known at the end, so pieces keep the text and the
final piece holds the typed copy. Everything HDF5 could refuse at commit (text that is not
valid Unicode, such as a lone surrogate) is refused here, naming the line, before it is staged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedx.errors import InputError
from embedx.inputs import Record
from embedx.store import layout as L
from embedx.store.catalog import InputState
from embedx.store.segment import SegmentInfo, now, open_segment, write_input_final, write_input_piece

INT64 = (-(2**63), 2**63 - 1)


def check_unicode(value: str, source: str, line: int, what: str) -> None:
    """Refuse text HDF5 cannot store as UTF-8 (lone surrogates), naming the line and character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{source}, line {line}: {what} holds {value[exc.start]!r} (U+{ord(value[exc.start]):04X}) "
                         f"at character {exc.start}, a lone surrogate that is not valid Unicode; fix the input") from None


class _Column:
    """Per column: whether every value so far is an int / a float, and a hash of its values."""

    def __init__(self, index: int, name: str, rows_before: int):
        self.index, self.name = index, name
        self.can_int = self.can_float = rows_before == 0
        self.hash = hashlib.sha256()
        self.hash.update(b"\0" * rows_before)
        self.rows_before = rows_before  # rows of the input before this column first appeared

    def values(self, raw: list[Any]) -> np.ndarray:
        texts = []
        for value in raw:
            if self.can_int and not _fits(value, int):
                self.can_int = False
            if self.can_float and not _fits(value, float):
                self.can_float = False
            text = "" if value is None else str(value)
            self.hash.update(text.encode("utf-8") + b"\0")
            texts.append(text)
        return np.array(texts, dtype=object)

    @property
    def kind(self) -> str:
        return "int" if self.can_int else "float" if self.can_float else "str"


class InputTableWriter:
    """Streams one input table into pieces of generation ``generation``; :meth:`finish` writes the final piece."""

    def __init__(self, directory: Path, name: str, generation: int, source: str, store_text: bool,
                 columns: Sequence[str] = ()):
        self.directory, self.name, self.generation = directory, name, generation
        self.source, self.store_text = source, store_text
        self.pieces: list[SegmentInfo] = []
        self.rows = 0
        self.columns: dict[str, _Column] = {}
        self.hashes = {k: hashlib.sha256() for k in (L.KEYS, L.EMPTY, L.LINE, L.TEXT)}
        for column in columns:
            self._column(column)

    def _column(self, name: str) -> _Column:
        if name not in self.columns:
            check_unicode(name, self.source, 1, "a column name")
            self.columns[name] = _Column(len(self.columns), name, self.rows)
        return self.columns[name]

    def append(self, records: Sequence[Record], keys: np.ndarray) -> None:
        """Add a chunk of rows (``keys``: their ``S32`` content keys)."""
        if not records:
            return
        for record in records:
            check_unicode(record.text, self.source, record.line, "the text")
            for column, value in record.columns.items():
                self._column(column)
                if isinstance(value, str):
                    check_unicode(value, self.source, record.line, f"column {column!r}")
        arrays: dict[str, np.ndarray] = {
            L.KEYS: np.asarray(keys, dtype=L.KEY_DTYPE),
            L.EMPTY: np.array([not r.text.strip() for r in records], dtype=bool),
            L.LINE: np.array([r.line for r in records], dtype=np.int64),
        }
        for key in (L.KEYS, L.EMPTY, L.LINE):
            self.hashes[key].update(arrays[key].tobytes())
        if self.store_text:
            arrays[L.TEXT] = np.array([r.text for r in records], dtype=object)
        for record in records:
            self.hashes[L.TEXT].update(record.text.encode("utf-8") + b"\0")
        for column in self.columns.values():
            arrays[f"{L.RAW}/{column.index}"] = column.values([r.columns.get(column.name) for r in records])
        self.pieces.append(write_input_piece(self.directory, self.name, self.generation, len(self.pieces), arrays,
                                             self.store_text))
        self.rows += len(records)

    def finish(self) -> InputState:
        """Write the final piece (typed columns, metadata, digest) and return the table's state."""
        if not self.pieces:  # an empty input still gets a (zero-row) table, as before
            self.pieces.append(write_input_piece(self.directory, self.name, self.generation, 0,
                                                 self._empty_arrays(), self.store_text))
        typed, kinds = {}, {}
        for column in self.columns.values():
            kinds[str(column.index)] = column.kind
            if column.kind != "str" or column.rows_before:
                values = self._read_column(column)
                typed[str(column.index)] = _typed(values, column.kind) if column.kind != "str" else values
                if column.kind == "int" and typed[str(column.index)] is None:
                    kinds[str(column.index)] = "str"  # integers beyond int64: kept as text
                    typed.pop(str(column.index))
                if column.kind == "str":
                    kinds[str(column.index)] = "final-str"
        meta = {"source": self.source, "columns": list(self.columns), "text_stored": self.store_text,
                "typed": kinds, "digest": self.digest(kinds)}
        final = write_input_final(self.directory, self.name, self.generation, len(self.pieces), self.rows, meta,
                                  {k: v for k, v in typed.items()})
        return InputState(self.name, meta, self.pieces, final, created=now())

    def digest(self, kinds: dict[str, str]) -> str:
        """A hash of the whole table, so re-running the same input does not replace it."""
        total = hashlib.sha256()
        for key in sorted(self.hashes):
            total.update(key.encode() + self.hashes[key].digest())
        for column in self.columns.values():
            total.update(column.name.encode() + kinds[str(column.index)].encode() + column.hash.digest())
        total.update(str(self.store_text).encode())
        return total.hexdigest()

    def _empty_arrays(self) -> dict[str, np.ndarray]:
        arrays = {L.KEYS: np.zeros(0, dtype=L.KEY_DTYPE), L.EMPTY: np.zeros(0, dtype=bool),
                  L.LINE: np.zeros(0, dtype=np.int64), L.TEXT: np.zeros(0, dtype=object)}
        for column in self.columns.values():
            arrays[f"{L.RAW}/{column.index}"] = np.zeros(0, dtype=object)
        return arrays

    def _read_column(self, column: _Column) -> np.ndarray:
        """A column's text over the whole input ("" before it first appeared), read back from the pieces."""
        parts = [np.array([""] * column.rows_before, dtype=object)]
        for piece in self.pieces:
            with open_segment(self.directory / piece.file) as handle:
                dataset = f"{L.RAW}/{column.index}"
                if dataset in handle:
                    parts.append(np.array(handle[dataset].asstr()[:], dtype=object))
        return np.concatenate(parts)


def _fits(value: Any, kind: type) -> bool:
    try:
        _number(value, kind)
        return True
    except (TypeError, ValueError, OverflowError):
        return False


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or value is None:
        raise TypeError
    if isinstance(value, str):
        value = value.strip()
        if kind is int and not value.lstrip("+-").isdigit():
            raise ValueError
    elif kind is int and not isinstance(value, int):
        raise TypeError  # 0.5 must not become 0
    return kind(value)


def _typed(values: np.ndarray, kind: str) -> np.ndarray | None:
    if kind == "float":
        return np.array([float(v) for v in values], dtype=np.float64)
    ints = [int(v) for v in values]
    if ints and (min(ints) < INT64[0] or max(ints) > INT64[1]):
        return None
    return np.array(ints, dtype=np.int64)
