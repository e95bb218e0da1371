"""The shared shape of the token-level embedders: flair components, pooled into a document vector.

Each text becomes a flair Sentence; the components (one, two, or a stack) give every token a
vector (concatenated in component order); ``DocumentPoolEmbeddings`` with
``fine_tune_mode="none"`` pools them into the ``doc`` output (mean, max or min per dimension).
Subclasses only say which components they are made of.
"""

from __future__ import annotations

from typing import Any, Literal

from embedx import plugin_api as api  # everything a plugin may use from embedx
from embedx.plugin_api import OptionError
from embedx_flair.flair_import import import_flair
from embedx_flair.sentences import Tokenizer, check_max_length, make_tokenizer, prepare

Pooling = Literal["mean", "max", "min"]
REQUIRES = {"flair": "pip install flair==0.15.1", "torch": "pip install torch==2.13.0"}
#: flair orders a token's concatenated vectors by name ("0-...", "1-...", ...): past ten it would sort "10-" first.
MAX_COMPONENTS = 10


class FlairTokenEmbedder(api.Embedder):
    """Base of the embedders whose model gives one vector per flair token."""

    outputs = (
        api.Output("doc", api.DOCUMENT, description="token vectors pooled by DocumentPoolEmbeddings"),
        api.Output("tokens", api.TOKEN, description="one vector per flair token"),
    )
    default_outputs = ("doc",)
    requires = REQUIRES
    versioned = ("flair", "torch")
    batch_size = 32
    pooling_choices = ("mean", "max", "min")  # DocumentPoolEmbeddings' fine-tune-free modes

    components: list[Any]
    pooling: Pooling
    tokenizer: Tokenizer
    max_length: int | None

    def _setup(self, components: list[Any], pooling: Pooling, tokenizer: Tokenizer, max_length: int | None) -> None:
        if not components:
            raise OptionError(f"{self.id}: nothing to embed with; give at least one model")
        if len(components) > MAX_COMPONENTS:
            raise OptionError(f"{self.id}: at most {MAX_COMPONENTS} components (got {len(components)})")
        check_max_length(max_length)
        self.components, self.pooling, self.tokenizer, self.max_length = components, pooling, tokenizer, max_length
        self._pool: Any = None
        self._dim: int | None = None

    def identity(self) -> dict[str, Any]:
        return {"components": [component.identity() for component in self.components]}

    def load(self) -> None:
        import_flair()
        from flair.embeddings import DocumentPoolEmbeddings

        built = [component.build() for component in self.components]
        # the pool wraps the components in its own StackedEmbeddings (which renames them): token vectors
        # are read through that stack, so tokens and doc agree on names and order
        self._pool = DocumentPoolEmbeddings(built, pooling=self.pooling, fine_tune_mode="none")
        self._pool.eval()
        self._dim = self._pool.embedding_length
        self._token_names = self._pool.embeddings.get_names()
        self._tokenize = make_tokenizer(self.tokenizer)

    def output_specs(self) -> tuple[api.Output, ...]:
        dim = self._dim
        if dim is None:  # before load: known when every component can tell (transformers, from config.json)
            hints = [component.dim_hint() for component in self.components]
            dim = None if None in hints else sum(hints)
        return tuple(api.Output(o.name, o.level, dim, description=o.description) for o in self.outputs)

    def embed_batch(self, texts: list[str]) -> api.Embeddings:
        from embedx_flair.batch import run_batch  # numpy and torch: not at registration time

        prepared = prepare(texts, self._tokenize, self.max_length)
        embed = self._pool.embed if "doc" in self.requested_outputs else self._pool.embeddings.embed
        return run_batch(prepared, embed, self._dim, self.requested_outputs, self._pool.name, self._token_names)
