"""Where a torch model's time goes: one ``embed_batch`` call under ``torch.profiler``, split into kinds.

Self time of the operators on the calling thread is grouped into matrix products (the work the
GEMM peak bounds), attention kernels, and every other operator (layer norm, GELU, softmax, adds,
copies, embedding lookups); the call's wall time not spent inside any operator is Python and
tokenizing (``outside operators``). Runs only when torch is already imported (the embedder uses it).
"""

from __future__ import annotations

import sys
import time
from typing import Any

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
            "aten::_mkldnn", "mkldnn", "aten::_addmm_activation", "onednn", "aten::_linear")
ATTENTION_OPS = ("scaled_dot_product", "attention", "aten::_softmax", "aten::softmax")


def kind_of(name: str) -> str:
    lowered = name.lower()
    if any(op in lowered for op in ATTENTION_OPS):
        return "attention"
    if any(op in lowered for op in GEMM_OPS):
        return "matrix products"
    return "other operators"


def profile_call(embedder: Any, texts: list[str], device: str, top: int = 8) -> dict[str, Any] | None:
    """Seconds per kind for one call on ``texts``, and the top operators by self time."""
    if "torch" not in sys.modules:
        return None
    from torch.profiler import ProfilerActivity, profile

    from embedx.bench.throughput.hardware import sync

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        embedder.embed_batch(texts)
        sync(device)
        wall = time.perf_counter() - started
    events = prof.key_averages()
    kinds = {"matrix products": 0.0, "attention": 0.0, "other operators": 0.0}
    ops = []
    for event in events:
        seconds = event.self_cpu_time_total / 1e6
        kinds[kind_of(event.key)] += seconds
        ops.append((event.key, seconds))
    inside = sum(kinds.values())
    kinds["outside operators"] = max(0.0, wall - inside)
    ops.sort(key=lambda item: -item[1])
    return {"texts": len(texts), "wall_s": round(wall, 6),
            "seconds": {k: round(v, 6) for k, v in kinds.items()},
            "shares": {k: round(v / wall, 4) if wall else None for k, v in kinds.items()},
            "top_operators": [{"name": name, "self_s": round(s, 6), "kind": kind_of(name)} for name, s in ops[:top]],
            "note": "self CPU time of operators on the calling thread; profiling adds some overhead"}
