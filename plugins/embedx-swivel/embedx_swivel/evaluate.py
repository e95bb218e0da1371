"""A quality sanity check: word similarity against human judgements, next to a random baseline.

Spearman correlation on WordSim-353 (the copy gensim ships) is computed by gensim's
``KeyedVectors.evaluate_word_pairs`` over the pairs whose both words are in the vocabulary,
case-insensitively. The baseline gives the *same* vocabulary random Gaussian vectors, so it scores
the same pairs: it sits near 0 (spread about ``1/sqrt(pairs)``), and a model is only learning
something if it is clearly above it. Nearest neighbours of a few words make the result readable.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import asdict, dataclass, field

import numpy as np

#: Words whose neighbours are shown by default (common in news, reviews and mail alike).
PROBE_WORDS = ("good", "money", "computer", "government", "week", "film", "three", "internet")


@dataclass
class Evaluation:
    """WordSim-353 Spearman of the vectors and of random baselines, plus nearest neighbours."""

    spearman: float
    pearson: float
    pairs_used: int
    pairs_total: int
    random_spearman: list[float]
    vocabulary: int
    neighbours: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.random_spearman)) if self.random_spearman else float("nan")

    def as_dict(self) -> dict:
        """Plain JSON: a score that cannot be computed (no pair in the vocabulary) is ``None``."""
        out = asdict(self)
        out["random_mean"] = self.random_mean
        for key in ("spearman", "pearson", "random_mean"):
            out[key] = None if np.isnan(out[key]) else out[key]
        out["random_spearman"] = [None if np.isnan(x) else x for x in out["random_spearman"]]
        return out


def keyed_vectors(words: list[str], vectors: np.ndarray):
    """A gensim ``KeyedVectors`` over ``words`` (imports gensim)."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1], dtype=np.float32)
    kv.add_vectors(list(words), np.asarray(vectors, dtype=np.float32))
    return kv


def _wordsim(kv) -> tuple[float, float, float]:
    from gensim.test.utils import datapath

    logger = logging.getLogger("gensim.models.keyedvectors")
    level = logger.level
    logger.setLevel(logging.ERROR)  # gensim logs every OOV pair
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            (pearson, _), (spearman, _), oov = kv.evaluate_word_pairs(datapath("wordsim353.tsv"),
                                                                      restrict_vocab=len(kv), case_insensitive=True)
    except ValueError:  # gensim: no pair has both words in the vocabulary
        return float("nan"), float("nan"), 100.0
    finally:
        logger.setLevel(level)
    return float(pearson), float(spearman), float(oov)


def wordsim_pairs_total() -> int:
    from gensim.test.utils import datapath

    with open(datapath("wordsim353.tsv"), encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip() and not line.startswith("#"))


def evaluate_vectors(words: list[str], vectors: np.ndarray, probes: tuple[str, ...] = PROBE_WORDS,
                     topn: int = 5, random_seeds: int = 5) -> Evaluation:
    """Score ``vectors`` and ``random_seeds`` random baselines on WordSim-353; list probe neighbours."""
    kv = keyed_vectors(words, vectors)
    pearson, spearman, oov = _wordsim(kv)
    total = wordsim_pairs_total()
    used = int(round(total * (1 - oov / 100)))
    baselines = []
    for seed in range(random_seeds):
        noise = np.random.default_rng(seed).normal(size=vectors.shape).astype(np.float32)
        baselines.append(_wordsim(keyed_vectors(words, noise))[1])
    neighbours = {}
    for word in probes:
        if word in kv.key_to_index:
            neighbours[word] = [(w, round(float(s), 3)) for w, s in kv.most_similar(word, topn=topn)]
    return Evaluation(spearman, pearson, used, total, baselines, len(words), neighbours)
