"""An embedx plugin in one class and one hook: surface statistics of a text.

Counts like length, shouting, digits, links and exclamation marks are the oldest spam and
sentiment features; here they are a small, real embedder that shows every part of the
contract: options from ``__init__``, a document and a token output, truncation reporting.
"""

from __future__ import annotations

import re

import numpy as np

from embedx import plugin_api as api  # everything a plugin may use from embedx

_TOKEN = re.compile(r"\S+")
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
FEATURES = ("chars", "words", "mean_word_length", "upper_ratio", "digit_ratio", "punct_ratio", "urls", "exclamations")


class TextStats(api.Embedder):
    """Surface statistics of a text, and per-token length, case and digits.

    Options:
        log_counts: log1p of counts, so long texts do not dominate
        max_length: whitespace tokens kept per text; the rest is cut and counted
    """

    id = "text-stats"
    description = "Surface statistics: length, case, digits, punctuation, URLs (example plugin)"
    outputs = (
        api.Output("doc", api.DOCUMENT, dim=len(FEATURES), description=", ".join(FEATURES)),
        api.Output("tokens", api.TOKEN, dim=3, description="length, is_upper, has_digit per token"),
    )
    default_outputs = ("doc",)
    batch_size = 512

    def __init__(self, log_counts: bool = True, max_length: int | None = None):
        self.log_counts = log_counts  # log1p of counts keeps long texts from dominating
        self.max_length = max_length

    def embed_batch(self, texts: list[str]) -> api.Embeddings:
        docs, arrays, tokens, truncated = [], [], [], []
        for text in texts:
            words = _TOKEN.findall(text)
            cut = max(0, len(words) - self.max_length) if self.max_length is not None else 0
            words = words[: len(words) - cut]
            truncated.append(cut)
            docs.append(self._doc(text, words))
            arrays.append(np.array([[len(w), w.isupper(), any(c.isdigit() for c in w)] for w in words],
                                   dtype=np.float32).reshape(len(words), 3))
            tokens.append(words)
        outputs = {"doc": np.array(docs, dtype=np.float32), "tokens": api.Ragged(arrays, tokens)}
        return api.Embeddings({k: v for k, v in outputs.items() if k in self.requested_outputs}, truncated)

    def _doc(self, text: str, words: list[str]) -> list[float]:
        n = max(len(text), 1)
        letters = [c for c in text if c.isalpha()]
        counts = [len(text), len(words), len(_URL.findall(text)), text.count("!")]
        if self.log_counts:
            counts = [float(np.log1p(c)) for c in counts]
        chars, n_words, urls, bangs = counts
        return [chars, n_words, float(np.mean([len(w) for w in words])) if words else 0.0,
                sum(c.isupper() for c in letters) / max(len(letters), 1), sum(c.isdigit() for c in text) / n,
                sum(not c.isalnum() and not c.isspace() for c in text) / n, urls, bangs]


@api.hookimpl
def register_embedders(register):
    register(TextStats)
