"""Vector files as flair's ``WordEmbeddings`` can read them, converting the ones it cannot.

flair reads a path ending in ``.bin`` as binary word2vec and one ending in ``.txt`` as word2vec
text (GloVe with ``no_header``); any other path it unpickles as gensim ``KeyedVectors``. So
``.vec`` files, compressed files, GloVe under another name and the like are converted once with
gensim to binary word2vec (plain data, float32, no precision lost) into a cache folder, under
the SHA-256 of the source file: the same source is converted once, an edited one again.
``.kv`` files are pickles and are only handed to flair with ``trust_pickle=true``. The sizes a
word2vec or GloVe file declares are checked against what it holds before gensim (in flair or in
the conversion) allocates them (``check_vector_sizes``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from embedx.plugin_api import (
    EmbedderUnavailable,
    OptionError,
    atomic_write,
    check_vector_sizes,
    detect_vector_format,
    split_suffix,
)
from embedx_flair.model_files import cached_digest

Format = Literal["auto", "word2vec-bin", "word2vec-text", "glove", "keyedvectors"]
CACHE_ENV = "EMBEDX_FLAIR_CACHE"


def default_cache_dir() -> Path:
    """``$EMBEDX_FLAIR_CACHE``, else ``~/.cache/embedx/flair``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "embedx" / "flair"


def detect_format(path: str) -> str:
    """The format of ``path`` by suffix, sniffing the first bytes where the suffix is ambiguous."""
    fmt = detect_vector_format(path)
    if fmt == "fasttext-bin":
        raise OptionError(f"{path} is a fastText .bin model; flair's WordEmbeddings reads only its word vectors "
                          "from a .vec file (or use embedx-gensim's word-vectors with oov=subword)")
    if fmt == "gensim-model":
        raise OptionError(f"cannot read {path} (a full gensim model) with flair; pass "
                          "--option format=word2vec-bin|word2vec-text|glove|keyedvectors")
    return "word2vec-text" if fmt == "fasttext-vec" else fmt


def check_readable(path: str, fmt: str, trust_pickle: bool) -> None:
    """Refuse, before anything loads, a pickle that was not trusted."""
    if fmt == "keyedvectors" and not trust_pickle:
        raise OptionError(f"{path} is a gensim KeyedVectors pickle, and flair loads it with plain pickle, which "
                          "can run code; pass --option trust_pickle=true if you trust it, or save it as word2vec "
                          "(kv.save_word2vec_format('vectors.bin', binary=True)) and pass that")


def flair_input(path: str, fmt: str, cache_dir: str | None) -> tuple[str, bool]:
    """The path to give ``WordEmbeddings`` and its ``no_header`` flag, converting ``path`` if flair cannot read it."""
    suffix, compression = split_suffix(path)
    if not compression:
        if fmt == "word2vec-bin" and suffix == ".bin":
            check_vector_sizes(path, fmt)  # flair hands it to gensim, which allocates what the header declares
            return path, False
        if fmt in ("word2vec-text", "glove") and suffix == ".txt":
            check_vector_sizes(path, fmt)
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

    check_vector_sizes(path, fmt)  # declared sizes against what the file holds, before gensim allocates them
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
    atomic_write(target, lambda tmp: vectors.save_word2vec_format(str(tmp), binary=True))
    return str(target)
