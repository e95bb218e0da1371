"""Word-vector files: which format a path holds, and opening it through .gz/.bz2.

One implementation for every plugin that reads vector files (gensim, flair, Swivel export).
Detection is cheap (the suffix, then at most the first line or 64 bytes), so it can run when
an embedder is built; reading the vectors is each plugin's own business, after
:func:`check_vector_sizes` has checked that the file holds what its header declares.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import struct
from typing import BinaryIO, cast

from embedx.contract.errors import InputError, OptionError

#: Every concrete format :func:`detect_format` can return.
FORMATS = ("word2vec-bin", "word2vec-text", "glove", "fasttext-bin", "fasttext-vec", "keyedvectors", "gensim-model")
COMPRESSIONS = (".gz", ".bz2")
_FASTTEXT_MAGIC = 793712314  # first int32 of a Facebook fastText .bin


def open_maybe_compressed(path: str | os.PathLike[str]) -> BinaryIO:
    """Open for binary reading, decompressing ``.gz`` and ``.bz2`` by suffix."""
    name = os.fspath(path)
    if name.endswith(".gz"):
        return cast(BinaryIO, gzip.open(name, "rb"))
    if name.endswith(".bz2"):
        return cast(BinaryIO, bz2.open(name, "rb"))
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


# Declared sizes (issue 22): a reader allocates what a file's header declares (gensim builds a
# count x dim matrix and a count-long list before reading a vector), so the declared sizes are
# checked against what the file holds first.

#: A ``.gz``/``.bz2`` vector file may inflate to at most this many times its size on disk (plus
#: :data:`SIZE_SLACK`); word2vec text compresses about 3x, float vectors about 1.1x.
MAX_INFLATION = 100
SIZE_SLACK = 1 << 20
_CHUNK = 1 << 20
_HEADER_MAX = 1 << 16


def check_vector_sizes(path: str | os.PathLike[str], fmt: str) -> None:
    """Refuse, before a reader allocates anything, a vector file that declares more than it holds.

    * word2vec binary: the header's ``count x dim`` vectors need ``count * (4*dim + 2)`` bytes (a
      word of at least one byte, a space, ``dim`` float32s); text (word2vec, fastText ``.vec``):
      ``count * (2*dim + 1)`` (each value at least one character and a separator);
    * GloVe (no header; gensim counts the lines and reads ``dim`` from the first one): the lines
      times ``2*dim + 1``;
    * fastText ``.bin``: the vocabulary must be all there, and the vector matrix it declares must
      be ``(words + buckets) x dim`` float32s that the rest of the file holds;
    * a compressed file may not inflate past :data:`MAX_INFLATION` times its size on disk.

    Other formats (pickles) are left to their loaders. Raises :class:`InputError` naming the file.
    """
    name = os.fspath(path)
    try:
        if fmt in ("word2vec-bin", "word2vec-text", "fasttext-vec"):
            _check_count_dim_header(name, binary=fmt == "word2vec-bin")
        elif fmt == "glove":
            _check_glove(name)
        elif fmt == "fasttext-bin":
            _check_fasttext_bin(name)
    except (OSError, EOFError) as exc:  # a damaged .gz/.bz2 stream
        raise InputError(f"could not read {name}: {type(exc).__name__}: {exc}") from None


def _compressed(path: str) -> bool:
    return split_suffix(path)[1] != ""


def _chunks(path: str):
    """The file's content in chunks; a compressed file is refused once it inflates past its budget."""
    on_disk = os.path.getsize(path)
    budget = MAX_INFLATION * on_disk + SIZE_SLACK if _compressed(path) else None
    total = 0
    with open_maybe_compressed(path) as handle:
        while chunk := handle.read(_CHUNK):
            total += len(chunk)
            if budget is not None and total > budget:
                raise InputError(f"refusing to read {path}: it inflates to more than {budget:,} bytes, "
                                 f"{MAX_INFLATION}x its {on_disk:,} bytes on disk (a decompression bomb)")
            yield chunk


def _content_size(path: str) -> int:
    """Bytes of content: the size on disk, or (compressed) what it inflates to, within the budget."""
    if not _compressed(path):
        return os.path.getsize(path)
    return sum(len(chunk) for chunk in _chunks(path))


def _too_large(path: str, declared: str, needed: int, held: int) -> InputError:
    return InputError(f"refusing to read {path}: {declared}, which take at least {needed:,} bytes, but the file "
                      f"holds {held:,}")


