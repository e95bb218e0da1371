"""Turn comparison results into Markdown with PNG plots: tables, how each number was obtained, figures.

Tables and plots use short labels (the embedder id); the full option strings behind them are listed
once in a table, so a long model path never crowds a figure.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from embedx.bench.plots import cost_plot, curve_plot


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
        selection = [r["validation"]["accuracy"] for r in rows if r.get("validation")]
        table[dataset].append({
            "features": features, "head": head, "seeds": len(rows), "test_accuracy": float(np.mean(acc)),
            "test_accuracy_std": float(np.std(acc)), "macro_f1": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)),
            "validation_accuracy": float(np.mean(selection)) if selection else None,
            "train_seconds": float(np.mean([r["train_seconds"] for r in rows])),
            "extract_seconds": extraction.get((dataset, features), 0.0) if head != "fine-tune" else 0.0,
            "peak_rss_mb": max((r.get("peak_rss_mb", 0.0) for r in rows), default=0.0),
            "n_train": rows[0].get("n_train", 0), "fine_tune": head == "fine-tune",
            "chosen": _chosen_summary(rows), "flags": sorted({f for r in rows for f in r.get("flags", [])}),
            "method": rows[0].get("method", ""), "selection": rows[0].get("selection", "")})
    for rows in table.values():
        rows.sort(key=lambda r: -r["test_accuracy"])
    return table


def _chosen_summary(rows: list[dict[str, Any]]) -> str:
    """The settings picked per seed, most common first: ``C=0.1 (2/3), C=1 (1/3)``."""
    picks: Counter[str] = Counter()
    for r in rows:
        chosen = {k: v for k, v in r.get("chosen", {}).items() if k not in ("solver", "fold_best_epochs")}
        picks[", ".join(f"{k}={v}" for k, v in sorted(chosen.items()))] += 1
    if list(picks) == [""]:
        return ""
    return "; ".join(f"{k} ({n}/{len(rows)})" if len(picks) > 1 else k for k, n in picks.most_common())


def short_labels(labels: list[str]) -> dict[str, str]:
    """``id[options]`` -> ``id``; two specs of one id become ``id #1``, ``id #2``."""
    by_id: dict[str, list[str]] = defaultdict(list)
    for label in dict.fromkeys(labels):
        by_id[label.split("[", 1)[0]].append(label)
    short = {}
    for ident, members in by_id.items():
        for n, label in enumerate(members, start=1):
            short[label] = ident if len(members) == 1 else f"{ident} #{n}"
    return short


