"""``flair-transformer-word``: a local transformers checkpoint as frozen token embeddings."""

from __future__ import annotations

from typing import Literal

from embedx_flair.components import SubtokenPooling, Transformer
from embedx_flair.sentences import Tokenizer
from embedx_flair.token_embedder import FlairTokenEmbedder, Pooling


class TransformerWordEmbedder(FlairTokenEmbedder):
    """``TransformerWordEmbeddings(fine_tune=False)``: one vector per flair token from its subtokens.

    Options:
        model: a local transformers checkpoint folder
        layers: which layers (-1 = last, -1,-2,-3,-4, all)
        layer_combine: several layers averaged (mean, flair's default here) or side by side (concat)
        subtoken_pooling: how a token's word pieces become its vector (first, last, first_last, mean)
        allow_long_sentences: split texts longer than the model's window instead of cutting them
        pooling: how token vectors become the document vector (mean, max, min)
        tokenizer: how texts are split into flair tokens
        max_length: tokens kept per text; the rest is cut and counted
    """

    id = "flair-transformer-word"
    description = "Transformer token vectors via flair TransformerWordEmbeddings (frozen), pooled"
    unkeyed_options = ("model",)
    versioned = ("flair", "torch", "transformers")  # tokenizer and model code live in transformers
    layer_options = True
    option_aliases = {"layer_mean": ("layer_combine", {"true": "mean", "false": "concat"})}

    def __init__(self, model: str, layers: str = "-1", layer_combine: Literal["mean", "concat"] = "mean",
                 subtoken_pooling: SubtokenPooling = "first", allow_long_sentences: bool = True,
                 pooling: Pooling = "mean", tokenizer: Tokenizer = "segtok", max_length: int | None = None):
        component = Transformer(model, layers, layer_combine == "mean", subtoken_pooling, allow_long_sentences)
        self._setup([component], pooling, tokenizer, max_length)
