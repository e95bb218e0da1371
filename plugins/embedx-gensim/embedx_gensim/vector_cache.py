"""Word vectors as memory-mapped arrays in embedx's cache folder, built once per source content.

Reading a vector file is the expensive part of a run that has little to compute: parsing a
text format, or a parquet word list plus building a 400k-entry dict, costs seconds even when
only a few hundred texts are new. So the first ``load()`` writes what the lookups need as
plain ``.npy`` arrays under ``<cache_root()>/word-vectors/<key>/`` (``key`` is derived from the
source's content digest, so an edited source gets a new entry), and every later ``load()``
maps them with ``np.load(mmap_mode="r")`` in milliseconds:

- ``vectors.npy``: the float32 matrix, bit for bit what the source gives (left out when the
  source already is a float32 ``.npy`` that can be mapped directly);
- the vocabulary as arrays: a 64-bit BLAKE2b hash of each word's UTF-8, sorted
  (``hashes.npy``), the matrix row of each (``rows.npy``), and the words themselves in the same
  order as one UTF-8 blob (``words.npy``) cut by ``offsets.npy``. A token is looked up by
  hashing it, ``np.searchsorted`` and a byte comparison with the stored word, so a lookup is
  exact; answers are remembered in a dict, so frequent tokens cost one dict lookup each (see
  :class:`WordIndex`).

Every file is written with :func:`embedx.plugin_api.atomic_write`, the manifest last. The
cache is a file embedx reads back, so it is checked before use: the manifest must name this
source (digest), and each file its recorded size, SHA-256 (hashed once per file version, see
``cached_file_digest``), dtype and shape; offsets, hashes and rows must be consistent. Anything
else is rebuilt. A cache folder that cannot be written only costs the slow load, never a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from embedx.plugin_api import atomic_write, cache_root, cached_file_digest

VERSION = 1
FOLDER = "word-vectors"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 16
SEEN_LIMIT = 1 << 21  # answers remembered per index; beyond it, lookups go through the arrays again
INDEX_FILES = ("hashes", "rows", "offsets", "words")


def _encode(word: str) -> bytes:
    return word.encode("utf-8", "surrogatepass")


def _hashes(encoded: list[bytes]) -> np.ndarray:
    blake2b = hashlib.blake2b
    return np.frombuffer(b"".join(blake2b(e, digest_size=8).digest() for e in encoded), dtype="<u8")


class WordIndex:
    """word -> matrix row over the four vocabulary arrays (see the module docstring); ``-1`` for absent words.

    Measured on GloVe 6B (400k words) for 2,000 synthetic texts (48,775 tokens, 24k distinct, 8
    batches of 256; 2 shared cores under load): a dict built from the stored words costs 1.1-1.7 s,
    then 114-193 ms of lookups; this index opens in 30-80 ms and answers in 205-228 ms the first
    time (each distinct token hashed and searched once), 41-59 ms once its tokens are remembered
    (a dict of 24k entries is faster to probe than one of 400k). ``np.searchsorted`` over the
    words themselves (fixed-width bytes, no hashes) cost 30 ms per batch of 6,400 tokens, 4x a dict.
    """

    def __init__(self, hashes: np.ndarray, rows: np.ndarray, offsets: np.ndarray, words: np.ndarray):
        self.hashes, self.rows, self.offsets, self.words = hashes, rows, offsets, words
        self._seen: dict[str, int] = {}
        self._blob: bytes | None = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, int]) -> WordIndex:
        """The arrays for ``mapping`` (word -> row), e.g. gensim's ``key_to_index``."""
        encoded = [_encode(w) for w in mapping]
        rows = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
        hashes = _hashes(encoded)
        order = np.argsort(hashes, kind="stable")
        ordered = [encoded[i] for i in order.tolist()]
        offsets = np.zeros(len(ordered) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, ordered), dtype=np.int64, count=len(ordered)), out=offsets[1:])
        words = np.frombuffer(b"".join(ordered), dtype=np.uint8)
        return cls(np.ascontiguousarray(hashes[order]), rows[order], offsets, words)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"hashes": self.hashes, "rows": self.rows, "offsets": self.offsets, "words": self.words}

    def __len__(self) -> int:
        return len(self.hashes)

    def lookup(self, tokens: list[str]) -> np.ndarray:
        """The row of each token (int64), ``-1`` where it is not in the vocabulary."""
        out = np.fromiter(map(self._seen.get, tokens, repeat(-2)), dtype=np.int64, count=len(tokens))
        missing = np.flatnonzero(out == -2)
        if len(missing):
            new = list(dict.fromkeys([tokens[i] for i in missing.tolist()]))
            answers = dict(zip(new, self._resolve(new).tolist(), strict=True))
            if len(self._seen) < SEEN_LIMIT:
                self._seen.update(answers)
            out[missing] = [answers[tokens[i]] for i in missing.tolist()]
        return out

    def get(self, word: str, default: int | None = None) -> int | None:
        row = int(self.lookup([word])[0])
        return default if row < 0 else row

    def to_dict(self) -> dict[str, int]:
        """Every word and its row, as a dict (built here: about half a second for 400k words)."""
        blob, offsets = self._bytes(), self.offsets.tolist()
        words = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        return dict(zip(words, self.rows.tolist(), strict=True))

    def _bytes(self) -> bytes:
        if self._blob is None:
            self._blob = self.words.tobytes()
        return self._blob

    def _resolve(self, words: list[str]) -> np.ndarray:
        encoded = [_encode(w) for w in words]
        wanted = _hashes(encoded)
        hashes, n = self.hashes, len(self.hashes)
        found = np.full(len(words), -1, dtype=np.int64)
        if not n:
            return found
        at = np.minimum(np.searchsorted(hashes, wanted), n - 1)
        candidates = np.flatnonzero(hashes[at] == wanted)
        if not len(candidates):
            return found
        blob, offsets = self._bytes(), self.offsets
        first = at[candidates]
        answers = []
        for k, position, start, end, row in zip(candidates.tolist(), first.tolist(), offsets[first].tolist(),
                                                offsets[first + 1].tolist(), self.rows[first].tolist(), strict=True):
            if blob[start:end] != encoded[k]:
                row = self._scan(position, int(wanted[k]), encoded[k])
            answers.append(row)
        found[candidates] = answers
        return found

    def _scan(self, position: int, target: int, word: bytes) -> int:
        """The row of ``word`` among the words after ``position`` that share its hash (a 64-bit collision), or -1."""
        blob, offsets, hashes = self._bytes(), self.offsets, self.hashes
        position += 1
        while position < len(hashes) and int(hashes[position]) == target:
            if blob[int(offsets[position]):int(offsets[position + 1])] == word:
                return int(self.rows[position])
            position += 1
        return -1


