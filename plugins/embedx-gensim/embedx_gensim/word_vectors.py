"""The ``word-vectors`` embedder: pretrained word vectors, looked up per token and pooled per text.

Any format gensim reads (word2vec, GloVe, fastText, KeyedVectors) becomes a ``KeyedVectors``
in ``load()``; batches then cost about one dict lookup per token plus a few numpy reductions.
gensim is imported only in ``load()``, so registering this embedder stays instant. The packaged
GloVe and the word2vec/GloVe/.vec formats are parsed once per content and then memory-mapped
from embedx's cache folder (:mod:`embedx_gensim.vector_cache`), so a run with little to compute
does not pay seconds of parsing.
"""

from __future__ import annotations

import os
from itertools import repeat
from typing import Any, Literal

import numpy as np

from embedx.plugin_api import DOCUMENT, TOKEN, Embedder, EmbedderUnavailable, Embeddings, OptionError, Output, Ragged
from embedx_gensim.formats import SUBWORD_CAPABLE, Format, detect_format, read_vectors, untrusted_model_message
from embedx_gensim.identity import cached_digest, file_identity
from embedx_gensim.packaged import packaged_source
from embedx_gensim.pooling import Pooling, l2_normalize, pool
from embedx_gensim.tokenizer import Tokenizer
from embedx_gensim.vector_cache import Built, VectorTable, WordIndex, cached_table

Oov = Literal["skip", "zero", "subword"]
#: Formats whose vectors are cached as memory-mapped arrays after the first load (parsing them is the slow part).
CACHED_FORMATS = ("word2vec-bin", "word2vec-text", "glove", "fasttext-vec")


def _dict_lookup(key_to_index: dict[str, int]) -> Any:
    def lookup(tokens: list[str]) -> np.ndarray:
        return np.fromiter(map(key_to_index.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))

    return lookup


