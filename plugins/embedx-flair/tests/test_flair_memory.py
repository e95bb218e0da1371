"""Memory stays flat over many batches: vectors leave as numpy, flair's Sentence embeddings are cleared."""

from __future__ import annotations

import gc
import random

import numpy as np
import psutil
from flair_helpers import save_char_lm

WORDS = ("film story actor scene plot funny dull long short gripping moving music camera night city "
         "love war family house road river morning winter").split()


def batch_texts(rng: random.Random, n: int = 32) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24))) for _ in range(n)]


def test_rss_stays_flat_over_100_batches(registry, tmp_path):
    # hidden 128: a leaked batch would pin its [chars, 32, 128] float hidden states (~1-2 MB) per batch
    path = save_char_lm(tmp_path / "lm.pt", True, hidden=128, texts=WORDS)
    embedder, _ = registry.create("flair-char-lm", {"forward": path})
    embedder.requested_outputs = ("doc", "tokens")
    embedder.load()
    rng = random.Random(0)
    process = psutil.Process()
    rss = []
    for number in range(100):
        result = embedder.embed_batch(batch_texts(rng))
        assert result.outputs["doc"].shape == (32, 128) and len(result.outputs["tokens"].arrays) == 32
        del result
        if number % 10 == 9:
            gc.collect()
            rss.append(process.memory_info().rss)
    growth_mb = (max(rss[2:]) - rss[1]) / 2**20  # after a warm-up of 20 batches
    print(f"RSS after warm-up {rss[1] / 2**20:.1f} MB, growth over the next 80 batches {growth_mb:.2f} MB")
    assert growth_mb < 8, [f"{r / 2**20:.1f}" for r in rss]


def test_outputs_share_no_memory_with_flair(registry, char_lms):
    embedder, _ = registry.create("flair-char-lm", {"forward": char_lms["forward"]})
    embedder.requested_outputs = ("tokens",)
    embedder.load()
    arrays = embedder.embed_batch(["one two three", "four"]).outputs["tokens"].arrays
    assert all(isinstance(a, np.ndarray) and a.flags.owndata and a.dtype == np.float32 for a in arrays)
