"""The flair token embeddings this plugin builds, each with the facts that identify its output.

A component is one flair ``TokenEmbeddings`` (a character LM, a word-vector table, a
transformer): the single embedders use one or two, ``flair-stacked`` any mix. ``identity()``
is cheap (cached file hashes plus settings) and never imports flair; ``build()`` loads the
model. Everything that changes the vectors is in the identity, so a stack's cache key is the
list of its components' identities.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any, Literal

from embedx.plugin_api import EmbedderUnavailable, OptionError
from embedx_flair import word_files
from embedx_flair.model_files import cached_digest, folder_identity, local_char_lm, local_transformer, transformer_dim
from embedx_flair.shape_buckets import pad_to_steps

SubtokenPooling = Literal["first", "last", "first_last", "mean"]


def check_layers(layers: str) -> str:
    """flair's layer spec: ``all`` or comma-separated indices (``-1``, ``-1,-2,-3,-4``)."""
    text = layers.replace(" ", "")
    if text != "all" and not all(part.lstrip("-").isdigit() for part in text.split(",")):
        raise ValueError(f"layers={layers!r}: pass 'all' or comma-separated layer indices such as -1 or -1,-2,-3,-4")
    return text


@dataclass
class CharLM:
    """A flair character language model (``FlairEmbeddings``) from a local ``.pt`` file."""

    path: str
    direction: Literal["forward", "backward"] | None = None  # what the option promised; None: either
    chars_per_chunk: int = 512
    with_whitespace: bool = True
    lowercase: bool = False
    trust_pickle: bool = False
    option: str = "path"

    def __post_init__(self) -> None:
        self.path = local_char_lm(self.path, self.option)
        if self.chars_per_chunk < 1:
            raise ValueError(f"chars_per_chunk must be at least 1 (got {self.chars_per_chunk})")

    def dim_hint(self) -> int | None:
        return None  # in the pickled checkpoint: known after load

    def identity(self) -> dict[str, Any]:
        return {"kind": "char-lm", "sha256": cached_digest(self.path), "chars_per_chunk": self.chars_per_chunk,
                "with_whitespace": self.with_whitespace, "lowercase": self.lowercase}

    def build(self) -> Any:
        from flair.embeddings import FlairEmbeddings

        from embedx_flair.safe_checkpoint import load_language_model

        # trusted: torch unpickles it as flair would (legacy format included); its weights are checked either way
        model = load_language_model(self.path, trusted=self.trust_pickle)
        embedding = FlairEmbeddings(model, fine_tune=False, chars_per_chunk=self.chars_per_chunk,
                                    with_whitespace=self.with_whitespace, is_lower=self.lowercase, name=self.path)
        pad_to_steps(embedding.lm)
        actual = "forward" if embedding.is_forward_lm else "backward"
        if self.direction is not None and actual != self.direction:
            raise OptionError(f"{self.option}={self.path} holds a {actual} language model; pass it as {actual}=...")
        return embedding


@dataclass
class WordVectors:
    """Static word vectors (flair ``WordEmbeddings``) from a word2vec, GloVe or KeyedVectors file."""

    path: str
    format: word_files.Format = "auto"
    trust_pickle: bool = False
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not os.path.isfile(self.path):
            raise EmbedderUnavailable(f"path={self.path!r}: no such vector file")
        self.path = os.path.abspath(self.path)
        if self.format == "auto":
            self.format = word_files.detect_format(self.path)
        word_files.check_readable(self.path, self.format, self.trust_pickle)

    def dim_hint(self) -> int | None:
        return None  # in the file: known after load

    def identity(self) -> dict[str, Any]:
        side = sorted(glob.glob(glob.escape(self.path) + ".*.npy"))  # arrays gensim's save() put beside a .kv
        return {"kind": "word", "format": self.format, "sha256": cached_digest(self.path),
                "side_files": {s[len(self.path):]: cached_digest(s) for s in side}}

    def build(self) -> Any:
        from flair.embeddings import WordEmbeddings

        source, no_header = word_files.flair_input(self.path, self.format, self.cache_dir)
        return WordEmbeddings(source, fine_tune=False, no_header=no_header)


@dataclass
class Transformer:
    """A transformers checkpoint as token embeddings (``TransformerWordEmbeddings``), never fine-tuned."""

    model: str
    layers: str = "-1"
    layer_mean: bool = True
    subtoken_pooling: SubtokenPooling = "first"
    allow_long_sentences: bool = True

    def __post_init__(self) -> None:
        self.folder = local_transformer(self.model)
        self.layers = check_layers(self.layers)

    def dim_hint(self) -> int | None:
        return transformer_dim(self.folder, self.layers, self.layer_mean)

    def identity(self) -> dict[str, Any]:
        return {"kind": "transformer", "files": folder_identity(self.folder), "layers": self.layers,
                "layer_mean": self.layer_mean, "subtoken_pooling": self.subtoken_pooling,
                "allow_long_sentences": self.allow_long_sentences}

    def build(self) -> Any:
        from flair.embeddings import TransformerWordEmbeddings

        # fine_tune=False: flair's default (True) makes the vectors "dynamic", recomputed and never stored
        return TransformerWordEmbeddings(self.folder, fine_tune=False, layers=self.layers, layer_mean=self.layer_mean,
                                         subtoken_pooling=self.subtoken_pooling,
                                         allow_long_sentences=self.allow_long_sentences)
