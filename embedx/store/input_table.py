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

from embedx.contract.errors import InputError
from embedx.inputs import Record, typed_column
from embedx.store import layout as L
from embedx.store.catalog import InputState
from embedx.store.segment import SegmentInfo, now, open_segment, write_input_final, write_input_piece


def is_empty(record: Record) -> bool:
    """``record.empty`` (nothing to embed), answered at once for text whose first visible character is alphanumeric."""
    stripped = record.text.strip()
    return not stripped or (not stripped[0].isalnum() and record.empty)


def check_unicode(value: str, source: str, line: int, what: str) -> None:
    """Refuse text HDF5 cannot store as UTF-8 (lone surrogates), naming the line and character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{source}, line {line}: {what} holds {value[exc.start]!r} (U+{ord(value[exc.start]):04X}) "
                         f"at character {exc.start}, a lone surrogate that is not valid Unicode; "
                         "fix the input") from None


class _Column:
    """Per column: whether every value so far types losslessly as int / float, and a hash of its values."""

    def __init__(self, index: int, name: str, rows_before: int):
        self.index, self.name = index, name
        self.kinds: set[str] = set() if rows_before == 0 else {"str"}  # missing values make it text
        self.hash = hashlib.sha256()
        self.hash.update(b"\0" * rows_before)
        self.rows_before = rows_before  # rows of the input before this column first appeared

    def values(self, raw: list[Any]) -> np.ndarray:
        if self.kinds != {"str"}:
            self.kinds.add(_kind(typed_column(raw)))
        texts = ["" if value is None else str(value) for value in raw]
        for text in texts:
            self.hash.update(text.encode("utf-8") + b"\0")
        return np.array(texts, dtype=object)

    @property
    def kind(self) -> str:
        return next(iter(self.kinds)) if len(self.kinds) == 1 else "str"


def _kind(typed: np.ndarray | None) -> str:
    return "str" if typed is None else "int" if typed.dtype.kind == "i" else "float"


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

    def append(self, records: Sequence[Record], keys: np.ndarray, empty: np.ndarray | None = None) -> None:
        """Add a chunk of rows (``keys``: their ``S32`` content keys; ``empty``: which are empty, if known)."""
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
            L.EMPTY: np.array([is_empty(r) for r in records], dtype=bool) if empty is None else empty,
            L.LINE: np.array([r.line for r in records], dtype=np.int64),
        }
        for key in (L.KEYS, L.EMPTY, L.LINE):
            self.hashes[key].update(arrays[key].tobytes())
        if self.store_text:
            arrays[L.TEXT] = np.array([r.text for r in records], dtype=object)
        for record in records:
            self.hashes[L.TEXT].update(record.text.encode("utf-8") + b"\0")
        for typed in self.columns.values():
            arrays[f"{L.RAW}/{typed.index}"] = typed.values([r.columns.get(typed.name) for r in records])
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
            kind = column.kind
            if kind != "str" or column.rows_before:
                values = self._read_column(column)
                converted = typed_column(list(values)) if kind != "str" else None
                if converted is not None and _kind(converted) == kind:
                    typed[str(column.index)] = converted
                elif column.rows_before:  # text that first appeared mid-input: whole in the final piece
                    kind, typed[str(column.index)] = "final-str", values
                else:
                    kind = "str"
            kinds[str(column.index)] = kind
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
