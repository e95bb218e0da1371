"""``flair-char-lm``: Flair's contextual string embeddings from local character language models."""

from __future__ import annotations

from embedx_flair.components import CharLM
from embedx_flair.sentences import Tokenizer
from embedx_flair.token_embedder import FlairTokenEmbedder, Pooling


class CharLMEmbedder(FlairTokenEmbedder):
    """``FlairEmbeddings`` of a forward and/or backward character LM ``.pt`` (forward first when both).

    Options:
        forward: the forward character language model (.pt)
        backward: the backward character language model (.pt)
        chars_per_chunk: characters per chunk the LM reads (memory stays flat on long texts)
        with_whitespace: include the space after a token in its state, as flair does by default
        lowercase: lowercase texts before the LM reads them
        pooling: how token vectors become the document vector (mean, max, min)
        tokenizer: how texts are split into flair tokens
        max_length: tokens kept per text; the rest is cut and counted
        trust_pickle: allow legacy-format .pt files, which torch unpickles (can run code)
    """

    id = "flair-char-lm"
    description = "Flair contextual string embeddings from local forward/backward character LMs, pooled"
    # the files' content hashes are in identity(): moving a model keeps its cache
    unkeyed_options = ("forward", "backward", "trust_pickle")

    def __init__(self, forward: str | None = None, backward: str | None = None, chars_per_chunk: int = 512,
                 with_whitespace: bool = True, lowercase: bool = False, pooling: Pooling = "mean",
                 tokenizer: Tokenizer = "segtok", max_length: int | None = None, trust_pickle: bool = False):
        settings = dict(chars_per_chunk=chars_per_chunk, with_whitespace=with_whitespace, lowercase=lowercase,
                        trust_pickle=trust_pickle)
        components = [CharLM(path, direction, option=direction, **settings)
                      for direction, path in (("forward", forward), ("backward", backward)) if path]
        if not components:
            raise ValueError("give a character language model: --option forward=FILE.pt and/or backward=FILE.pt")
        self._setup(components, pooling, tokenizer, max_length)
