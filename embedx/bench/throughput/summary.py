"""Figures derived from one subject's measurements, all from records of the same run.

Every rate is summarised as ``{"median", "min", "max", "n"}`` over the repeats (the spread is
min..max). A ratio against the peer is taken per repeat, between the embedder's and the peer's
measurements of the same round (they ran back to back), and then summarised the same way. The
fraction of the GEMM peak uses the best GEMM FLOP/s measured just before and just after this subject,
on its device.
"""

from __future__ import annotations

import statistics
from typing import Any

from embedx.bench.throughput.hardware import peak_flops


def spread(values: list[float | None]) -> dict[str, Any] | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return {"median": statistics.median(known), "min": min(known), "max": max(known), "n": len(known)}


def _pick(measurements: list[dict[str, Any]], sweep: str, kind: str, point: Any = None) -> dict[int, dict[str, Any]]:
    """Records of one sweep point and kind, by repeat."""
    return {m["repeat"]: m for m in measurements
            if m["sweep"] == sweep and m["kind"] == kind and (point is None or m["point"] == point)}


def _ratios(ours: dict[int, dict], theirs: dict[int, dict], field: str = "texts_s") -> dict[str, Any] | None:
    """``ours / theirs`` per repeat (same round), summarised."""
    return spread([ours[r][field] / theirs[r][field] for r in ours if r in theirs and theirs[r][field]])


def _rate(records: dict[int, dict], field: str = "texts_s") -> dict[str, Any] | None:
    return spread([m.get(field) for m in records.values()])


def summarize(record: dict[str, Any], gemm: list[dict[str, Any]]) -> dict[str, Any]:
    ms = record["measurements"]
    model, peer = _pick(ms, "defaults", "model"), _pick(ms, "defaults", "peer")
    extract, ceiling = _pick(ms, "defaults", "extract"), _pick(ms, "defaults", "ceiling")
    out: dict[str, Any] = {
        "model_texts_s": _rate(model), "model_tokens_s": _rate(model, "tokens_s"),
        "model_batch_ms_p50": _rate(model, "batch_ms_p50"), "model_batch_ms_p95": _rate(model, "batch_ms_p95"),
        "extract_texts_s": _rate(extract), "extract_tokens_s": _rate(extract, "tokens_s"),
        "peer_texts_s": _rate(peer), "peer_tokens_s": _rate(peer, "tokens_s"),
        "ratio_model_vs_peer": _ratios(model, peer), "ratio_extract_vs_peer": _ratios(extract, peer),
        "peak_rss_mb": _rate(model, "peak_rss_mb"), "gpu_peak_mb": _rate(model, "gpu_peak_mb"),
        "sm_util_mean": _rate(model, "sm_util_mean"),
    }
    # what the pipeline costs on top of the model: the same texts, the same round
    out["pipeline_share"] = spread([1 - model[r]["seconds"] / extract[r]["seconds"] for r in extract if r in model])
    out["extract_breakdown_s"] = {k: spread([m["extract"][k] for m in extract.values()])
                                  for k in ("compute_s", "staging_s", "commit_s", "total_s")} if extract else None
    out["ceiling"] = {
        "texts_s": _rate(ceiling), "tokens_s": _rate(ceiling, "tokens_s"),
        "texts_per_cpu_s": spread([m["texts"] / m["cpu_seconds"] for m in ceiling.values() if m["cpu_seconds"]]),
        "tokens_per_cpu_s": spread([m["tokens"] / m["cpu_seconds"] for m in ceiling.values() if m["cpu_seconds"]]),
    } if ceiling else None
    out["gemm"] = _gemm(record, gemm, out)
    out["batch"] = _sweep(ms, "batch")
    out["length"] = _sweep(ms, "length")
    out["layers"] = _sweep(ms, "layers")
    out["pooling"] = _sweep(ms, "pooling")
    out["cold"] = _cold(record.get("cold") or [])
    return out


def _gemm(record: dict[str, Any], gemm: list[dict[str, Any]], out: dict[str, Any]) -> dict[str, Any] | None:
    dtype = record["dtype"] if record["dtype"] in ("float32", "float16", "bfloat16") else "float32"
    peak = peak_flops(gemm, record["device"], dtype)
    flops = record.get("flops_per_token")
    result: dict[str, Any] = {"peak_flops_s": peak, "peak_dtype": "float32" if record["device"] == "cpu" else dtype,
                              "flops_per_token": flops}
    if not peak or not flops:
        return result
    per_text = flops * record["mean_tokens"]
    result["limit_texts_s"] = peak / per_text
    result["limit_tokens_s"] = peak / flops
    for name in ("model", "extract"):
        rate = out[f"{name}_tokens_s"]
        result[f"{name}_fraction"] = (
            {k: (v * flops / peak if k != "n" else v) for k, v in rate.items()} if rate else None
        )
    return result


def _sweep(ms: list[dict[str, Any]], sweep: str) -> list[dict[str, Any]]:
    points = []
    for point in dict.fromkeys(m["point"] for m in ms if m["sweep"] == sweep):
        model, peer = _pick(ms, sweep, "model", point), _pick(ms, sweep, "peer", point)
        any_record = next(iter(model.values()))
        points.append({"point": point, "batch_size": any_record["batch_size"], "texts": any_record["texts"],
                       "mean_tokens": any_record["tokens"] / max(1, any_record["texts"]),
                       "model_texts_s": _rate(model), "model_tokens_s": _rate(model, "tokens_s"),
                       "batch_ms_p50": _rate(model, "batch_ms_p50"), "batch_ms_p95": _rate(model, "batch_ms_p95"),
                       "peak_rss_mb": _rate(model, "peak_rss_mb"),
                       "peer_texts_s": _rate(peer), "ratio_model_vs_peer": _ratios(model, peer)})
    return points


def _cold(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def of(task: str, side: str) -> dict[int, dict[str, Any]]:
        return {r["repeat"]: r for r in runs if r["task"] == task and r["side"] == side and not r.get("error")}

    out: dict[str, Any] = {"errors": [f"{r['side']} {r['task']}: {r['error']}" for r in runs if r.get("error")]}
    for task in ("first-vector", "end-to-end"):
        ours, theirs = of(task, "embedder"), of(task, "peer")
        key = task.replace("-", "_")
        out[key] = {
            "embedder_s": _rate(ours, "seconds"),
            "peer_s": _rate(theirs, "seconds"),
            "embedder_peak_rss_mb": _rate(ours, "peak_rss_mb"),
            "peer_peak_rss_mb": _rate(theirs, "peak_rss_mb"),
            # > 1: embedx finished first
            "speedup_vs_peer": spread([theirs[r]["seconds"] / ours[r]["seconds"] for r in ours if r in theirs]),
            "texts": next((r.get("texts") for r in ours.values()), None),
        }
    return out
