"""``flair-word``: static word vectors through flair's ``WordEmbeddings``."""

from __future__ import annotations

from embedx_flair.components import WordVectors
from embedx_flair.sentences import Tokenizer
from embedx_flair.token_embedder import FlairTokenEmbedder, Pooling
from embedx_flair.word_files import Format


class WordEmbedder(FlairTokenEmbedder):
    """flair ``WordEmbeddings`` on a local word2vec / GloVe / KeyedVectors file; unknown words get zeros.

    Options:
        model: the vector file (word2vec .bin/.txt, GloVe .txt, fastText .vec, gensim .kv)
        format: the file format; auto tells it from the suffix and first bytes
        pooling: how token vectors become the document vector (mean, max, min)
        tokenizer: how texts are split into flair tokens
        max_length: tokens kept per text; the rest is cut and counted
        trust_pickle: allow .kv pickles, which flair loads with plain pickle (can run code)
        cache_dir: where files flair cannot read directly are converted to binary word2vec once
    """

    id = "flair-word"
    description = "Static word vectors (word2vec, GloVe, KeyedVectors) through flair WordEmbeddings, pooled"
    unkeyed_options = ("model", "trust_pickle", "cache_dir")
    write_options = ("cache_dir",)  # where it writes: never taken from a saved head
    option_aliases = {"path": "model"}  # the name before the shared vocabulary
    batch_size = 64

    def __init__(self, model: str, format: Format = "auto", pooling: Pooling = "mean", tokenizer: Tokenizer = "segtok",
                 max_length: int | None = None, trust_pickle: bool = False, cache_dir: str | None = None):
        self._setup([WordVectors(model, format, trust_pickle, cache_dir)], pooling, tokenizer, max_length)