@dataclass
class VectorTable:
    """The matrix and the word index pooling uses, without gensim."""

    vectors: Any
    index: WordIndex

    def lookup(self, tokens: list[str]) -> np.ndarray:
        return self.index.lookup(tokens)

    @property
    def key_to_index(self) -> dict[str, int]:
        """word -> row as a dict (what gensim's ``KeyedVectors`` has; built on first use)."""
        if not hasattr(self, "_dict"):
            self._dict = self.index.to_dict()
        return self._dict


class CacheUnusable(Exception):
    """A cache entry that is missing, foreign, damaged or stale: it is rebuilt."""


def cache_folder(source: Mapping[str, Any]) -> Path:
    """Where the arrays for ``source`` (a JSON-able record that names the source and its content digest) live."""
    text = json.dumps({"version": VERSION, "source": source}, sort_keys=True, separators=(",", ":"))
    return cache_root() / FOLDER / hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass
class Built:
    """What a builder hands over: the word index, the matrix (``None``: the caller maps its own) and its shape."""

    index: WordIndex
    vectors: np.ndarray | None
    rows: int
    dim: int


def cached_table(source: Mapping[str, Any], build: Callable[[], Built],
                 vectors: Callable[[], np.ndarray] | None = None) -> VectorTable:
    """The table for ``source``: mapped from the cache when a valid entry exists, else built, stored and returned.

    ``vectors`` (when given) maps the matrix from elsewhere (a float32 ``.npy`` the source ships),
    so only the index is cached; otherwise the matrix is cached too.
    """
    folder = cache_folder(source)
    try:
        return _open(folder, source, vectors)
    except CacheUnusable:
        pass
    built = build()
    try:
        _write(folder, source, built)
        return _open(folder, source, vectors)
    except (OSError, CacheUnusable):  # a read-only or full cache folder: use what was built, in memory
        matrix = built.vectors if built.vectors is not None else vectors() if vectors is not None else None
        if matrix is None:
            raise
        return VectorTable(matrix, built.index)