def write_report(results: dict[str, Any], out: Path) -> Path:
    out = Path(out)
    table = aggregate(results)
    config = results["config"]
    families = results.get("families", {})
    short = short_labels([r["features"] for rows in table.values() for r in rows])
    selection = config.get("selection", "validation")
    lines = ["# Frozen features + light heads vs fine-tuning", "",
             f"Datasets: {', '.join(config['datasets'])}. Seeds for heads: {config['seeds']}; for fine-tuning: "
             f"{config['finetune_seeds']}. Mean ± standard deviation over those seeds.",
             f"Machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}. "
             f"Whole run (wall time): {results.get('seconds', 0) / 60:.1f} min.", ""]
    if len(results.get("parts", [])) > 1:
        lines[-2:] = _parts_lines(results["parts"])
    elif results.get("resumed_units"):
        lines[-1:] = [f"This run resumed {results['resumed_units']:,} finished head fits and fine-tuning runs from "
                      f"its journal, which took {results.get('resumed_seconds', 0) / 60:.1f} min when they ran; "
                      "features computed by earlier runs came from the cache (the extract column gives the time "
                      "they took when computed).", ""]
    lines += _how(config, selection, results.get("given_splits"))
    for dataset, rows in table.items():
        lines += [f"## {dataset}", "", "| features | head | test accuracy | macro-F1 | selection acc. | chosen "
                  "| extract s | train s | peak MB |", "|---|---|---:|---:|---:|---|---:|---:|---:|"]
        for r in rows:
            peak = f"{r['peak_rss_mb']:,.0f}" if r["peak_rss_mb"] else ""
            sel = f"{r['validation_accuracy']:.3f}" if r["validation_accuracy"] is not None else ""
            mark = " ⚠" if r["flags"] else ""
            lines.append(f"| {short[r['features']]} | {r['head']} | {r['test_accuracy']:.3f} ± "
                         f"{r['test_accuracy_std']:.3f} | {r['macro_f1']:.3f} ± {r['macro_f1_std']:.3f} | {sel} "
                         f"| {r['chosen']}{mark} | {r['extract_seconds']:.1f} | {r['train_seconds']:.1f} | {peak} |")
        lines.append("")
        flagged = [(r, f) for r in rows for f in r["flags"]]
        if flagged:
            lines += ["⚠ Choices at the edge of their grid (the best setting may lie beyond it):", ""]
            lines += [f"- {short[r['features']]} + {r['head']}: {f}" for r, f in flagged]
            lines.append("")
        lines += _mix_weights(results["rows"], dataset, short)
        cost = out / f"cost-{_slug(dataset)}.png"
        if cost_plot(rows, dataset, cost, families, short):
            lines += [f"![accuracy vs cost, {dataset}]({cost.name})", ""]
        curves = [c for c in results["curves"] if c["dataset"] == dataset and c["curves"]]
        path = out / f"curves-{_slug(dataset)}.png"
        if curves and curve_plot(curves, dataset, path, families, short):
            lines += [f"![learning curves, {dataset}]({path.name})", ""]
    lines += ["## Features: short names and full specifications", "", "| short | family | full specification |",
              "|---|---|---|"]
    for label, name in short.items():
        lines.append(f"| {name} | {families.get(label, '')} | `{label}` |")
    lines.append("")
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
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def _parts_lines(parts: list[dict[str, Any]]) -> list[str]:
    """The header of a merged report: which run made which datasets, on what, and how long it took."""
    lines = [f"Merged from {len(parts)} runs (`embedx bench report`), one per group of datasets:", ""]
    for p in parts:
        resumed = (f"; {p['resumed_units']:,} units resumed from its journal, which took "
                   f"{p['resumed_seconds'] / 60:.1f} min when they ran" if p["resumed_units"] else "")
        lines.append(f"- {', '.join(p['datasets'])}: `{p['source']}`, {p['machine']['cpus']} CPUs, Python "
                     f"{p['machine']['python']}; whole run (wall time) {p['seconds'] / 60:.1f} min{resumed}.")
    return lines + [""]


