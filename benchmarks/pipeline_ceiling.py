"""The pipeline ceiling: embedx's extract path with a model that costs nothing, per wall second and per CPU core.

A thin wrapper: every ``embedx bench throughput`` run measures the ceiling of each embedder (the
same ``embedx.extract`` path, dedupe, cache lookup, validation, staging, HDF5 writing and commit,
with a no-op model returning zeros of the embedder's output shapes). This script runs only that,
for ``minilm-l6`` (``--embedder`` for another), and prints it:

    python benchmarks/pipeline_ceiling.py [--texts 20000] [--embedder minilm-l6] [-- more bench throughput options]

``measure(texts, batch_size, options)`` is the same measurement from Python. Unlike the script this
replaced, the no-op takes the place of the whole ``embed_batch`` (tokenizing included), so the
figure is embedx's own pipeline, whatever the plugin.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")


def unique_texts(n: int, snippets: int, source: list[str] | None = None) -> list[str]:
    """``n`` distinct texts, each ``snippets`` snippets joined (MR from embedx's datasets unless ``source``)."""
    import numpy as np

    if source is None:
        from embedx import datasets

        source = datasets.load("mr", fetch=True).texts
    rng = np.random.default_rng(0)
    seen: dict[str, None] = {}
    while len(seen) < n:
        for row in rng.integers(0, len(source), size=(n, snippets)):
            seen.setdefault(" ".join(source[i] for i in row), None)
            if len(seen) == n:
                break
    return list(seen)


def measure(texts: list[str], batch_size: int, options: dict[str, Any], embedder: str = "minilm-l6") -> dict:
    """One extract of ``texts`` through ``embedder``'s no-op twin (``embedx.bench.throughput``), with rates."""
    from embedx.bench.throughput import measure as measuring
    from embedx.bench.throughput.families import family_of, tokens
    from embedx.bench.throughput.proxies import NOOP_ID, extract_registry
    from embedx.registry import get_registry

    model, _ = get_registry().create(embedder, options)
    model.requested_outputs = tuple(type(model).default_outputs)
    model.load()
    counts = tokens(family_of(model), model, texts)
    with tempfile.TemporaryDirectory() as tmp:
        registry = extract_registry(model)
        measuring.extract(registry, NOOP_ID, texts[:16], counts[:16], batch_size, "cpu", Path(tmp), "ceiling")
        row = measuring.extract(registry, NOOP_ID, texts, counts, batch_size, "cpu", Path(tmp), "ceiling")
    return row | {"options": options, "cores": os.cpu_count(), "texts_per_cpu_s": row["texts"] / row["cpu_seconds"],
                  "tokens_per_cpu_s": row["tokens"] / row["cpu_seconds"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--embedder", default="minilm-l6")
    parser.add_argument("--out", default=None, help="report folder (default: a temporary one)")
    args, rest = parser.parse_known_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="pipeline-ceiling-")
    cmd = [sys.executable, "-m", "embedx.cli", "bench", "throughput", "-e", args.embedder, "--max-texts",
           str(args.texts), "--sweep", "none", "--peer", "none", "--no-cold", "--no-profile", "--repeats", "1",
           "--out", out, *[a for a in rest if a != "--"]]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    subject = json.loads((Path(out) / "throughput.json").read_text())["subjects"][0]
    ceiling = subject["summary"]["ceiling"]
    row = {key: value["median"] for key, value in ceiling.items()} | {"texts": subject["texts"],
                                                                      "cores": os.cpu_count()}
    print(f"pipeline ceiling of {args.embedder}: {row['texts_s']:,.0f} texts/s, {row['tokens_s']:,.0f} tokens/s on "
          f"{row['cores']} cores; {row['texts_per_cpu_s']:,.0f} texts and {row['tokens_per_cpu_s']:,.0f} tokens per "
          "CPU-second")
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    sys.exit(main() and 0)
