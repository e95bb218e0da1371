"""The first counting pass: which words get a row, in frequency order.

Frequency order matters twice: shards are dealt round-robin from it (so every shard mixes
frequent and rare words, as in the Swivel paper), and the exported vocabulary file lists the
most frequent words first, like the published modules. Ties are broken by the word itself so a
vocabulary is the same on every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from embedx_swivel.errors import CorpusError, SwivelOptionError
from embedx_swivel.tokenizer import tokenize_all
from embedx_tfhub.corpus import Corpus


@dataclass
class Vocabulary:
    """Words most frequent first, their corpus counts, and what the corpus held in total."""

    words: list[str]
    counts: np.ndarray
    lowercase: bool = False
    corpus_tokens: int = 0
    corpus_documents: int = 0
    distinct_words: int = 0
    _index: dict[str, int] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        """word -> row."""
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.words)}
        return self._index

    @property
    def covered_tokens(self) -> int:
        """Corpus tokens that are vocabulary words (the rest are dropped before windowing)."""
        return int(self.counts.sum())


def select_words(counter: Counter, min_count: int, max_vocab: int | None) -> list[tuple[str, int]]:
    """Words with at least ``min_count`` occurrences, most frequent first, at most ``max_vocab``."""
    kept = [(w, c) for w, c in counter.items() if c >= min_count]
    kept.sort(key=lambda wc: (-wc[1], wc[0]))
    return kept[:max_vocab] if max_vocab else kept


def build_vocabulary(corpus: Corpus, min_count: int = 5, max_vocab: int | None = None, lowercase: bool = False,
                     on_progress: Callable[[int], None] | None = None) -> Vocabulary:
    """Count every token of the corpus once (a streaming pass) and keep the frequent ones."""
    if min_count < 1:
        raise SwivelOptionError(f"min_count must be at least 1, not {min_count}")
    if max_vocab is not None and max_vocab < 2:
        raise SwivelOptionError(f"max_vocab must be at least 2, not {max_vocab}")
    counter: Counter = Counter()
    tokens = documents = 0
    for toks in tokenize_all(corpus.lines(), lowercase):
        counter.update(toks)
        tokens += len(toks)
        documents += 1
        if on_progress is not None and documents % 4096 == 0:
            on_progress(tokens)
    if tokens == 0:
        raise CorpusError(f"the corpus holds no tokens ({documents:,} lines, all empty or punctuation)")
    kept = select_words(counter, min_count, max_vocab)
    if len(kept) < 2:
        raise CorpusError(f"only {len(kept)} word(s) occur at least min_count={min_count} times in {tokens:,} tokens; "
                          "give a larger corpus or a smaller --min-count")
    return Vocabulary([w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64), lowercase,
                      tokens, documents, len(counter))
