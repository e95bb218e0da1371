"""The benchmark scripts run end to end: the GPU check's CPU rehearsal and the pipeline ceiling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def test_gpu_check_rehearses_on_the_cpu(tmp_path):
    env = dict(os.environ, EMBEDX_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--device", "cpu", "--tiny"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    rows = summary["rows"]
    assert not [r for r in rows if "error" in r], [r["error"] for r in rows if "error" in r]
    tools = {(r["model"], r["dtype"], r["tool"]) for r in rows if r["variant"] == "default"}
    assert len(tools) == 12  # 2 models x 3 precisions x (embedx, sentence-transformers)
    assert len([r for r in rows if r["variant"] != "default"]) == 4  # the fp16 diagnosis rows
    assert all(r["texts_s"] > 0 and r["tokens_s"] > 0 for r in rows)
    for checks in summary["checks"].values():  # same model, same numbers: the comparison is fair
        assert checks["embedx_vs_st_float32_max_abs"] < 1e-5
        assert checks["float16_vs_fp32_max_abs"] < 2e-3 and checks["bfloat16_vs_fp32_min_cosine"] >= 0.9999
    assert summary["ceiling"]["texts_s"] > 0


@pytest.mark.parametrize("shapes", ["bucketed"])
def test_pipeline_ceiling_counts_every_text(shapes):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import pipeline_ceiling
    finally:
        sys.path.remove(str(BENCHMARKS))
    texts = pipeline_ceiling.unique_texts(150, 2, [f"snippet {i} of a review" for i in range(40)])
    assert len(set(texts)) == 150
    row = pipeline_ceiling.measure(texts, 64, {"device": "cpu", "shapes": shapes, "token_budget": 2048})
    assert row["texts"] == 150 and row["tokens"] > 150 * 10 and row["texts_s"] > 0
