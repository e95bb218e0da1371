"""MiniLM (a real 6-layer BERT): embedx (torch, ONNX, int8) against sentence-transformers.

Also the GEMM peak and the pipeline ceiling.

A thin wrapper over ``embedx bench throughput`` (one measuring code path for every family):

    python benchmarks/bert_throughput.py [more bench throughput options, e.g. --max-texts 1000 --repeats 2]

runs ``embedx bench throughput -e minilm-l6 --out benchmarks/results/throughput/minilm`` (every
sweep), then ``embedx bench throughput -e minilm-l6:backend=onnx -e minilm-l6:backend=onnx-int8
--sweep batch --no-profile --out benchmarks/results/throughput/minilm-onnx`` (layers and pooling cost
the same on every backend). Per backend: texts/s alone and through extract, the fraction of the fp32
GEMM peak measured in the same run, ``SentenceTransformer.encode`` as the peer (alternating, outputs
compared), batch-size (and length) sweeps against the peer, time to first vector and end to end in
fresh processes, peak RSS, and where one call's time goes. The naive pad-to-max loop of the earlier
script is gone: sentence-transformers is the peer that matters.
"""

from __future__ import annotations

import subprocess
import sys

RUNS = (
    (["-e", "minilm-l6"], "benchmarks/results/throughput/minilm"),
    (["-e", "minilm-l6:backend=onnx", "-e", "minilm-l6:backend=onnx-int8", "--sweep", "batch", "--no-profile"],
     "benchmarks/results/throughput/minilm-onnx"),
)


def main(argv: list[str]) -> int:
    for embedders, out in RUNS:
        cmd = [sys.executable, "-m", "embedx.cli", "bench", "throughput", *embedders, *argv, "--out", out]
        print("$ embedx", " ".join(cmd[3:]), flush=True)
        code = subprocess.run(cmd).returncode
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
