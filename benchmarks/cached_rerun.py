"""A fully cached re-run against the first run, same input, same embedder, measured in one run.

Builds N unique lines from MR snippets (pairs of sentences), extracts GloVe-6B-50d document
vectors once, then again with nothing left to compute. Printed: the first run and the cached
re-run, in-process (``ExtractReport.seconds_total``, each in a fresh process) and as whole-process
wall time (``embedx extract`` started from the shell), and the re-run as a share of the first.
The goal (issue 12): the cached re-run costs at most 5% of the first in-process, 10% in wall time.

    python benchmarks/cached_rerun.py [--lines 200000] [--embedder glove-6b-50d] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IN_PROCESS = """
import json, sys
from embedx.pipeline.extraction import ExtractSettings, extract_file
from embedx.inputs import InputSpec
spec = InputSpec(sys.argv[1])
report = extract_file(spec, ExtractSettings(sys.argv[3], sys.argv[2]), name="bench")
print(json.dumps({"total": report.seconds_total, "computed": report.computed, "cached": report.cached}))
"""


def make_lines(count: int, out: Path) -> None:
    from embedx import datasets

    texts = [t.replace("\n", " ").strip() for t in datasets.load("mr", fetch=True).texts]
    texts = [t for t in dict.fromkeys(texts) if t]
    with out.open("w", encoding="utf-8") as handle:
        for n, (a, b) in enumerate(itertools.product(texts, texts)):
            if n >= count:
                break
            if a != b:
                handle.write(f"{a} {b}\n")


def timed(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--embedder", default="glove-6b-50d")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "lines.txt"
        make_lines(args.lines, data)
        cli = [sys.executable, "-m", "embedx.cli", "extract", str(data), "-e", args.embedder, "--no-progress",
               "--name", "bench", "-o"]
        rows = []
        for repeat in range(args.repeats):
            wall_out, proc_out = Path(tmp) / f"wall-{repeat}.h5", Path(tmp) / f"proc-{repeat}.h5"
            first_wall, _ = timed([*cli, str(wall_out)])
            cached_wall, _ = timed([*cli, str(wall_out)])
            first = json.loads(timed([sys.executable, "-c", IN_PROCESS, str(data), str(proc_out), args.embedder])[1])
            cached = json.loads(timed([sys.executable, "-c", IN_PROCESS, str(data), str(proc_out), args.embedder])[1])
            assert cached["computed"] == 0, cached
            rows.append({"first_wall": first_wall, "cached_wall": cached_wall, "first_in_process": first["total"],
                         "cached_in_process": cached["total"]})
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"{args.lines:,} lines, {args.embedder}, median of {args.repeats}")
        print(f"  in-process: first {med['first_in_process']:.2f} s, cached {med['cached_in_process']:.3f} s = "
              f"{100 * med['cached_in_process'] / med['first_in_process']:.1f}% of the first (goal <= 5%)")
        print(f"  wall:       first {med['first_wall']:.2f} s, cached {med['cached_wall']:.2f} s = "
              f"{100 * med['cached_wall'] / med['first_wall']:.1f}% of the first (goal <= 10%)")
        print(json.dumps({"lines": args.lines, "embedder": args.embedder, **med}))


if __name__ == "__main__":
    main()
