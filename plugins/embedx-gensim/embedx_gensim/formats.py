"""Which vector-file format a path holds, and how gensim reads each one.

Detection is cheap (the suffix, then at most the first line or four bytes) so it can run when
the embedder is built; reading is the expensive part and runs in ``load()``. Compressed
``.gz``/``.bz2`` files are detected by the suffix before the compression suffix.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import struct
from typing import Any, BinaryIO, Literal

from embedx.errors import EmbedderUnavailable, OptionError

Format = Literal["auto", "word2vec-bin", "word2vec-text", "glove", "fasttext-bin", "fasttext-vec", "keyedvectors",
                 "gensim-model"]
#: Formats that carry character n-gram vectors when they hold a fastText model.
SUBWORD_CAPABLE = ("fasttext-bin", "keyedvectors", "gensim-model")
_FASTTEXT_MAGIC = 793712314  # first int32 of a Facebook fastText .bin (gensim's _FASTTEXT_FILEFORMAT_MAGIC)
_COMPRESSED = (".gz", ".bz2")


def open_maybe_compressed(path: str) -> BinaryIO:
    """Open for binary reading, decompressing ``.gz`` and ``.bz2`` as gensim's loaders do."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _suffix(path: str) -> str:
    stem = path
    for ending in _COMPRESSED:
        if stem.endswith(ending):
            stem = stem[: -len(ending)]
    return os.path.splitext(stem)[1].lower()


def _has_count_dim_header(path: str) -> bool:
    """word2vec text files start with a ``<count> <dim>`` line; GloVe files start with a vector."""
    with open_maybe_compressed(path) as handle:
        first = handle.readline(1 << 16).split()
    return len(first) == 2 and all(part.isdigit() for part in first)


def _is_fasttext_bin(path: str) -> bool:
    """Facebook's format starts with a magic int32 (old files: raw int32 settings); word2vec's with ASCII digits."""
    with open_maybe_compressed(path) as handle:
        head = handle.read(64)
    if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == _FASTTEXT_MAGIC:
        return True
    return re.match(rb"\s*\d+ \d+\s", head) is None


def detect_format(path: str) -> str:
    """The concrete format of ``path``: by suffix, then by sniffing where the suffix is ambiguous."""
    suffix = _suffix(path)
    if suffix == ".bin":
        return "fasttext-bin" if _is_fasttext_bin(path) else "word2vec-bin"
    if suffix in (".vec", ".txt"):
        return "word2vec-text" if _has_count_dim_header(path) else "glove"
    if suffix == ".kv":
        return "keyedvectors"
    if suffix == ".model":
        return "gensim-model"
    raise OptionError(f"cannot tell the format of {path} from its suffix {suffix or '(none)'!r}; "
                      "pass --option format=word2vec-bin|word2vec-text|glove|fasttext-bin|fasttext-vec|"
                      "keyedvectors|gensim-model")


def read_vectors(path: str, fmt: str, trust_pickle: bool) -> Any:
    """Read ``path`` as ``fmt`` into gensim ``KeyedVectors`` (a ``FastTextKeyedVectors`` for fastText models)."""
    from gensim.models.keyedvectors import KeyedVectors

    if fmt == "word2vec-bin":
        return KeyedVectors.load_word2vec_format(path, binary=True)
    if fmt in ("word2vec-text", "fasttext-vec"):
        return KeyedVectors.load_word2vec_format(path, binary=False)
    if fmt == "glove":
        return KeyedVectors.load_word2vec_format(path, binary=False, no_header=True)
    if fmt == "fasttext-bin":
        from gensim.models.fasttext import load_facebook_vectors

        return load_facebook_vectors(path)
    if fmt == "keyedvectors":
        if trust_pickle:
            return KeyedVectors.load(path)
        from embedx_gensim.safe_pickle import UnsafePickleError, load_keyed_vectors

        try:
            return load_keyed_vectors(path)
        except UnsafePickleError as exc:
            raise EmbedderUnavailable(
                f"refusing to load {path}: {exc}. A .kv file is a Python pickle and loading it can run code; "
                "if you trust this file, pass --option trust_pickle=true") from None
    if fmt == "gensim-model":
        if not trust_pickle:  # also checked when the embedder is built; kept here so no path skips it
            raise OptionError(untrusted_model_message(path))
        from gensim.utils import SaveLoad

        model = SaveLoad.load(path)
        vectors = getattr(model, "wv", model)
        if not isinstance(vectors, KeyedVectors):
            raise EmbedderUnavailable(f"{path} holds a {type(model).__name__}, which has no word vectors")
        return vectors
    raise OptionError(f"unknown vector format {fmt!r}")


def untrusted_model_message(path: str) -> str:
    return (f"{path} is a full gensim model (format gensim-model), a Python pickle that can run arbitrary code "
            "when loaded; pass --option trust_pickle=true only if you trust its source, or export its vectors "
            "with model.wv.save('vectors.kv') and load that .kv file (loaded safely without trust_pickle)")
