"""What a head trains on: rows of one cached feature set, their labels, read whole or in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedx.store import layout as L

if TYPE_CHECKING:  # the reader imports h5py; heads are registered at startup, so keep it lazy
    from embedx.store.reader import FeatureSet


def gather(dataset: Any, rows: np.ndarray) -> np.ndarray:
    from embedx.store.reader import gather as read_rows

    return read_rows(dataset, rows)


@dataclass
class HeadData:
    """Rows ``rows`` of output ``output`` of a feature set, with integer labels ``y`` indexing ``classes``.

    Document outputs read as ``[n, dim]`` (or ``[n, layers, dim]`` when stored per layer).
    Token outputs read as a list of ``[n_tokens, (layers,) dim]`` arrays, for heads that pool.
    """

    fset: FeatureSet
    output: str
    rows: np.ndarray
    y: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def spec(self) -> dict:
        return self.fset.outputs[self.output]

    @property
    def level(self) -> str:
        return self.spec["level"]

    @property
    def per_layer(self) -> bool:
        return bool(self.spec.get("per_layer"))

    @property
    def row_shape(self) -> tuple[int, ...]:
        return ((self.spec["layers"],) if self.per_layer else ()) + (self.spec["dim"],)

    @property
    def nbytes(self) -> int:
        return len(self.rows) * int(np.prod(self.row_shape)) * 4

    def array(self) -> np.ndarray:
        """All rows as float32 (document outputs only)."""
        self._need_document()
        return gather(self.fset.group[self.output][L.VALUES], self.rows).astype(np.float32, copy=False)

    def chunks(self, size: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(X, y)`` in chunks of ``size`` rows, so a set larger than memory can still be streamed."""
        self._need_document()
        values = self.fset.group[self.output][L.VALUES]
        for start in range(0, len(self.rows), size):
            part = self.rows[start:start + size]
            yield gather(values, part).astype(np.float32, copy=False), self.y[start:start + size]

    def token_arrays(self, rows: np.ndarray | None = None) -> list[np.ndarray]:
        """Per row, its token vectors (token-level outputs)."""
        if self.level != "token":
            raise ValueError(f"output {self.output!r} is document-level")
        group = self.fset.group[self.output]
        offsets = group[L.OFFSETS][:]
        values = group[L.VALUES]
        chosen = self.rows if rows is None else rows
        return [values[offsets[r]:offsets[r + 1]].astype(np.float32) for r in chosen]

    def subset(self, index: np.ndarray) -> HeadData:
        return HeadData(self.fset, self.output, self.rows[index], self.y[index], self.classes)

    def _need_document(self) -> None:
        if self.level != "document":
            raise ValueError(f"output {self.output!r} is token-level; this head needs a document output")


@dataclass
class MemoryData:
    """Rows already in memory, with the same interface as :class:`HeadData`.

    The benchmark slices cached per-layer features (one layer, the last four concatenated...)
    and hands the slices to heads this way, without writing new feature sets.
    """

    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    output: str = "memory"

    def __len__(self) -> int:
        return len(self.X)

    level = "document"

    @property
    def per_layer(self) -> bool:
        return self.X.ndim == 3

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    @property
    def nbytes(self) -> int:
        return int(self.X.nbytes)

    def array(self) -> np.ndarray:
        return self.X.astype(np.float32, copy=False)

    def chunks(self, size: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(self.X), size):
            yield self.array()[start:start + size], self.y[start:start + size]

    def subset(self, index: np.ndarray) -> MemoryData:
        return MemoryData(self.X[index], self.y[index], self.classes, self.output)
