"""The biLM's corpus: one pass to count words and pick held-out text, then a reproducible stream of batches.

Documents (lines of text files or ``dataset:NAME`` texts, read with :class:`~embedx_tfhub.corpus.Corpus`)
are split on whitespace (the ``elmo`` embedder's tokens) and cut into sequences of at most
``max_tokens`` tokens. Nothing is held in memory but counts and the held-out sample:

- **held-out**: the ``heldout`` sequences with the smallest BLAKE2b hash of their text, a uniform
  sample of the whole corpus that does not depend on reading order; those texts never train;
- **vocabulary**: the ``max_vocab`` most frequent training words seen ``min_count`` times or more, after
  ``<S>``, ``</S>`` and ``<UNK>``;
- **stream**: per epoch, the sources are interleaved at random in proportion to their sequence
  counts (so a short run sees every source, not only the first), passed through a shuffle buffer,
  and cut into batches of similar length. The order depends only on ``seed`` and the epoch, so a
  resumed run regenerates it and skips the batches already trained.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from embedx_elmo_train.model import SPECIALS, UNK
from embedx_tfhub.corpus import Corpus


def sequences(text: str, max_tokens: int) -> Iterator[list[str]]:
    """A document's whitespace tokens in consecutive pieces of at most ``max_tokens``."""
    tokens = text.split()
    for start in range(0, len(tokens), max_tokens):
        yield tokens[start:start + max_tokens]


def text_key(tokens: list[str]) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(tokens).encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "big")


@dataclass
class CorpusSummary:
    """What the counting pass found."""

    words: list[str]  # vocabulary in id order, specials first
    heldout: list[list[str]]
    counts_per_source: list[int]  # training sequences per source
    tokens: int  # training tokens
    documents: int
    distinct_words: int
    unk_rate: float  # share of training tokens outside the vocabulary

    @property
    def heldout_keys(self) -> set[int]:
        """Every copy of a held-out text is kept out of training (the counts include a duplicate's other copies)."""
        return {text_key(s) for s in self.heldout}

    def as_dict(self) -> dict:
        return {"tokens": self.tokens, "documents": self.documents, "training_sequences": sum(self.counts_per_source),
                "sequences_per_source": self.counts_per_source, "distinct_words": self.distinct_words,
                "vocabulary": len(self.words), "unk_rate": self.unk_rate,
                "heldout_sequences": len(self.heldout), "heldout_tokens": sum(len(s) for s in self.heldout)}


def _source_corpora(corpus: Corpus) -> list[Corpus]:
    parts = [Corpus(sources=(s,), encoding_errors=corpus.encoding_errors) for s in corpus.sources]
    if corpus.texts:
        parts.append(Corpus(texts=corpus.texts, encoding_errors=corpus.encoding_errors))
    return parts


def summarize(corpus: Corpus, max_tokens: int, heldout: int, min_count: int, max_vocab: int | None) -> CorpusSummary:
    """One streaming pass: word counts, per-source sequence counts, and the held-out sample."""
    counts: Counter[str] = Counter()
    heap: list[tuple[int, list[str]]] = []  # max-heap (negated keys) of the smallest hashes
    per_source, documents = [], 0
    for part in _source_corpora(corpus):
        n = 0
        for line in part.lines():
            documents += 1
            for seq in sequences(line, max_tokens):
                n += 1
                counts.update(seq)
                if heldout:
                    key = text_key(seq)
                    if len(heap) < heldout:
                        heapq.heappush(heap, (-key, seq))
                    elif -heap[0][0] > key:
                        heapq.heapreplace(heap, (-key, seq))
        per_source.append(n)
    held = [seq for _, seq in sorted(heap, key=lambda item: -item[0])]
    for seq in held:  # held-out words are not training counts
        counts.subtract(seq)
    counts = +counts
    tokens = sum(counts.values())
    ranked = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
    ranked = [w for w in ranked if w not in SPECIALS]
    if max_vocab:
        ranked = ranked[:max_vocab]
    known = sum(counts[w] for w in ranked)
    return CorpusSummary([*SPECIALS, *ranked], held, per_source, tokens, documents, len(counts),
                         1.0 - known / tokens if tokens else 0.0)


class Vocabulary:
    """Word -> id, ``<UNK>`` for the rest; ids are frequency ranks (what the log-uniform sampler assumes)."""

    def __init__(self, words: list[str]):
        if list(words[:len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"a biLM vocabulary starts with {', '.join(SPECIALS)}")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.unk = self.index[UNK]

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, tokens: list[str]) -> list[int]:
        """``<S>`` + the tokens' ids + ``</S>``."""
        return [0, *(self.index.get(t, self.unk) for t in tokens), 1]


@dataclass
class Batch:
    tokens: np.ndarray  # [B, T] object (str), padded with ""
    lengths: np.ndarray  # [B] int32
    targets: np.ndarray  # [B, T + 2] int32: <S>, ids, </S>, padding 0

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())


def make_batch(seqs: list[list[str]], vocab: Vocabulary) -> Batch:
    width = max(len(s) for s in seqs)
    tokens = np.full((len(seqs), width), "", dtype=object)
    targets = np.zeros((len(seqs), width + 2), np.int32)
    for i, seq in enumerate(seqs):
        tokens[i, :len(seq)] = seq
        ids = vocab.ids(seq)
        targets[i, :len(ids)] = ids
    return Batch(tokens, np.array([len(s) for s in seqs], np.int32), targets)


def batches(corpus: Corpus, heldout_keys: set[int], counts_per_source: list[int], vocab: Vocabulary,
            max_tokens: int, batch_size: int, seed: int, epoch: int, shuffle_buffer: int = 8192) -> Iterator[Batch]:
    """One epoch of training batches, reproducible from ``seed`` and ``epoch``; held-out texts are skipped."""
    rng = random.Random(seed * 1_000_003 + epoch)
    streams = [(_training_sequences(part, max_tokens, heldout_keys), n)
               for part, n in zip(_source_corpora(corpus), counts_per_source, strict=True)]
    remaining = [n for _, n in streams]
    iterators = [it for it, _ in streams]
    buffer: list[list[str]] = []
    group = batch_size * 32  # sort this many by length, so a batch pads little

    def interleaved() -> Iterator[list[str]]:
        while any(remaining):
            k = rng.choices(range(len(remaining)), weights=remaining)[0]
            item = next(iterators[k], None)
            if item is None:  # fewer than counted (the corpus changed): stop drawing from it
                remaining[k] = 0
                continue
            remaining[k] -= 1
            yield item

    def flush(items: list[list[str]]) -> Iterator[Batch]:
        items.sort(key=len)
        cut = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
        rng.shuffle(cut)
        for seqs in cut:
            yield make_batch(seqs, vocab)

    pending: list[list[str]] = []
    for seq in interleaved():
        if len(buffer) < shuffle_buffer:
            buffer.append(seq)
            continue
        j = rng.randrange(len(buffer))
        buffer[j], seq = seq, buffer[j]
        pending.append(seq)
        if len(pending) >= group:
            yield from flush(pending)
            pending = []
    rng.shuffle(buffer)
    pending.extend(buffer)
    while pending:
        yield from flush(pending[:group])
        pending = pending[group:]


def _training_sequences(part: Corpus, max_tokens: int, heldout_keys: set[int]) -> Iterator[list[str]]:
    for line in part.lines():
        for seq in sequences(line, max_tokens):
            if not heldout_keys or text_key(seq) not in heldout_keys:
                yield seq
