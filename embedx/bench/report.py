"""Turn comparison results into Markdown with PNG plots: tables, learning curves, accuracy vs cost."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def aggregate(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per dataset, one line per (features, head): means and spreads over seeds."""
    extraction = {(e["dataset"], e["features"]): e["first_run_seconds"] for e in results["extraction"]}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in results["rows"]:
        groups[(row["dataset"], row["features"], row["head"])].append(row)
    table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (dataset, features, head), rows in groups.items():
        acc = [r["test"]["accuracy"] for r in rows]
        f1 = [r["test"]["macro_f1"] for r in rows]
        table[dataset].append({
            "features": features, "head": head, "seeds": len(rows), "test_accuracy": float(np.mean(acc)),
            "test_accuracy_std": float(np.std(acc)), "macro_f1": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)),
            "validation_accuracy": float(np.mean([r["validation"]["accuracy"] for r in rows])),
            "train_seconds": float(np.mean([r["train_seconds"] for r in rows])),
            "extract_seconds": extraction.get((dataset, features), 0.0) if head != "fine-tune" else 0.0,
            "peak_rss_mb": max((r.get("peak_rss_mb", 0.0) for r in rows), default=0.0),
            "n_train": rows[0].get("n_train", 0), "fine_tune": head == "fine-tune"})
    for rows in table.values():
        rows.sort(key=lambda r: -r["test_accuracy"])
    return table


def write_report(results: dict[str, Any], out: Path) -> Path:
    out = Path(out)
    table = aggregate(results)
    config = results["config"]
    lines = ["# Frozen features + light heads vs fine-tuning", "",
             f"Datasets: {', '.join(config['datasets'])}. Seeds for heads: {config['seeds']}; for fine-tuning: "
             f"{config['finetune_seeds']}. Up to {config['samples_per_class']} texts per class, split 70/15/15 "
             f"(stratified, per seed); texts cut to {config['max_tokens']} tokens. Fine-tuning trains on at most "
             f"{config['finetune_samples_per_class']} texts per class of the same training split (a subsample, to fit a "
             "2-core CPU) and is scored on the same test split.",
             f"Machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}. "
             f"Whole run: {results.get('seconds', 0) / 60:.1f} min.", ""]
    for dataset, rows in table.items():
        lines += [f"## {dataset}", "", "| features | head | test accuracy | macro-F1 | val. accuracy | extract s "
                  "| train s | peak MB |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            peak = f"{r['peak_rss_mb']:,.0f}" if r["peak_rss_mb"] else ""
            lines.append(f"| {r['features']} | {r['head']} | {r['test_accuracy']:.3f} ± {r['test_accuracy_std']:.3f} "
                         f"| {r['macro_f1']:.3f} ± {r['macro_f1_std']:.3f} | {r['validation_accuracy']:.3f} "
                         f"| {r['extract_seconds']:.1f} | {r['train_seconds']:.1f} | {peak} |")
        lines.append("")
        cost = out / f"cost-{dataset}.png"
        if _cost_plot(rows, dataset, cost):
            lines += [f"![accuracy vs cost, {dataset}]({cost.name})", ""]
        curves = [c for c in results["curves"] if c["dataset"] == dataset and c["curves"]]
        path = out / f"curves-{dataset}.png"
        if curves and _curve_plot(curves, dataset, path):
            lines += [f"![learning curves, {dataset}]({path.name})", ""]
    if results["layers"]:
        lines += _layer_table(results["layers"], config)
    if results["skipped"]:
        lines += ["## Not run", "", "| dataset | what | why |", "|---|---|---|"]
        seen = set()
        for s in results["skipped"]:
            key = (s["what"], s["why"])
            if key not in seen:
                seen.add(key)
                why = s["why"].replace("|", "/").replace("\n", " ")[:200]
                lines.append(f"| {s['dataset']} | {s['what']} | {why} |")
        lines.append("")
    lines += ["Extract s is the time of the run that computed the features (later runs read the cache); "
              "train s is per fit, averaged over seeds, and includes choosing hyperparameters on validation.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def _layer_table(layers: list[dict[str, Any]], config: dict[str, Any]) -> list[str]:
    poolings = list(dict.fromkeys(r["pooling"] for r in layers))
    variants = list(dict.fromkeys(r["variant"] for r in layers))
    cells: dict[tuple, list[float]] = defaultdict(list)
    weights: dict[tuple, list[float]] = {}
    for r in layers:
        cells[(r["variant"], r["pooling"])].append(r["test"]["accuracy"])
        if "layer_weights" in r.get("extra", {}) and r["seed"] == config["seeds"][0]:
            weights[(r["variant"], r["pooling"])] = r["extra"]["layer_weights"]
    dataset = layers[0]["dataset"]
    lines = [f"## Layers x pooling, {config['layer_sweep']} on {dataset} (like the BERT paper's Table 7)", "",
             "Test accuracy, mean ± std over seeds; one extraction per pooling with `layers=all` (stored per layer), "
             "every row trained from that cache: logistic regression on one layer or the concatenation, "
             "the layer-mix head for weighted sums.", "",
             "| features | " + " | ".join(poolings) + " |", "|---|" + "---:|" * len(poolings)]
    for v in variants:
        row = [f"{np.mean(cells[(v, p)]):.3f} ± {np.std(cells[(v, p)]):.3f}" if cells[(v, p)] else "" for p in poolings]
        lines.append(f"| {v} | " + " | ".join(row) + " |")
    lines.append("")
    for (variant, pooling), w in weights.items():
        lines.append(f"- learned layer weights, {variant}, {pooling} pooling: {', '.join(f'{x:.2f}' for x in w)}")
    lines.append("")
    return lines


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cost_plot(rows: list[dict[str, Any]], dataset: str, path: Path) -> bool:
    if not rows:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        cost = max(r["extract_seconds"] + r["train_seconds"], 1e-2)
        marker, color = ("*", "#C44E52") if r["fine_tune"] else ("o", "#4C72B0")
        ax.errorbar(cost, r["test_accuracy"], yerr=r["test_accuracy_std"], fmt=marker, color=color, ms=8 if
                    r["fine_tune"] else 5, capsize=2)
        ax.annotate(f"{r['features']} + {r['head']}", (cost, r["test_accuracy"]), fontsize=6,
                    xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("seconds: feature extraction (first run) + training")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: accuracy vs cost (stars: fine-tuning)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def _curve_plot(curves: list[dict[str, Any]], dataset: str, path: Path) -> bool:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in curves:
        k = c["curves"]
        if "val_accuracy" not in k:
            continue
        epochs = np.arange(1, len(k["val_accuracy"]) + 1)
        line, = axes[0].plot(epochs, k["val_accuracy"], label=c["what"])
        if "train_accuracy" in k:
            axes[0].plot(epochs, k["train_accuracy"], ls=":", color=line.get_color())
        if "val_loss" in k:
            axes[1].plot(epochs, k["val_loss"], color=line.get_color())
            if "train_loss" in k:
                axes[1].plot(epochs, k["train_loss"], ls=":", color=line.get_color())
    axes[0].set_title(f"{dataset}: accuracy per epoch (solid validation, dotted train)")
    axes[1].set_title("loss per epoch")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True
