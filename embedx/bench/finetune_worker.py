"""Child process for one fine-tuning run: job JSON in, predictions, curves, time and peak memory out."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def main(src: str, dst: str) -> None:
    from embedx.contract.errors import EmbedxError
    from embedx.contract.options import resolve_options
    from embedx.registry import get_registry

    job = json.loads(Path(src).read_text())
    entry = get_registry().finetuners[job["finetuner"]]
    try:
        tuner = entry.cls(**resolve_options(job["finetuner"], entry.cls, entry.defaults, job["options"]))
    except EmbedxError as exc:  # cannot run here (a missing module, a bad option): the reason, not a traceback
        Path(dst).write_text(json.dumps({"unavailable": str(exc)}))
        return
    started = time.perf_counter()
    result = tuner.run((job["train"][0], np.asarray(job["train"][1])),
                       (job["validation"][0], np.asarray(job["validation"][1])), job["test"],
                       job["n_classes"], job["seed"])
    seconds = time.perf_counter() - started
    Path(dst).write_text(
        json.dumps(
            {
                "validation_pred": np.asarray(result.validation_pred).tolist(),
                "test_pred": np.asarray(result.test_pred).tolist(),
                "curves": result.curves,
                "seconds": result.seconds or seconds,
                "extra": result.extra,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
