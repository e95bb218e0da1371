"""``flair-transformer-word``: a local transformers checkpoint as frozen token embeddings."""

from __future__ import annotations

from embedx_flair.components import SubtokenPooling, Transformer
from embedx_flair.sentences import Tokenizer
from embedx_flair.token_embedder import FlairTokenEmbedder, Pooling


class TransformerWordEmbedder(FlairTokenEmbedder):
    """``TransformerWordEmbeddings(fine_tune=False)``: one vector per flair token from its subtokens."""

    id = "flair-transformer-word"
    description = "Transformer token vectors via flair TransformerWordEmbeddings (frozen), pooled"
    unkeyed_options = ("model",)
    versioned = ("flair", "torch", "transformers")  # tokenizer and model code live in transformers

    def __init__(self, model: str, layers: str = "-1", layer_mean: bool = True,
                 subtoken_pooling: SubtokenPooling = "first", allow_long_sentences: bool = True,
                 pooling: Pooling = "mean", tokenizer: Tokenizer = "segtok", max_length: int | None = None):
        component = Transformer(model, layers, layer_mean, subtoken_pooling, allow_long_sentences)
        self._setup([component], pooling, tokenizer, max_length)
