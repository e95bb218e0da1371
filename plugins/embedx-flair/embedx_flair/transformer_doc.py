"""``flair-transformer-doc``: a local transformers checkpoint as a frozen document embedding."""

from __future__ import annotations

from typing import Any, Literal

import embedx
from embedx_flair.components import check_layers
from embedx_flair.flair_import import import_flair
from embedx_flair.model_files import folder_identity, local_transformer, transformer_dim
from embedx_flair.sentences import Tokenizer, check_max_length, make_tokenizer, prepare
from embedx_flair.token_embedder import REQUIRES

ClsPooling = Literal["cls", "mean", "max"]


class TransformerDocEmbedder(embedx.Embedder):
    """``TransformerDocumentEmbeddings(fine_tune=False)``: the [CLS] vector, or the mean/max over subtokens."""

    id = "flair-transformer-doc"
    description = "Transformer document vectors via flair TransformerDocumentEmbeddings (frozen)"
    outputs = (embedx.Output("doc", embedx.DOCUMENT, description="cls, mean or max over the subtokens"),)
    default_outputs = ("doc",)
    requires = REQUIRES
    versioned = ("flair", "torch", "transformers")  # tokenizer and model code live in transformers
    unkeyed_options = ("model",)
    batch_size = 32

    def __init__(self, model: str, layers: str = "-1", layer_mean: bool = False, cls_pooling: ClsPooling = "cls",
                 allow_long_sentences: bool = False, tokenizer: Tokenizer = "segtok", max_length: int | None = None):
        if allow_long_sentences and cls_pooling == "cls":
            raise ValueError("allow_long_sentences needs cls_pooling=mean or max (a long text has one [CLS] per window)")
        check_max_length(max_length)
        self.folder = local_transformer(model)
        self.layers, self.layer_mean, self.cls_pooling = check_layers(layers), layer_mean, cls_pooling
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

    def output_specs(self) -> tuple[embedx.Output, ...]:
        dim = self._dim or transformer_dim(self.folder, self.layers, self.layer_mean)
        return (embedx.Output("doc", embedx.DOCUMENT, dim, description=self.outputs[0].description),)

    def embed_batch(self, texts: list[str]) -> embedx.Embeddings:
        from embedx_flair.batch import run_batch  # numpy and torch: not at registration time

        prepared = prepare(texts, self._tokenize, self.max_length)
        return run_batch(prepared, self._embedding.embed, self._dim, ("doc",), self._embedding.name)