def _slug(dataset: str) -> str:
    """A file-name part for a dataset: its name, or a labelled file's name without folders or odd characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset).name).strip("-.") or "dataset"


def _how(config: dict[str, Any], selection: str, given: dict[str, Any] | None = None) -> list[str]:
    """How every number in the tables was obtained."""
    cap = config["samples_per_class"]
    lines = ["## How the numbers were obtained", "",
             f"- **Split.** Per seed, each class is shuffled and its first {cap or 'all'} texts are dealt 70% / 15% "
             f"/ 15% into train / validation / test (stratified; `embedx.datasets.split`). Texts are cut to "
             f"{config['max_tokens']} tokens. No built-in dataset ships a standard split (`embedx datasets list`).",
             ]
    for name, parts in (given or {}).items():
        lines.append(f"- **{name}** keeps its own split (column `{parts['column']}`): {parts['test']:,} test rows "
                     f"as given; {parts['train']:,} train and {parts['validation']:,} validation rows (validation "
                     f"carved from train per seed, stratified, when the file has none; train capped at {cap or 'all'} "
                     "per class).")
    if selection == "cv":
        lines.append(f"- **Heads' settings** (logistic regression's and the linear SVM's C, the dense head's "
                     f"epochs) are chosen by stratified {config.get('folds', 5)}-fold cross-validation on "
                     "train+validation together, by mean accuracy; the head is then refit on all train+validation "
                     "rows with that setting (the dense head for the median of the folds' best epochs, early "
                     "stopping on held-out accuracy) and scored once on test. Heads with nothing to choose "
                     "(random forest, gradient boosting) train on train+validation. *Selection acc.* is the "
                     "cross-validated mean accuracy of the chosen setting.")
    else:
        lines.append("- **Heads' settings** are chosen on the validation split (each candidate trained on train); "
                     "the winner is scored once on test without a refit. *Selection acc.* is its validation "
                     "accuracy.")
    lines += [
        f"- **Fine-tuning** trains on at most {config['finetune_samples_per_class']} texts per class of the same "
        "train split (a subsample, to fit a 2-core CPU), uses the validation split as the fine-tuner does, and is "
        "scored on the same test split. *Selection acc.* is its validation accuracy.",
        "- **Chosen**: the settings picked, per seed when they differ. ⚠ marks a choice at the edge of its grid.",
        "- **Extract s** is the time of the run that computed the features (later runs read the cache); "
        "**train s** is per seed and includes the whole selection (every fold and candidate) and the refit.",
        "- The layers x pooling table, if present, uses the validation split for its choices (for cost).", ""]
    return lines


def _mix_weights(rows: list[dict[str, Any]], dataset: str, short: dict[str, str]) -> list[str]:
    """What the layer-mix rows learned: the softmax weight of each layer, mean over seeds."""
    learned: dict[str, list[list[float]]] = defaultdict(list)
    for r in rows:
        if r["dataset"] == dataset and "layer_weights" in r.get("extra", {}):
            learned[r["features"]].append(r["extra"]["layer_weights"])
    lines = [f"- layer-mix weights learned on {short.get(features, features)} (layer 0 first, mean of "
             f"{len(ws)} seeds): {', '.join(f'{x:.2f}' for x in np.mean(ws, axis=0))}"
             for features, ws in learned.items()]
    return lines + [""] if lines else []


def _layer_table(layers: list[dict[str, Any]], config: dict[str, Any]) -> list[str]:
    """One layers x pooling table per swept embedder."""
    by_embedder: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in layers:
        by_embedder[r.get("embedder") or str(config["layer_sweep"])].append(r)
    lines: list[str] = []
    for embedder_id, rows in by_embedder.items():
        lines += _one_layer_table(embedder_id, rows, config)
    return lines


def _one_layer_table(embedder_id: str, layers: list[dict[str, Any]], config: dict[str, Any]) -> list[str]:
    poolings = list(dict.fromkeys(r["pooling"] for r in layers))
    variants = list(dict.fromkeys(r["variant"] for r in layers))
    cells: dict[tuple, list[float]] = defaultdict(list)
    weights: dict[tuple, list[float]] = {}
    for r in layers:
        cells[(r["variant"], r["pooling"])].append(r["test"]["accuracy"])
        if "layer_weights" in r.get("extra", {}) and r["seed"] == config["seeds"][0]:
            weights[(r["variant"], r["pooling"])] = r["extra"]["layer_weights"]
    dataset = layers[0]["dataset"]
    lines = [f"## Layers x pooling, {embedder_id} on {dataset} (like the BERT paper's Table 7)", "",
             "Test accuracy, mean ± std over seeds; one extraction per pooling with `layers=all` (stored per layer), "
             "every row trained from that cache: logistic regression on one layer or the concatenation, "
             "the layer-mix head for weighted sums; settings chosen on the validation split.", "",
             "| features | " + " | ".join(poolings) + " |", "|---|" + "---:|" * len(poolings)]
    for v in variants:
        row = [f"{np.mean(cells[(v, p)]):.3f} ± {np.std(cells[(v, p)]):.3f}" if cells[(v, p)] else "" for p in poolings]
        lines.append(f"| {v} | " + " | ".join(row) + " |")
    lines.append("")
    for (variant, pooling), w in weights.items():
        lines.append(f"- learned layer weights, {variant}, {pooling} pooling: {', '.join(f'{x:.2f}' for x in w)}")
    lines.append("")
    return lines
