"""MiniLM (a real 6-layer BERT): embedx (torch, ONNX, int8) against sentence-transformers, the GEMM peak and the pipeline ceiling.

A thin wrapper over ``embedx bench throughput`` (one measuring code path for every family):

    python benchmarks/bert_throughput.py [more bench throughput options, e.g. --max-texts 1000 --repeats 2]

runs ``embedx bench throughput -e minilm-l6 -e minilm-l6:backend=onnx -e minilm-l6:backend=onnx-int8
--out benchmarks/results/throughput/minilm``: per backend, texts/s alone and through extract, the
fraction of the fp32 GEMM peak measured in the same run, ``SentenceTransformer.encode`` as the peer
(alternating, outputs compared), batch-size and length sweeps against the peer, layers and pooling
sweeps, time to first vector and end to end in fresh processes, peak RSS, and where one call's
time goes. The naive pad-to-max loop of the earlier script is gone: sentence-transformers is the
peer that matters.
"""

from __future__ import annotations

import subprocess
import sys

EMBEDDERS = ["minilm-l6", "minilm-l6:backend=onnx", "minilm-l6:backend=onnx-int8"]
OUT = "benchmarks/results/throughput/minilm"


def main(argv: list[str]) -> int:
    cmd = [sys.executable, "-m", "embedx.cli", "bench", "throughput", *[a for e in EMBEDDERS for a in ("-e", e)]]
    cmd += argv if "--out" in argv else [*argv, "--out", OUT]
    print("$ embedx", " ".join(cmd[3:]), flush=True)
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
