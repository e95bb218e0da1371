"""Which vector-file format a path holds, and how gensim reads each one.

Detection is cheap (the suffix, then at most the first line or four bytes) so it can run when
the embedder is built; reading is the expensive part and runs in ``load()``. Compressed
``.gz``/``.bz2`` files are detected by the suffix before the compression suffix.
"""

from __future__ import annotations

from typing import Any, Literal

from embedx.plugin_api import EmbedderUnavailable, InputError, OptionError, check_vector_sizes, detect_vector_format

Format = Literal["auto", "word2vec-bin", "word2vec-text", "glove", "fasttext-bin", "fasttext-vec", "keyedvectors",
                 "gensim-model"]
#: Formats that carry character n-gram vectors when they hold a fastText model.
SUBWORD_CAPABLE = ("fasttext-bin", "keyedvectors", "gensim-model")


#: The concrete format of a path: by suffix, then by sniffing where the suffix is ambiguous (one
#: implementation for every plugin, in the core).
detect_format = detect_vector_format


def read_vectors(path: str, fmt: str, trust_pickle: bool) -> Any:
    """Read ``path`` as ``fmt`` into gensim ``KeyedVectors`` (a ``FastTextKeyedVectors`` for fastText models).

    The sizes a word2vec, GloVe or fastText file declares are checked against what it holds first:
    gensim allocates them before it reads a vector.
    """
    from gensim.models.keyedvectors import KeyedVectors

    try:
        check_vector_sizes(path, fmt)
    except InputError as exc:
        raise EmbedderUnavailable(str(exc)) from None  # one line naming the file, not a wrapped parser error

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
