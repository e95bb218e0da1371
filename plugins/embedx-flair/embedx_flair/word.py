"""``flair-word``: static word vectors through flair's ``WordEmbeddings``."""

from __future__ import annotations

from embedx_flair.components import WordVectors
from embedx_flair.sentences import Tokenizer
from embedx_flair.token_embedder import FlairTokenEmbedder, Pooling
from embedx_flair.word_files import Format


class WordEmbedder(FlairTokenEmbedder):
    """flair ``WordEmbeddings`` on a local word2vec / GloVe / KeyedVectors file; unknown words get zeros."""

    id = "flair-word"
    description = "Static word vectors (word2vec, GloVe, KeyedVectors) through flair WordEmbeddings, pooled"
    unkeyed_options = ("path", "trust_pickle", "cache_dir")
    batch_size = 64

    def __init__(self, path: str, format: Format = "auto", pooling: Pooling = "mean", tokenizer: Tokenizer = "segtok",
                 max_length: int | None = None, trust_pickle: bool = False, cache_dir: str | None = None):
        self._setup([WordVectors(path, format, trust_pickle, cache_dir)], pooling, tokenizer, max_length)