class WordVectors(Embedder):
    """Pooled word vectors from a vector file (``model=...``) or a packaged set (``model=kumo:glove-6b-50d``).

    Tokens missing from the vocabulary (OOV) are left out of pooling (``oov=skip``), pooled as
    zero vectors (``oov=zero``), or built from fastText character n-grams (``oov=subword``).
    In the ``tokens`` output every token keeps its row; an OOV token's row is zero unless
    ``subword`` gives it a vector. A text with no pooled token gets the zero document vector.

    Options:
        model: the vector file (word2vec .bin/.txt, GloVe .txt, fastText .bin/.vec, gensim .kv/.model, .gz/.bz2
            too) or a packaged set such as kumo:glove-6b-50d
        format: the file format; auto tells it from the suffix and first bytes
        trust_pickle: allow full gensim .model pickles, which can run code when loaded (.kv files load safely)
        pooling: how token vectors become one document vector (mean, sum, sqrtn, max)
        lowercase: lowercase tokens before lookup (GloVe 6B is lowercase)
        strip_punctuation: drop tokens that are only punctuation
        oov: tokens not in the vocabulary: skip them, pool them as zeros, or build them from subwords (fastText)
        max_length: tokens kept per text; the rest is cut and counted
        normalize: L2-normalise each document vector
    """

    id = "word-vectors"
    description = "Pooled pretrained word vectors (word2vec, GloVe, fastText, KeyedVectors files) via gensim"
    outputs = (
        Output("doc", DOCUMENT, description="token vectors pooled per text (zero if no token is in vocabulary)"),
        Output("tokens", TOKEN, description="one vector per token; zero for OOV tokens unless oov=subword"),
    )
    default_outputs = ("doc",)
    requires = {"gensim": "pip install gensim==4.4.0"}
    # identity() holds the file's content hash, so where the file lives does not matter,
    # and trusting a pickle changes whether it loads, not what it computes.
    unkeyed_options = ("model", "trust_pickle")
    option_aliases = {"path": "model"}  # the name before the shared vocabulary
    pooling_choices = ("mean", "sum", "sqrtn", "max")
    versioned = ("gensim",)
    batch_size = 256

    def __init__(self, model: str, format: Format = "auto", trust_pickle: bool = False, pooling: Pooling = "mean",
                 lowercase: bool = False, strip_punctuation: bool = True, oov: Oov = "skip",
                 max_length: int | None = None, normalize: bool = False):
        if max_length is not None and max_length < 1:
            raise ValueError("max_length must be at least 1 (or none)")
        path = model
        self.path, self.trust_pickle, self.pooling, self.oov = path, trust_pickle, pooling, oov
        self.max_length, self.normalize = max_length, normalize
        self.tokenize = Tokenizer(lowercase=lowercase, strip_punctuation=strip_punctuation)
        self.source = packaged_source(path)
        if self.source is not None:
            if format != "auto":
                raise OptionError(f"model={path} is a packaged vector set; leave format at auto")
            self.format, self.dim = "packaged", self.source.dim
        else:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"vector file {path} does not exist (option model)")
            self.format, self.dim = (detect_format(path) if format == "auto" else format), None
            if self.format == "gensim-model" and not trust_pickle:
                raise OptionError(untrusted_model_message(path))
        if oov == "subword" and self.format not in SUBWORD_CAPABLE:
            raise OptionError(f"oov=subword needs fastText vectors with character n-grams (a fastText .bin file, "
                              f"or a saved FastText model or its .kv); {path} is {self.format}")
        self._vectors: np.ndarray | None = None
        self._lookup: Any = None
        self._subword: Any = None

    # -- what identifies the output -------------------------------------------------
    def identity(self) -> dict[str, Any]:
        if self.source is not None:
            return {"source": self.source.identity()}
        return {"format": self.format, "file": file_identity(self.path)}

    def output_specs(self) -> tuple[Output, ...]:
        return tuple(Output(o.name, o.level, dim=self.dim, description=o.description) for o in self.outputs)

    # -- loading --------------------------------------------------------------------
    def load(self) -> None:
        if self.source is not None:
            kv = self.source.load()
        elif self.format in CACHED_FORMATS and self.oov != "subword":
            kv = self._cached_table()
        else:
            kv = self._read()
        self._vectors = np.asarray(kv.vectors, dtype=np.float32)  # a memory map stays one: no copy
        self._lookup = kv.lookup if isinstance(kv, VectorTable) else _dict_lookup(kv.key_to_index)
        self.dim = int(self._vectors.shape[1])
        if self.oov == "subword":
            if getattr(kv, "bucket", 0) == 0 or not hasattr(kv, "vectors_ngrams"):
                raise OptionError(f"oov=subword: {self.path} has no character n-gram vectors "
                                  "(it is not a fastText model with subword information)")
            self._subword = kv.get_vector  # for OOV words, the mean of their n-gram vectors

    def _read(self) -> Any:
        try:
            return read_vectors(self.path, self.format, self.trust_pickle)
        except (EmbedderUnavailable, OptionError, ImportError, OSError):
            raise
        except Exception as exc:  # a malformed file: say which file and format, not a parser traceback
            raise EmbedderUnavailable(f"could not read {self.path} as {self.format}: "
                                      f"{type(exc).__name__}: {exc}") from exc

    def _cached_table(self) -> VectorTable:
        """A word2vec/GloVe/.vec file as memory-mapped arrays, parsed once per file content (see vector_cache)."""
        source = {"format": self.format, "sha256": cached_digest(self.path)}

        def build() -> Built:
            kv = self._read()
            vectors = np.asarray(kv.vectors, dtype=np.float32)
            return Built(WordIndex.from_mapping(kv.key_to_index), vectors, *vectors.shape)

        return cached_table(source, build)

    # -- embedding ------------------------------------------------------------------
    def embed_batch(self, texts: list[str]) -> Embeddings:
        if self._vectors is None:
            self.load()
        token_lists, truncated = [], []
        for text in texts:
            tokens = self.tokenize(text)
            cut = 0
            if self.max_length is not None and len(tokens) > self.max_length:
                cut = len(tokens) - self.max_length
                tokens = tokens[: self.max_length]
            token_lists.append(tokens)
            truncated.append(cut)
        flat = [t for tokens in token_lists for t in tokens]
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(texts))
        index = self._lookup(flat)
        known = index >= 0
        vectors = np.zeros((len(flat), self.dim), dtype=np.float32)
        vectors[known] = self._vectors[index[known]]
        include = known if self.oov == "skip" else np.ones(len(flat), dtype=bool)
        if self.oov == "subword":
            self._fill_subwords(flat, known, vectors)

        outputs: dict[str, Any] = {}
        requested = self.requested_outputs or self.default_outputs
        if "doc" in requested:
            doc = pool(vectors, lengths, include, self.pooling)
            outputs["doc"] = l2_normalize(doc) if self.normalize else doc
        if "tokens" in requested:
            arrays = np.split(vectors, np.cumsum(lengths)[:-1]) if len(texts) else []
            outputs["tokens"] = Ragged(arrays=arrays, tokens=token_lists)
        return Embeddings(outputs, truncated)

    def _fill_subwords(self, flat: list[str], known: np.ndarray, vectors: np.ndarray) -> None:
        """Give each OOV token the mean of its character n-gram vectors, computing each distinct word once."""
        cache: dict[str, np.ndarray] = {}
        for position in np.flatnonzero(~known):
            word = flat[position]
            if word not in cache:
                cache[word] = self._subword(word)
            vectors[position] = cache[word]
