"""Word-vector files: which format a path holds, and opening it through .gz/.bz2.

One implementation for every plugin that reads vector files (gensim, flair, Swivel export).
Detection is cheap (the suffix, then at most the first line or 64 bytes), so it can run when
an embedder is built; reading the vectors is each plugin's own business.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import struct
from typing import BinaryIO

from embedx.errors import OptionError

#: Every concrete format :func:`detect_format` can return.
FORMATS = ("word2vec-bin", "word2vec-text", "glove", "fasttext-bin", "fasttext-vec", "keyedvectors", "gensim-model")
COMPRESSIONS = (".gz", ".bz2")
_FASTTEXT_MAGIC = 793712314  # first int32 of a Facebook fastText .bin


def open_maybe_compressed(path: str | os.PathLike[str]) -> BinaryIO:
    """Open for binary reading, decompressing ``.gz`` and ``.bz2`` by suffix."""
    name = os.fspath(path)
    if name.endswith(".gz"):
        return gzip.open(name, "rb")
    if name.endswith(".bz2"):
        return bz2.open(name, "rb")
    return open(name, "rb")


def split_suffix(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(the suffix before any compression suffix, lower-cased; the compression suffix or "")."""
    stem, compression = os.fspath(path), ""
    for ending in COMPRESSIONS:
        if stem.endswith(ending):
            stem, compression = stem[: -len(ending)], ending
    return os.path.splitext(stem)[1].lower(), compression


def has_count_dim_header(path: str | os.PathLike[str]) -> bool:
    """word2vec text files start with a ``<count> <dim>`` line; GloVe files start with a vector."""
    with open_maybe_compressed(path) as handle:
        first = handle.readline(1 << 16).split()
    return len(first) == 2 and all(part.isdigit() for part in first)


def is_fasttext_bin(path: str | os.PathLike[str]) -> bool:
    """Facebook's format starts with a magic int32 (old files: raw int32 settings); word2vec's with ASCII digits."""
    with open_maybe_compressed(path) as handle:
        head = handle.read(64)
    if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == _FASTTEXT_MAGIC:
        return True
    return re.match(rb"\s*\d+ \d+\s", head) is None


def detect_format(path: str | os.PathLike[str]) -> str:
    """The concrete format of ``path`` (one of :data:`FORMATS`): by suffix, sniffing where it is ambiguous."""
    suffix, _ = split_suffix(path)
    if suffix == ".bin":
        return "fasttext-bin" if is_fasttext_bin(path) else "word2vec-bin"
    if suffix in (".vec", ".txt"):
        return "word2vec-text" if has_count_dim_header(path) else "glove"
    if suffix == ".kv":
        return "keyedvectors"
    if suffix == ".model":
        return "gensim-model"
    raise OptionError(f"cannot tell the format of {os.fspath(path)} from its suffix {suffix or '(none)'!r}; "
                      f"pass --option format={'|'.join(FORMATS)}")
