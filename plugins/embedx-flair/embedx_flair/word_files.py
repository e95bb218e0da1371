"""Vector files as flair's ``WordEmbeddings`` can read them, converting the ones it cannot.

flair reads a path ending in ``.bin`` as binary word2vec and one ending in ``.txt`` as word2vec
text (GloVe with ``no_header``); any other path it unpickles as gensim ``KeyedVectors``. So
``.vec`` files, compressed files, GloVe under another name and the like are converted once with
gensim to binary word2vec (plain data, float32, no precision lost) into a cache folder, under
the SHA-256 of the source file: the same source is converted once, an edited one again.
``.kv`` files are pickles and are only handed to flair with ``trust_pickle=true``.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
from pathlib import Path
from typing import Literal

from embedx.errors import EmbedderUnavailable, OptionError
from embedx_flair.model_files import cached_digest

Format = Literal["auto", "word2vec-bin", "word2vec-text", "glove", "keyedvectors"]
CACHE_ENV = "EMBEDX_FLAIR_CACHE"
_COMPRESSED = (".gz", ".bz2")
_FASTTEXT_MAGIC = 793712314


def default_cache_dir() -> Path:
    """``$EMBEDX_FLAIR_CACHE``, else ``~/.cache/embedx/flair``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "embedx" / "flair"


def _suffixes(path: str) -> tuple[str, str]:
    """(suffix before any .gz/.bz2, compression suffix or "")."""
    stem, compression = path, ""
    for ending in _COMPRESSED:
        if stem.endswith(ending):
            stem, compression = stem[: -len(ending)], ending
    return os.path.splitext(stem)[1].lower(), compression


def _open(path: str):
    import bz2
    import gzip

    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def detect_format(path: str) -> str:
    """The format of ``path`` by suffix, sniffing the first bytes where the suffix is ambiguous."""
    suffix, _ = _suffixes(path)
    if suffix == ".bin":
        with _open(path) as handle:
            head = handle.read(64)
        if (len(head) >= 4 and struct.unpack("<i", head[:4])[0] == _FASTTEXT_MAGIC) or not re.match(rb"\s*\d+ \d+\s", head):
            raise OptionError(f"{path} is a fastText .bin model; flair's WordEmbeddings reads only its word vectors "
                              "from a .vec file (or use embedx-gensim's word-vectors with oov=subword)")
        return "word2vec-bin"
    if suffix in (".txt", ".vec"):
        with _open(path) as handle:
            first = handle.readline(1 << 16).split()
        return "word2vec-text" if len(first) == 2 and all(p.isdigit() for p in first) else "glove"
    if suffix == ".kv":
        return "keyedvectors"
    raise OptionError(f"cannot tell the format of {path} from its suffix {suffix or '(none)'!r}; pass "
                      "--option format=word2vec-bin|word2vec-text|glove|keyedvectors")


def check_readable(path: str, fmt: str, trust_pickle: bool) -> None:
    """Refuse, before anything loads, a pickle that was not trusted."""
    if fmt == "keyedvectors" and not trust_pickle:
        raise OptionError(f"{path} is a gensim KeyedVectors pickle, and flair loads it with plain pickle, which "
                          "can run code; pass --option trust_pickle=true if you trust it, or save it as word2vec "
                          "(kv.save_word2vec_format('vectors.bin', binary=True)) and pass that")


def flair_input(path: str, fmt: str, cache_dir: str | None) -> tuple[str, bool]:
    """The path to give ``WordEmbeddings`` and its ``no_header`` flag, converting ``path`` if flair cannot read it."""
    suffix, compression = _suffixes(path)
    if not compression:
        if fmt == "word2vec-bin" and suffix == ".bin":
            return path, False
        if fmt in ("word2vec-text", "glove") and suffix == ".txt":
            return path, fmt == "glove"
        if fmt == "keyedvectors" and suffix not in (".bin", ".txt"):
            return path, False
    return convert(path, fmt, Path(cache_dir).expanduser() if cache_dir else default_cache_dir()), False


def convert(path: str, fmt: str, cache_dir: Path) -> str:
    """Binary word2vec of ``path`` in ``cache_dir``, written once per source content (atomically)."""
    target = cache_dir / f"{cached_digest(path)}.{fmt}.w2v.bin"
    if target.exists():
        return str(target)
    from gensim.models import KeyedVectors

    try:
        if fmt == "word2vec-bin":
            vectors = KeyedVectors.load_word2vec_format(path, binary=True)
        elif fmt == "keyedvectors":  # trust_pickle was checked when the embedder was built
            vectors = KeyedVectors.load(path)
        else:
            vectors = KeyedVectors.load_word2vec_format(path, binary=False, no_header=fmt == "glove")
    except (ValueError, OSError, EOFError) as exc:
        raise EmbedderUnavailable(f"could not read {path} as {fmt}: {type(exc).__name__}: {exc}") from exc
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        vectors.save_word2vec_format(str(tmp), binary=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return str(target)
