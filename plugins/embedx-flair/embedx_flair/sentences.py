"""Texts to flair ``Sentence`` objects: tokenizing, ``max_length`` cuts, and texts with no token.

flair cannot embed a Sentence without tokens (pooling an empty list raises), so a text that
tokenizes to nothing (empty, whitespace) gets no Sentence at all; the batch code gives it a
zero document vector and no token rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Tokenizer = Literal["segtok", "space"]


@dataclass
class Prepared:
    """One batch: a Sentence per text (``None`` for a text without tokens) and the tokens ``max_length`` cut."""

    sentences: list[Any]
    truncated: list[int]

    @property
    def live(self) -> list[Any]:
        return [s for s in self.sentences if s is not None]


def check_max_length(max_length: int | None) -> None:
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be at least 1 (got {max_length}); leave it unset to keep every token")


def make_tokenizer(kind: Tokenizer) -> Any:
    """flair's segtok tokenizer (its default: splits punctuation and clitics) or plain whitespace splitting."""
    from flair.tokenization import SegtokTokenizer, SpaceTokenizer

    if kind == "segtok":
        return SegtokTokenizer()
    if kind == "space":
        return SpaceTokenizer()
    raise ValueError(f"unknown tokenizer {kind!r}; choose segtok or space")


def prepare(texts: list[str], tokenizer: Any, max_length: int | None) -> Prepared:
    """Tokenize each text; keep at most ``max_length`` tokens and count the rest."""
    from flair.data import Sentence

    sentences: list[Any] = []
    truncated: list[int] = []
    for text in texts:
        sentence = Sentence(text, use_tokenizer=tokenizer) if text.strip() else None
        cut = 0
        if sentence is not None and max_length is not None and len(sentence) > max_length:
            cut = len(sentence) - max_length
            # flair's models read tokens joined by single spaces, so rebuilding from the kept token texts
            # gives them exactly what the first max_length tokens of the full text would.
            sentence = Sentence([token.text for token in sentence.tokens[:max_length]])
        sentences.append(sentence if sentence is not None and len(sentence) else None)
        truncated.append(cut)
    return Prepared(sentences, truncated)