def _file_record(path: Path, array: np.ndarray) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": cached_file_digest(path), "dtype": array.dtype.str,
            "shape": list(array.shape)}


def _save(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.save would add .npy to the temporary name
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)

    atomic_write(path, write)


def _write(folder: Path, source: Mapping[str, Any], built: Built) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / MANIFEST).unlink(missing_ok=True)  # an old manifest never vouches for files being replaced
    arrays = dict(built.index.arrays())
    if built.vectors is not None:
        arrays["vectors"] = np.asarray(built.vectors, dtype=np.float32)
    files = {}
    for name, array in arrays.items():
        path = folder / f"{name}.npy"
        _save(path, array)
        files[name] = _file_record(path, array)
    manifest = {"version": VERSION, "source": dict(source), "rows": built.rows, "dim": built.dim,
                "words": len(built.index), "files": files}
    data = json.dumps(manifest, sort_keys=True).encode("utf-8")
    atomic_write(folder / MANIFEST, lambda tmp: tmp.write_bytes(data))


def _open(folder: Path, source: Mapping[str, Any], vectors: Callable[[], np.ndarray] | None) -> VectorTable:
    manifest = _manifest(folder, source)
    names = INDEX_FILES if vectors is not None else (*INDEX_FILES, "vectors")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(isinstance(files.get(n), dict) for n in names):
        raise CacheUnusable("files missing from the manifest")
    arrays = {name: _mapped(folder / f"{name}.npy", files[name]) for name in names}
    n, rows, dim = manifest["words"], manifest["rows"], manifest["dim"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (n, rows, dim)):
        raise CacheUnusable("bad counts")
    expected = {"hashes": ("<u8", (n,)), "rows": ("<i8", (n,)), "offsets": ("<i8", (n + 1,)),
                "words": ("|u1", None), "vectors": ("<f4", (rows, dim))}
    for name, array in arrays.items():
        dtype, shape = expected[name]
        if array.dtype.str != dtype or array.ndim != (1 if shape is None else len(shape)) or \
                (shape is not None and array.shape != shape):
            raise CacheUnusable(f"{name}: {array.dtype.str} {array.shape}")
    offsets, hashes, row_of, words = arrays["offsets"], arrays["hashes"], arrays["rows"], arrays["words"]
    if offsets[0] != 0 or offsets[-1] != len(words) or (offsets[1:] < offsets[:-1]).any():
        raise CacheUnusable("offsets do not cut the words")
    if (hashes[1:] < hashes[:-1]).any() or (n and (row_of.min() < 0 or row_of.max() >= rows)):
        raise CacheUnusable("hashes unsorted or rows out of range")
    index = WordIndex(hashes, row_of, offsets, words)
    if vectors is None:
        return VectorTable(arrays["vectors"], index)
    matrix = vectors()
    if matrix.shape != (rows, dim):
        raise CacheUnusable(f"the source matrix is {matrix.shape}, the index was built for {(rows, dim)}")
    return VectorTable(matrix, index)


def _manifest(folder: Path, source: Mapping[str, Any]) -> dict[str, Any]:
    try:
        with open(folder / MANIFEST, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise CacheUnusable("manifest too large")
        manifest = json.loads(data)
    except (OSError, ValueError) as exc:
        raise CacheUnusable(str(exc)) from None
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION or \
            manifest.get("source") != json.loads(json.dumps(dict(source))):
        raise CacheUnusable("manifest for another source or version")
    if not all(k in manifest for k in ("rows", "dim", "words", "files")):
        raise CacheUnusable("manifest incomplete")
    return manifest


def _mapped(path: Path, record: Mapping[str, Any]) -> np.ndarray:
    """``path`` mapped read-only, after its size and content digest matched the manifest's record."""
    try:
        if os.stat(path).st_size != record.get("size") or cached_file_digest(path) != record.get("sha256"):
            raise CacheUnusable(f"{path.name} changed")
        # the mapping, without np.memmap's overhead
        array = np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise CacheUnusable(str(exc)) from None
    if array.dtype.str != record.get("dtype") or list(array.shape) != record.get("shape"):
        raise CacheUnusable(f"{path.name}: {array.dtype.str} {array.shape} is not what was written")
    return array


def words_and_rows(words: Iterable[str]) -> dict[str, int]:
    """word -> row as a word list defines it (a repeated word keeps its last row, like a dict built in order)."""
    return {w: i for i, w in enumerate(words)}
