"""Reading any word-vector file, and writing trained vectors where every tool can read them.

Reading goes through the gensim plugin when it is installed (the same format detection and
safety rules as the ``word-vectors`` embedder, and ``kumo:NAME`` packaged vectors), else straight
through gensim. Writing uses the word2vec text format (``<count> <dim>`` header), which gensim,
fastText tooling and ``embedx extract -e word-vectors -O model=...`` all read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedx_swivel.errors import CorpusError, SwivelError

FORMATS = ("auto", "word2vec-bin", "word2vec-text", "glove", "fasttext-bin", "fasttext-vec", "keyedvectors",
           "gensim-model")


def load_vectors(path: str, format: str = "auto", trust_pickle: bool = False) -> tuple[list[str], np.ndarray]:
    """(words in file order, float32 matrix) of a vector file or ``kumo:NAME`` packaged vectors."""
    from embedx.plugin_api import EmbedxError

    if format not in FORMATS:
        raise SwivelError(f"unknown vector format {format!r} (known: {', '.join(FORMATS)})")
    if path.startswith("kumo:"):
        return _load_packaged(path)
    if not Path(path).is_file():
        raise CorpusError(f"vector file {path}: {'a directory, not a file' if Path(path).is_dir() else 'not found'}")
    try:
        kv = _read_keyed_vectors(path, format, trust_pickle)
    except EmbedxError:
        raise
    except (ValueError, OSError, EOFError, UnicodeDecodeError, IndexError) as exc:
        raise CorpusError(f"cannot read {path} as {format} word vectors: {type(exc).__name__}: {exc}") from None
    words = list(kv.index_to_key)
    if not words:
        raise CorpusError(f"{path} holds no word vectors")
    return [str(w) for w in words], np.asarray(kv.vectors, dtype=np.float32)


def _load_packaged(path: str) -> tuple[list[str], np.ndarray]:
    try:
        from embedx_gensim.packaged import packaged_source
    except ImportError:
        raise SwivelError(f"{path} needs the embedx-gensim plugin: pip install -e plugins/embedx-gensim") from None
    try:
        source = packaged_source(path)
    except ValueError as exc:
        raise CorpusError(str(exc)) from None
    table = source.load()
    words = sorted(table.key_to_index, key=table.key_to_index.__getitem__)
    return words, np.asarray(table.vectors, dtype=np.float32)[[table.key_to_index[w] for w in words]]


def _read_keyed_vectors(path: str, format: str, trust_pickle: bool):
    try:
        from embedx_gensim.formats import detect_format, read_vectors
    except ImportError:  # the gensim plugin is optional: plain gensim covers the common formats
        return _read_with_gensim(path, format)
    return read_vectors(path, detect_format(path) if format == "auto" else format, trust_pickle)


def _read_with_gensim(path: str, format: str):
    from gensim.models import KeyedVectors

    from embedx.plugin_api import check_vector_sizes

    if format == "auto":
        format = "word2vec-bin" if path.endswith((".bin", ".bin.gz")) else "word2vec-text"
        if format == "word2vec-text":
            with open(path, "rb") as handle:
                head = handle.readline().split()
            if not (len(head) == 2 and all(p.isdigit() for p in head)):
                format = "glove"
    if format in ("word2vec-bin", "word2vec-text", "fasttext-vec", "glove"):
        check_vector_sizes(path, format)  # a header declaring more than the file holds is refused before allocation
    if format == "word2vec-bin":
        return KeyedVectors.load_word2vec_format(path, binary=True)
    if format in ("word2vec-text", "fasttext-vec", "glove"):
        return KeyedVectors.load_word2vec_format(path, binary=False, no_header=format == "glove")
    raise SwivelError(f"format {format} needs the embedx-gensim plugin: pip install -e plugins/embedx-gensim")


def write_word2vec_text(path: str | os.PathLike[str], words: list[str], vectors: np.ndarray) -> None:
    """``<count> <dim>`` then ``word v1 ... vd`` per line (6 significant digits), written atomically."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors, strict=True):
            handle.write(word + " " + " ".join(f"{x:.6g}" for x in row.tolist()) + "\n")
    os.replace(tmp, target)


def write_vocabulary(path: str | os.PathLike[str], words: list[str], counts: np.ndarray) -> None:
    """``word<TAB>count`` per line, most frequent first."""
    Path(path).write_text("".join(f"{w}\t{int(c)}\n" for w, c in zip(words, counts, strict=True)), encoding="utf-8")


def is_module(path: str | os.PathLike[str]) -> bool:
    """A SavedModel folder (what ``hub.load`` takes)."""
    return (Path(path) / "saved_model.pb").is_file()


def vectors_from_module(module_dir: str | os.PathLike[str], batch_size: int = 4096,
                        trust_module: bool = False) -> tuple[list[str], np.ndarray]:
    """Each word of a text-embedding module's ``assets/tokens.txt``, embedded *through* the module.

    A one-word sentence embeds to that word's row (sqrt-n of one token), after the module's own
    normalisation, so this reads any such module (ours or a published Swivel/NNLM one), not just
    its variables.
    """
    if not trust_module:  # a module from someone else: the same allow-list check as every TF Hub embedder
        from embedx_tfhub.safe_module import check_module

        check_module(module_dir)
    vocab = Path(module_dir) / "assets" / "tokens.txt"
    if not vocab.is_file():
        raise CorpusError(f"{module_dir} has no assets/tokens.txt: cannot list the module's words")
    words = [w for w in vocab.read_text(encoding="utf-8").splitlines() if w]
    from embedx_tfhub import _tf

    tf, hub = _tf.tensorflow(), _tf.hub()

    module = hub.load(str(module_dir))
    embed = module if callable(module) else (lambda x: module.signatures["default"](default=x)["default"])
    parts = [embed(tf.constant(words[i:i + batch_size])).numpy() for i in range(0, len(words), batch_size)]
    return words, np.concatenate(parts).astype(np.float32)