def _check_count_dim_header(path: str, binary: bool) -> None:
    with open_maybe_compressed(path) as handle:
        header = handle.readline(_HEADER_MAX)
    if len(header) == _HEADER_MAX and not header.endswith(b"\n"):
        raise InputError(f"refusing to read {path}: its first line is longer than {_HEADER_MAX:,} bytes, "
                         "not a '<count> <dim>' header")
    try:
        count, dim = (int(part) for part in header.decode("utf-8").split())  # as gensim parses it
    except (UnicodeDecodeError, ValueError):
        return  # not a header gensim can read either: it says so itself, having allocated nothing
    if count < 0 or dim < 0:
        raise InputError(f"refusing to read {path}: its header declares {count} vectors of {dim} dimensions")
    needed = count * (4 * dim + 2 if binary else 2 * dim + 1)
    held = _content_size(path) - len(header)
    if needed > held:
        raise _too_large(path, f"its header declares {count:,} vectors of {dim:,} dimensions", needed, held)


def _check_glove(path: str) -> None:
    lines = total = 0
    first = bytearray()  # the first line, as gensim reads it to learn the dimension
    last = b"\n"
    for chunk in _chunks(path):
        if not lines:
            first += chunk
        lines += chunk.count(b"\n")
        total += len(chunk)
        last = chunk[-1:]
    lines += last != b"\n"
    dim = max(len(bytes(first).split(b"\n", 1)[0].split()) - 1, 0)
    needed = lines * (2 * dim + 1)
    if needed > total:
        raise _too_large(path, f"its first line has {dim:,} values, so its {lines:,} lines hold at least "
                               f"{lines:,} vectors of {dim:,} dimensions", needed, total)


class _Stream:
    """Exact reads from a chunk iterator, counting what was consumed."""

    def __init__(self, path: str):
        self.path, self.chunks, self.buffer, self.position, self.done = path, _chunks(path), b"", 0, 0

    def _fill(self, wanted: int) -> bool:
        while len(self.buffer) - self.done < wanted:
            chunk = next(self.chunks, None)
            if chunk is None:
                return False
            self.buffer = self.buffer[self.done:] + chunk
            self.done = 0
        return True

    def read(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise InputError(f"refusing to read {self.path}: it ends inside its {what}")
        data = self.buffer[self.done:self.done + n]
        self.done += n
        self.position += n
        return data

    def skip(self, n: int, what: str) -> None:
        """Pass over ``n`` bytes without keeping them."""
        while n > len(self.buffer) - self.done:
            n -= len(self.buffer) - self.done
            self.position += len(self.buffer) - self.done
            self.buffer, self.done = b"", 0
            if not self._fill(1):
                raise InputError(f"refusing to read {self.path}: it ends inside its {what}")
        self.done += n
        self.position += n

    def skip_word(self) -> None:
        while (end := self.buffer.find(b"\0", self.done)) < 0:
            self.position += len(self.buffer) - self.done
            self.buffer, self.done = b"", 0
            if not self._fill(1):
                raise InputError(f"refusing to read {self.path}: it ends inside its vocabulary")
        self.position += end + 1 - self.done
        self.done = end + 1

    def rest(self) -> int:
        """How many bytes follow the current position."""
        if not _compressed(self.path):
            return os.path.getsize(self.path) - self.position
        return len(self.buffer) - self.done + sum(len(chunk) for chunk in self.chunks)


def _check_fasttext_bin(path: str) -> None:
    """Walk the header and vocabulary as gensim's ``_fasttext_bin.load`` reads them, without keeping any."""
    stream = _Stream(path)
    magic, _version = struct.unpack("<2i", stream.read(8, "header"))
    new_format = magic == _FASTTEXT_MAGIC
    header = struct.unpack("<12id" if new_format else "<10id", stream.read(56 if new_format else 48, "header"))
    dim, bucket = (header[0], header[8]) if new_format else (magic, header[6])
    vocab_size, nwords, _labels = struct.unpack("<3i", stream.read(12, "vocabulary header"))
    stream.read(8, "vocabulary header")  # ntokens
    pruned = struct.unpack("<q", stream.read(8, "vocabulary header"))[0] if new_format else 0
    if min(dim, bucket, vocab_size, nwords) < 0 or nwords > vocab_size:
        raise InputError(f"refusing to read {path}: its header declares dim={dim}, bucket={bucket}, "
                         f"{vocab_size} words ({nwords} without labels)")
    for _ in range(vocab_size):
        stream.skip_word()
        stream.skip(9, "vocabulary")  # the word's count (int64) and type (int8)
    if pruned > 0:
        stream.skip(8 * pruned, "pruned index")
    if new_format:
        stream.read(1, "matrix header")  # quant_input
    rows, columns = struct.unpack("<2q", stream.read(16, "matrix header"))
    if rows != nwords + bucket or columns != dim:
        raise InputError(f"refusing to read {path}: its vector matrix is declared {rows:,} x {columns:,}, but its "
                         f"header needs {nwords:,} words + {bucket:,} buckets = {nwords + bucket:,} rows of {dim:,}")
    needed, held = 4 * rows * columns, stream.rest()
    if needed > held:
        raise _too_large(path, f"its vector matrix is declared {rows:,} x {columns:,} float32s", needed, held)
