"""embedx-gensim: pretrained word vectors (word2vec, GloVe, fastText, KeyedVectors) as embedx embedders."""

from __future__ import annotations

from embedx_gensim.word_vectors import WordVectors

__version__ = "0.1.0"
__all__ = ["WordVectors", "__version__"]
