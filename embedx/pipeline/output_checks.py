"""Check what an embedder returned before anything of it reaches the disk.

Wrong shapes, non-float dtypes, NaN or infinity, missing outputs and ragged mismatches stop
the run with a message naming the plugin, the output and the input lines of the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedx.contract.embedder import DOCUMENT, Embeddings, Ragged
from embedx.contract.errors import EmbedderOutputError
from embedx.store.packing import pack_strings


@dataclass
class OutputShape:
    """What the stored set expects of one output; ``dim``/``layers`` are fixed by the first batch if unknown."""

    name: str
    level: str
    dim: int | None
    per_layer: bool = False
    layers: int | None = None

    @property
    def inner(self) -> tuple[int, ...]:
        """Shape of one row (one text, or one token) as stored."""
        return ((self.layers or 0,) if self.per_layer else ()) + (self.dim or 0,)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "dim": self.dim or 0, "per_layer": self.per_layer,
                "layers": self.layers if self.per_layer else None}


class BatchChecker:
    def __init__(self, embedder_id: str, plugin: str, shapes: list[OutputShape], dtype: np.dtype):
        self.embedder_id, self.plugin, self.shapes, self.dtype = embedder_id, plugin, shapes, dtype

    def fail(self, where: str, problem: str) -> EmbedderOutputError:
        return EmbedderOutputError(f"embedder {self.embedder_id!r} (plugin {self.plugin!r}), {where}: {problem}; "
                                   "nothing from this batch was saved")

    def check(self, result: Any, n: int, where: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Validate one batch; return staging arrays (values, offsets, tokens) and per-row truncation."""
        truncated = np.zeros(n, dtype=np.int32)
        if isinstance(result, Embeddings):
            if result.truncated is not None:
                if len(result.truncated) != n:
                    raise self.fail(where, f"truncated has {len(result.truncated)} entries for {n} texts")
                truncated = np.asarray(result.truncated, dtype=np.int32)
            result = result.outputs
        if not isinstance(result, Mapping):
            raise self.fail(where, f"embed_batch returned {type(result).__name__}, expected a dict of outputs")
        arrays: dict[str, np.ndarray] = {}
        for shape in self.shapes:
            if shape.name not in result:
                raise self.fail(where, f"output {shape.name!r} is missing (got: "
                                       f"{', '.join(map(str, result)) or 'none'})")
            value = result[shape.name]
            if shape.level == DOCUMENT:
                arrays[f"{shape.name}.values"] = self._document(shape, value, n, where)
            else:
                arrays.update(self._token(shape, value, n, where))
        return arrays, truncated

    def _floats(self, shape: OutputShape, value: Any, where: str) -> np.ndarray:
        array = np.asarray(value) if not hasattr(value, "numpy") else np.asarray(value.numpy())
        if array.dtype.kind != "f":
            raise self.fail(where, f"output {shape.name!r} has dtype {array.dtype}; embedders must return floats")
        if not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0]
            raise self.fail(where, f"output {shape.name!r} contains NaN or infinity (first at index "
                                   f"{tuple(bad.tolist())})")
        return array

    def _fix_dims(self, shape: OutputShape, inner: tuple[int, ...], where: str) -> None:
        """Check one row's shape against the set; the first batch fixes what is still unknown."""
        if len(inner) != (2 if shape.per_layer else 1):
            want = "[layers, dim]" if shape.per_layer else "[dim]"
            raise self.fail(where, f"output {shape.name!r} rows have shape {list(inner)}, expected {want}")
        if shape.dim is None:
            shape.dim = inner[-1]
        if shape.dim != inner[-1]:
            raise self.fail(where, f"output {shape.name!r} has dim {inner[-1]}, expected {shape.dim}")
        if shape.per_layer:
            if shape.layers is None:
                shape.layers = inner[0]
            if shape.layers != inner[0]:
                raise self.fail(where, f"output {shape.name!r} has {inner[0]} layers, expected {shape.layers}")

    def _document(self, shape: OutputShape, value: Any, n: int, where: str) -> np.ndarray:
        array = self._floats(shape, value, where)
        if array.ndim < 2 or array.shape[0] != n:
            raise self.fail(where, f"output {shape.name!r} has shape {list(array.shape)}, expected [{n}, dim]")
        self._fix_dims(shape, array.shape[1:], where)
        return self._cast(shape, array, where)

    def _cast(self, shape: OutputShape, array: np.ndarray, where: str) -> np.ndarray:
        """Cast to the storage dtype; a value too large for it (float16 beyond 65504) is an error, not inf."""
        with np.errstate(over="ignore"):
            stored = array.astype(self.dtype, copy=False)
        if stored is not array and not np.isfinite(stored).all():
            bad = np.argwhere(~np.isfinite(stored))[0]
            value = array[tuple(bad)]
            raise self.fail(where, f"output {shape.name!r} holds {value:g} (at index {tuple(bad.tolist())}), "
                                   f"which {self.dtype} cannot store (it would become infinity); use --dtype float32")
        return stored

    def _token(self, shape: OutputShape, value: Any, n: int, where: str) -> dict[str, np.ndarray]:
        if not isinstance(value, Ragged):
            raise self.fail(where, f"token output {shape.name!r} must be embedx.Ragged, got {type(value).__name__}")
        if len(value.arrays) != n or len(value.tokens) != n:
            raise self.fail(where, f"token output {shape.name!r} has {len(value.arrays)} arrays and "
                                   f"{len(value.tokens)} token lists for {n} texts")
        parts, tokens = [], []
        offsets = np.zeros(n + 1, dtype=np.int64)
        for i, (array, toks) in enumerate(zip(value.arrays, value.tokens, strict=False)):
            array = self._floats(shape, array, where)
            if array.ndim == 0 or array.shape[0] != len(toks):
                raise self.fail(where, f"token output {shape.name!r}, text {i}: {len(toks)} tokens but array "
                                       f"shape {list(array.shape)}")
            if len(toks):
                self._fix_dims(shape, array.shape[1:], where)
            if not all(isinstance(t, str) for t in toks):
                raise self.fail(where, f"token output {shape.name!r}, text {i}: tokens must be strings")
            for t in toks:  # HDF5 stores UTF-8: a lone surrogate would fail only at commit
                try:
                    t.encode("utf-8")
                except UnicodeEncodeError:
                    raise self.fail(where, f"token output {shape.name!r}, text {i}: token {t!r} is not valid "
                                           "Unicode (a lone surrogate)") from None
            parts.append(array)
            tokens.extend(toks)
            offsets[i + 1] = offsets[i] + len(toks)
        nonempty = [p for p in parts if len(p)]
        values = (self._cast(shape, np.concatenate(nonempty), where) if nonempty
                  else np.zeros((0, *shape.inner), self.dtype))
        data, token_offsets = pack_strings(tokens)
        return {f"{shape.name}.values": values, f"{shape.name}.offsets": offsets,
                f"{shape.name}.tokens.bytes": data, f"{shape.name}.tokens.offsets": token_offsets}
