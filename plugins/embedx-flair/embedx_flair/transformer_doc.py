"""``flair-transformer-doc``: a local transformers checkpoint as a frozen document embedding."""

from __future__ import annotations

from typing import Any, Literal

from embedx import plugin_api as api  # everything a plugin may use from embedx
from embedx_flair.components import check_layers
from embedx_flair.flair_import import import_flair
from embedx_flair.model_files import folder_identity, local_transformer, transformer_dim
from embedx_flair.sentences import Tokenizer, check_max_length, make_tokenizer, prepare
from embedx_flair.token_embedder import REQUIRES

ClsPooling = Literal["cls", "mean", "max"]


class TransformerDocEmbedder(api.Embedder):
    """``TransformerDocumentEmbeddings(fine_tune=False)``: the [CLS] vector, or the mean/max over subtokens.

    Options:
        model: a local transformers checkpoint folder
        layers: which layers (-1 = last, -1,-2,-3,-4, all)
        layer_combine: several layers side by side (concat, flair's default here) or averaged (mean)
        pooling: the [CLS] vector (cls) or the mean or max over the subtokens
        allow_long_sentences: split long texts into windows (needs pooling mean or max)
        tokenizer: how texts are split into flair tokens before the model's own tokenizer
        max_length: tokens kept per text; the rest is cut and counted
    """

    id = "flair-transformer-doc"
    description = "Transformer document vectors via flair TransformerDocumentEmbeddings (frozen)"
    outputs = (api.Output("doc", api.DOCUMENT, description="cls, mean or max over the subtokens"),)
    default_outputs = ("doc",)
    requires = REQUIRES
    versioned = ("flair", "torch", "transformers")  # tokenizer and model code live in transformers
    unkeyed_options = ("model",)
    batch_size = 32
    layer_options = True
    pooling_choices = ("cls", "mean", "max")
    option_aliases = {"layer_mean": ("layer_combine", {"true": "mean", "false": "concat"}), "cls_pooling": "pooling"}

    def __init__(self, model: str, layers: str = "-1", layer_combine: Literal["concat", "mean"] = "concat",
                 pooling: ClsPooling = "cls", allow_long_sentences: bool = False, tokenizer: Tokenizer = "segtok",
                 max_length: int | None = None):
        if allow_long_sentences and pooling == "cls":
            raise ValueError("allow_long_sentences needs pooling=mean or max (a long text has one [CLS] per window)")
        check_max_length(max_length)
        self.folder = local_transformer(model)
        self.layers, self.layer_mean, self.cls_pooling = check_layers(layers), layer_combine == "mean", pooling
        self.allow_long_sentences, self.tokenizer, self.max_length = allow_long_sentences, tokenizer, max_length
        self._embedding: Any = None
        self._dim: int | None = None

    def identity(self) -> dict[str, Any]:
        return {"files": folder_identity(self.folder)}

    def load(self) -> None:
        import_flair()
        from flair.embeddings import TransformerDocumentEmbeddings

        # fine_tune=False: flair's default (True) makes the vectors "dynamic", recomputed and never stored
        self._embedding = TransformerDocumentEmbeddings(
            self.folder, fine_tune=False, layers=self.layers, layer_mean=self.layer_mean, cls_pooling=self.cls_pooling,
            allow_long_sentences=self.allow_long_sentences)
        self._embedding.eval()
        self._dim = self._embedding.embedding_length
        self._tokenize = make_tokenizer(self.tokenizer)

    def output_specs(self) -> tuple[api.Output, ...]:
        dim = self._dim or transformer_dim(self.folder, self.layers, self.layer_mean)
        return (api.Output("doc", api.DOCUMENT, dim, description=self.outputs[0].description),)

    def embed_batch(self, texts: list[str]) -> api.Embeddings:
        from embedx_flair.batch import run_batch  # numpy and torch: not at registration time

        prepared = prepare(texts, self._tokenize, self.max_length)
        return run_batch(prepared, self._embedding.embed, self._dim, ("doc",), self._embedding.name)
