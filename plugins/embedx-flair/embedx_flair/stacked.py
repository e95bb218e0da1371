"""``flair-stacked``: several flair token embeddings side by side (``StackedEmbeddings``), pooled.

The ``stack`` option lists components as ``KIND:SOURCE`` separated by commas, in the order
their vectors are concatenated:

- ``char-lm:FILE.pt``  a character LM (its direction is read from the file)
- ``word:FILE``        word vectors (format detected from the suffix, as ``flair-word``)
- ``transformer:DIR``  a transformers checkpoint folder, or ``transformer:pkg:MODULE``

e.g. ``char-lm:fw.pt,char-lm:bw.pt,word:glove.txt``. Sources cannot contain commas.
Component settings come from the stack's own options (``chars_per_chunk``, ``layers``,
``subtoken_pooling``) or their defaults.
"""

from __future__ import annotations

from typing import Any

from embedx.plugin_api import OptionError
from embedx_flair.components import CharLM, SubtokenPooling, Transformer, WordVectors
from embedx_flair.sentences import Tokenizer
from embedx_flair.token_embedder import FlairTokenEmbedder, Pooling

KINDS = ("char-lm", "word", "transformer")


def parse_stack(stack: str) -> list[tuple[str, str]]:
    """``"char-lm:a.pt,word:b.txt"`` -> ``[("char-lm", "a.pt"), ("word", "b.txt")]``."""
    parts = []
    for item in (p.strip() for p in stack.split(",")):
        if not item:
            continue
        kind, sep, source = item.partition(":")
        if not sep or kind not in KINDS or not source:
            raise OptionError(f"stack item {item!r}: expected KIND:SOURCE with KIND one of {', '.join(KINDS)} "
                              "(e.g. char-lm:fw.pt,word:vectors.txt)")
        parts.append((kind, source))
    if not parts:
        raise OptionError("stack is empty: list components as KIND:SOURCE, e.g. char-lm:fw.pt,word:vectors.txt")
    return parts


class StackedEmbedder(FlairTokenEmbedder):
    """Concatenated token vectors of a list of components; see the module docstring for ``stack``.

    Options:
        stack: the components, KIND:SOURCE separated by commas (char-lm:fw.pt,word:glove.txt,transformer:DIR)
        pooling: how token vectors become the document vector (mean, max, min)
        tokenizer: how texts are split into flair tokens
        max_length: tokens kept per text; the rest is cut and counted
        chars_per_chunk: characters per character-LM chunk (memory stays flat on long texts)
        layers: transformer layers for transformer components
        subtoken_pooling: how a token's word pieces become its vector, for transformer components
        trust_pickle: allow legacy-format .pt and .kv pickles, which can run code
        cache_dir: where word-vector files flair cannot read are converted once
    """

    id = "flair-stacked"
    description = "Several flair token embeddings (char LMs, word vectors, transformers) concatenated, pooled"
    unkeyed_options = ("stack", "trust_pickle", "cache_dir")
    write_options = ("cache_dir",)  # where it writes: never taken from a saved head
    versioned = ("flair", "torch", "transformers")  # tokenizer and model code live in transformers

    def __init__(self, stack: str, pooling: Pooling = "mean", tokenizer: Tokenizer = "segtok",
                 max_length: int | None = None, chars_per_chunk: int = 512, layers: str = "-1",
                 subtoken_pooling: SubtokenPooling = "first", trust_pickle: bool = False,
                 cache_dir: str | None = None):
        components: list[Any] = []
        for kind, source in parse_stack(stack):
            if kind == "char-lm":
                components.append(CharLM(source, None, chars_per_chunk, trust_pickle=trust_pickle, option="char-lm"))
            elif kind == "word":
                components.append(WordVectors(source, "auto", trust_pickle, cache_dir))
            else:
                components.append(Transformer(source, layers, True, subtoken_pooling))
        self._setup(components, pooling, tokenizer, max_length)
