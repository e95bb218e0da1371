"""GloVe document vectors: `embedx extract` against a plain numpy loop, start-up included, in the same run.

A thin wrapper over ``embedx bench throughput`` (one measuring code path for every family):

    python benchmarks/extract_glove.py [more bench throughput options]

runs ``embedx bench throughput -e glove-6b-50d --end-to-end-texts 200000
--out benchmarks/results/throughput/glove``. The peer is the loop a user writes: ``np.load`` the
package's matrix, read its word list, look tokens up, average (the embedder's own tokenizer, so the
numbers are the same; the largest difference is printed). End to end is a fresh process each:
``embedx extract FILE -e glove-6b-50d`` (HDF5 written) against the loop loading, computing and saving
an ``.npy``, on 200,000 distinct texts. In-process rows give the model alone, extract, the share of
extract spent outside the model, and the pipeline ceiling per CPU core.
"""

from __future__ import annotations

import subprocess
import sys

OUT = "benchmarks/results/throughput/glove"


def main(argv: list[str]) -> int:
    cmd = [sys.executable, "-m", "embedx.cli", "bench", "throughput", "-e", "glove-6b-50d"]
    if "--end-to-end-texts" not in argv:
        cmd += ["--end-to-end-texts", "200000"]
    cmd += argv if "--out" in argv else [*argv, "--out", OUT]
    print("$ embedx", " ".join(cmd[3:]), flush=True)
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
