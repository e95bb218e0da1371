"""The run's outputs: ``throughput.json`` (every measurement), ``report.md`` with plots, one terminal line each.

Plots need matplotlib (``pip install 'embedx[bench]'``); without it the report is written without
them and says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from embedx.files.atomic import atomic_write


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _med(stat: dict[str, Any] | None, digits: int = 0, scale: float = 1.0) -> str:
    return "-" if not stat else _num(stat["median"] * scale, digits)


def _range(stat: dict[str, Any] | None, digits: int = 2, scale: float = 1.0, suffix: str = "") -> str:
    """``median [min-max]``."""
    if not stat:
        return "-"
    m, lo, hi = (stat[k] * scale for k in ("median", "min", "max"))
    return f"{m:,.{digits}f}{suffix} [{lo:,.{digits}f}-{hi:,.{digits}f}]"


def _pct(stat: dict[str, Any] | None) -> str:
    return _range(stat, 1, 100, "%")


def summary_line(record: dict[str, Any]) -> str:
    """One line per subject: alone, in extract, against the limit, against the peer, start-up."""
    s = record["summary"]
    parts = [f"{_med(s['model_texts_s'])} texts/s alone", f"{_med(s['extract_texts_s'])} in extract "
             f"(pipeline {_med(s['pipeline_share'], 1, 100)}% of it)"]
    gemm = s.get("gemm") or {}
    if gemm.get("extract_fraction"):
        parts.append(f"{_med(gemm['extract_fraction'], 1, 100)}% of the GEMM limit "
                     f"({_num(gemm['limit_texts_s'])} texts/s)")
    peer = record.get("peer") or {}
    if peer.get("available") and s["ratio_model_vs_peer"]:
        diff = (record.get("agreement") or {}).get("max_abs_diff")
        parts.append(f"{peer['name']} x{_range(s['ratio_model_vs_peer'])} (max |diff| {diff:.1e})" if diff is not None
                     else f"{peer['name']} x{_range(s['ratio_model_vs_peer'])}")
    first = (s.get("cold") or {}).get("first_vector") or {}
    if first.get("embedder_s"):
        parts.append(f"first vector {_med(first['embedder_s'], 2)} s")
    return f"{record['label']}: " + "; ".join(parts)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "subject"


def write_outputs(results: dict[str, Any], out: Path) -> Path:
    """``throughput.json``, ``report.md`` and its plots in ``out``; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, default=str)
    atomic_write(out / "throughput.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    plots, note = _plots(results, out)
    report = render(results, plots, note)
    atomic_write(out / "report.md", lambda tmp: tmp.write_text(report, encoding="utf-8"))
    return out / "report.md"


# -- Markdown -------------------------------------------------------------------------------------

def render(results: dict[str, Any], plots: dict[str, str], note: str | None = None) -> str:
    m = results["machine"]
    after = results.get("machine_after") or {}
    lines = ["# embedx bench throughput", "",
             f"Run {results['created']} on {m.get('cpu_model') or '?'} ({m.get('cpus')} CPUs), "
             f"`{' '.join(results['command'][1:]) or '(Python API)'}`.", "",
             f"Load average (1, 5, 15 min) at the start {m.get('load_average')}, at the end "
             f"{after.get('load_average')}."]
    busy = {p["command"] for p in m.get("busy_processes", []) + after.get("busy_processes", [])}
    if busy:
        lines.append(f"Other processes using the CPU during the run: {', '.join(sorted(busy))}: figures are noisy; "
                     "compare within a round (ratios), not across runs.")
    t = results["texts"]
    lines += ["", f"Texts: {t['count']:,} distinct texts from {t['source']} (mean {t['mean_words']} words). "
              f"Repeats: {results['settings']['repeats']}, alternating embedder and peer; spreads are min-max.", ""]
    lines += _hardware(results["hardware"]["gemm"])
    lines += _overview(results["subjects"])
    for record in results["subjects"]:
        lines += _subject(record, plots.get(record["label"]))
    if note:
        lines += ["", note]
    lines += ["", "Every figure comes from `throughput.json` beside this report (fields: "
              "`embedx.bench.throughput.schema`)."]
    return "\n".join(lines) + "\n"


def _hardware(gemm: list[dict[str, Any]]) -> list[str]:
    lines = ["## Hardware peak (measured in this run)", "",
             "| library | device | dtype | size | threads | best GFLOP/s | median "
             "GFLOP/s | when |", "|---|---|---|---:|---:|---:|---:|---|"]
    for g in gemm:
        lines.append(f"| {g['library']} | {g['device']} | {g['dtype']} | {g['size']} | {g['threads'] or '-'} | "
                     f"{g['flops_s'] / 1e9:,.1f} | {g['flops_s_median'] / 1e9:,.1f} | {g['when']} |")
    return lines + [""]


def _overview(subjects: list[dict[str, Any]]) -> list[str]:
    lines = ["## Summary", "",
             "| embedder | texts/s alone | texts/s extract | pipeline share | % of GEMM limit (extract) | "
             "ceiling texts/s (per CPU-s) | peer | embedx / peer | max abs diff | first vector s | "
             "end to end s (peer) | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in subjects:
        if r.get("summary") is None:
            lines.append(f"| {r['label']} | {r.get('unavailable') or r.get('error')} |" + " |" * 11)
            continue
        s = r["summary"]
        gemm = s.get("gemm") or {}
        ceiling = s.get("ceiling") or {}
        peer = r.get("peer") or {}
        cold = s.get("cold") or {}
        e2e = cold.get("end_to_end") or {}
        diff = (r.get("agreement") or {}).get("max_abs_diff")
        lines.append(
            f"| {r['label']} | {_med(s['model_texts_s'])} | {_med(s['extract_texts_s'])} | "
            f"{_med(s['pipeline_share'], 1, 100)}% | {_med(gemm.get('extract_fraction'), 1, 100)} | "
            f"{_med(ceiling.get('texts_s'))} ({_med(ceiling.get('texts_per_cpu_s'))}) | "
            f"{peer.get('name') or '-'} | {_range(s['ratio_model_vs_peer'])} | "
            f"{'-' if diff is None else f'{diff:.1e}'} | "
            f"{_med((cold.get('first_vector') or {}).get('embedder_s'), 2)} | "
            f"{_med(e2e.get('embedder_s'), 2)} ({_med(e2e.get('peer_s'), 2)}) | {_med(s['peak_rss_mb'])} |")
    return lines + ["", "*alone*: `embed_batch` on batches of the embedder's default size, longest texts first; "
                    "*extract*: `embedx.extract` of the same texts into a fresh file (cache lookup, validation, "
                    "writing; model already loaded); *pipeline share*: the part of extract's time not spent in the "
                    "model; *ceiling*: extract with a no-op model of the same output shapes; *GEMM limit*: the "
                    "measured GEMM peak divided by the model's matrix FLOPs per text; *first vector* and *end to "
                    "end*: fresh processes (end to end is `embedx extract` on the command line, HDF5 written, against "
                    "the peer loading, encoding and saving `.npy`).", ""]


def _subject(r: dict[str, Any], plot: str | None) -> list[str]:
    lines = [f"## {r['label']}", ""]
    if r.get("summary") is None:
        return lines + [f"Not measured: {r.get('unavailable') or r.get('error')}", ""]
    s = r["summary"]
    peer = r.get("peer") or {}
    lines.append(f"Plugin `{r['plugin']}`, family {r['family']}, options `{r['options']}`, device {r['device']}"
                 f"{'' if r['device_declared'] else ' (the embedder declares no device option)'}, dtype {r['dtype']}; "
                 f"default batch {r['default_batch_size']}; {r['texts']:,} texts, mean {r['mean_tokens']:.1f} "
                 f"tokens ({r['token_unit']}); load in this process {r['load_s']:.2f} s.")
    lines.append("")
    lines.append(f"- alone: {_range(s['model_texts_s'], 1)} texts/s, {_med(s['model_tokens_s'])} tokens/s, "
                 f"{_med(s['model_batch_ms_p50'], 1)} ms per batch p50, {_med(s['model_batch_ms_p95'], 1)} p95")
    lines.append(f"- extract: {_range(s['extract_texts_s'], 1)} texts/s; pipeline share {_pct(s['pipeline_share'])}")
    if s.get("extract_breakdown_s"):
        b = s["extract_breakdown_s"]
        lines.append(f"  (inside extract: model and checks {_med(b['compute_s'], 3)} s, staging "
                     f"{_med(b['staging_s'], 3)} s, "
                     f"commit {_med(b['commit_s'], 3)} s of {_med(b['total_s'], 3)} s)")
    if s.get("ceiling"):
        c = s["ceiling"]
        lines.append(f"- pipeline ceiling (no-op model): {_range(c['texts_s'], 0)} texts/s, "
                     f"{_med(c['tokens_s'])} tokens/s; "
                     f"{_med(c['texts_per_cpu_s'])} texts and {_med(c['tokens_per_cpu_s'])} tokens per "
                     "CPU-second (per core)")
    gemm = s.get("gemm") or {}
    if gemm.get("limit_texts_s"):
        lines.append(f"- against the limit: {gemm['flops_per_token'] / 1e6:.2f} MFLOP per token, "
                     f"GEMM peak {gemm['peak_flops_s'] / 1e9:.1f} GFLOP/s ({gemm['peak_dtype']}): at most "
                     f"{gemm['limit_texts_s']:,.0f} texts/s; alone {_pct(gemm['model_fraction'])}, "
                     f"extract {_pct(gemm['extract_fraction'])} of it")
    elif gemm.get("peak_flops_s"):
        lines.append("- against the limit: the embedder states no FLOPs per token, so no fraction of the "
                     f"{gemm['peak_flops_s'] / 1e9:.1f} GFLOP/s peak")
    if peer.get("available"):
        agreement = r.get("agreement") or {}
        lines.append(f"- peer {peer['name']} (its default batch {peer.get('default_batch_size') or 'none'}): "
                     f"{_range(s['peer_texts_s'], 1)} texts/s; embedx alone / peer {_range(s['ratio_model_vs_peer'])}, "
                     f"extract / peer {_range(s['ratio_extract_vs_peer'])}")
        if agreement.get("comparable"):
            lines.append(f"  outputs agree on {agreement['texts']:,} texts: max |diff| "
                         f"{agreement['max_abs_diff']:.2e}, "
                         f"min cosine {agreement['min_cosine']:.6f}")
        elif agreement:
            lines.append(f"  outputs not comparable: {agreement.get('reason')}")
    else:
        lines.append(f"- no peer: {peer.get('reason')}")
    half = r.get("agreement_vs_float32") or {}
    if half.get("comparable"):
        lines.append(f"- {r['dtype']} against float32 (same texts): max |diff| {half['max_abs_diff']:.2e}, "
                     f"min cosine {half['min_cosine']:.6f}")
    if s["peak_rss_mb"]:
        lines.append(f"- peak RSS of this process during the model measurement: {_med(s['peak_rss_mb'])} MB"
                     + (f"; GPU {_med(s['gpu_peak_mb'])} MB, SM "
                        f"{_med(s['sm_util_mean'])}%" if s.get("gpu_peak_mb") else ""))
    lines += [""] + _cold(s.get("cold") or {}) + _sweeps(s) + _profile(r.get("profile"))
    if plot:
        lines += [f"![texts/s against batch size and length: {r['label']}]({plot})", ""]
    skipped = r.get("sweeps_skipped") or {}
    if skipped:
        lines += ["Sweeps skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()), ""]
    return lines


def _cold(cold: dict[str, Any]) -> list[str]:
    lines = []
    for key, title in (("first_vector", "time to first vector"), ("end_to_end", "end to end")):
        c = cold.get(key) or {}
        if not c.get("embedder_s"):
            continue
        text = (f"- {title} (fresh process): embedx {_range(c['embedder_s'], 2)} s, "
                f"peak RSS {_med(c['embedder_peak_rss_mb'])} MB")
        if c.get("peer_s"):
            text += (f"; peer {_range(c['peer_s'], 2)} s, peak RSS {_med(c['peer_peak_rss_mb'])} MB; "
                     f"peer time / embedx time {_range(c['speedup_vs_peer'])}")
        if key == "end_to_end" and c.get("texts"):
            text += f" ({c['texts']:,} texts)"
        lines.append(text)
    for error in cold.get("errors") or []:
        lines.append(f"- fresh process failed: {error}")
    return lines + ([""] if lines else [])


def _sweeps(s: dict[str, Any]) -> list[str]:
    lines = []
    titles = {"batch": "batch size", "length": "words per text", "layers": "layers", "pooling": "pooling"}
    for sweep, title in titles.items():
        points = s.get(sweep) or []
        if not points:
            continue
        lines += [f"| {title} | texts | batch | tokens/text | texts/s alone | ms/batch p50 | p95 | peak RSS MB | peer "
                  "texts/s | embedx / peer |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in points:
            lines.append(f"| {p['point']} | {p['texts']:,} | {p['batch_size']} | {p['mean_tokens']:.1f} | "
                         f"{_range(p['model_texts_s'], 1)} | {_med(p['batch_ms_p50'], 1)} | "
                         f"{_med(p['batch_ms_p95'], 1)} | "
                         f"{_med(p['peak_rss_mb'])} | {_med(p['peer_texts_s'], 1)} | "
                         f"{_range(p['ratio_model_vs_peer'])} |")
        lines.append("")
    return lines


def _profile(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    shares = ", ".join(f"{k} {v * 100:.1f}%" for k, v in profile["shares"].items() if v is not None)
    top = ", ".join(f"{o['name']} {o['self_s'] * 1000:.0f} ms" for o in profile["top_operators"][:6])
    return [f"Where one call's time goes ({profile['texts']} texts, {profile['wall_s']:.2f} s under torch.profiler): "
            f"{shares}. Top operators: {top}.", ""]


# -- plots ----------------------------------------------------------------------------------------

def _plots(results: dict[str, Any], out: Path) -> tuple[dict[str, str], str | None]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, "Plots left out: matplotlib is not installed (pip install 'embedx[bench]')."
    plots = {}
    for record in results["subjects"]:
        s = record.get("summary")
        if not s or not (s.get("batch") or s.get("length")):
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        peer_name = (record.get("peer") or {}).get("name") or "peer"
        for ax, sweep, xlabel, xkey in ((axes[0], "batch", "batch size (texts)", "point"),
                                         (axes[1], "length", "tokens per text", "mean_tokens")):
            points = s.get(sweep) or []
            for key, label, style in (("model_texts_s", "embedx (alone)", "o-"), ("peer_texts_s", peer_name, "s--")):
                xs = [p[xkey] for p in points if p[key]]
                if not xs:
                    continue
                med = [p[key]["median"] for p in points if p[key]]
                low = [p[key]["median"] - p[key]["min"] for p in points if p[key]]
                high = [p[key]["max"] - p[key]["median"] for p in points if p[key]]
                ax.errorbar(xs, med, yerr=[low, high], fmt=style, capsize=3, label=label)
            ax.set_xscale("log", base=2 if sweep == "batch" else 10)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("texts/s")
            ax.grid(True, alpha=0.3)
            if points:
                ax.legend(fontsize=8)
        fig.suptitle(f"{record['label']} ({record['device']})", fontsize=10)
        fig.tight_layout()
        name = f"throughput-{slug(record['label'])}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        plots[record["label"]] = name
    return plots, None
