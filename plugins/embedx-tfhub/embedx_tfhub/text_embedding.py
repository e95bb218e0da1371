"""``tfhub-text``: TF Hub text-embedding modules (gnews-swivel-20dim, nnlm-en-dim50/128, ...).

A batch of strings goes in, ``[batch, dim]`` comes out; the module does its own tokenizing
(punctuation stripped, split on spaces, vocabulary + OOV buckets, sqrt-n combiner for the
published ones). A TF2 module is called directly (``module(texts)``); a TF1 Hub format module
through its ``default`` signature. An empty text gets whatever the module returns for ``""``
(the published modules map it to an out-of-vocabulary bucket).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedx.plugin_api import DOCUMENT, EmbedderUnavailable, Embeddings, Output
from embedx_tfhub.base import TfHubEmbedder

PRESETS = {
    "gnews-swivel-20dim": ("https://tfhub.dev/google/tf2-preview/gnews-swivel-20dim/1",
                           "Swivel 20d word vectors trained on Google News, sqrt-n combined (TF Hub)"),
    "nnlm-en-dim50": ("https://tfhub.dev/google/nnlm-en-dim50/2",
                      "NNLM 50d token embeddings trained on Google News 7B, sqrt-n combined (TF Hub)"),
    "nnlm-en-dim128": ("https://tfhub.dev/google/nnlm-en-dim128/2",
                       "NNLM 128d token embeddings trained on Google News 200B, sqrt-n combined (TF Hub)"),
}


class TextEmbedding(TfHubEmbedder):
    """Any TF Hub text-embedding module (string batch in, one vector per text out).

    Options:
        model: the module's TF Hub URL (served from the TF Hub cache) or a local module folder
        trust_module: load a module folder whose graph reads or writes files or runs Python (skips the scan)
    """

    id = "tfhub-text"
    description = "TF Hub text-embedding module (string batch -> [batch, dim]), e.g. gnews-swivel, nnlm"
    outputs = (Output("doc", DOCUMENT, description="the module's sentence vector"),)
    default_outputs = ("doc",)
    batch_size = 256

    def __init__(self, model: str, trust_module: bool = False):
        self._init_handle(model, trust_module)
        self.dim: int | None = None
        self._call: Any = None

    def output_specs(self) -> tuple[Output, ...]:
        return (Output("doc", DOCUMENT, dim=self.dim, description=self.outputs[0].description),)

    def load(self) -> None:
        from embedx_tfhub import _tf

        tf = _tf.tensorflow()
        module = self._load_module()
        if callable(module):
            def call(texts):
                return module(tf.constant(texts, dtype=tf.string))
        elif "default" in getattr(module, "signatures", {}):
            signature = module.signatures["default"]

            def call(texts):
                return signature(default=tf.constant(texts, dtype=tf.string))["default"]
        else:
            raise EmbedderUnavailable(f"TF Hub module {self.handle} is neither callable nor has a 'default' "
                                      "signature: not a text-embedding module")
        probe = np.asarray(call(["probe"]))
        if probe.ndim != 2 or probe.shape[0] != 1:
            raise EmbedderUnavailable(f"TF Hub module {self.handle} returned shape {list(probe.shape)} for one "
                                      "text; a text-embedding module returns [batch, dim]")
        self.dim = int(probe.shape[1])
        self._call = call

    def embed_batch(self, texts: list[str]) -> Embeddings:
        self._ensure_loaded()
        vectors = np.asarray(self._call(list(texts)), dtype=np.float32)
        return Embeddings({"doc": vectors}, [0] * len(texts))
