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

from embedx.bench.plots import confusion_plot, cost_plot, curve_plot


def aggregate(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per dataset, one line per (features, head): means and spreads over seeds."""
    extraction = {(e["dataset"], e["features"]): e["first_run_seconds"] for e in results["extraction"]}
    extraction_cpu = {(e["dataset"], e["features"]): e.get("first_run_cpu_seconds") for e in results["extraction"]}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in results["rows"]:
        groups[(row["dataset"], row["features"], row["head"])].append(row)
    table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (dataset, features, head), rows in groups.items():
        acc = [r["test"]["accuracy"] for r in rows]
        f1 = [r["test"]["macro_f1"] for r in rows]
        selection = [r["validation"]["accuracy"] for r in rows if r.get("validation")]
        cpu = [r["cpu_seconds"] for r in rows if isinstance(r.get("cpu_seconds"), (int, float))]
        matrices = [np.asarray(r["confusion"]) for r in rows if r.get("confusion")]
        table[dataset].append({
            "features": features, "head": head, "seeds": len(rows), "test_accuracy": float(np.mean(acc)),
            "test_accuracy_std": float(np.std(acc)), "macro_f1": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)),
            "validation_accuracy": float(np.mean(selection)) if selection else None,
            "train_seconds": float(np.mean([r["train_seconds"] for r in rows])),
            "extract_seconds": extraction.get((dataset, features), 0.0) if head != "fine-tune" else 0.0,
            # CPU seconds, None where a run did not record them (results written before they were)
            "cpu_seconds": float(np.mean(cpu)) if len(cpu) == len(rows) else None,
            "extract_cpu_seconds": extraction_cpu.get((dataset, features)) if head != "fine-tune" else 0.0,
            "confusion": np.sum(matrices, axis=0).tolist() if matrices and len({m.shape for m in matrices}) == 1
            else None, "confusion_seeds": len(matrices),
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
    tuned = fine_tuned(results)
    seeds = f"Seeds for heads: {config['seeds']}" + (f"; for fine-tuning: {config['finetune_seeds']}" if tuned else "")
    spread = ("Mean ± standard deviation over those seeds." if max(len(config["seeds"]), len(
        config["finetune_seeds"]) if tuned else 0) > 1 else "One seed: no spread to show.")
    lines = ["# Frozen features + light heads vs fine-tuning" if tuned else "# Frozen features + light heads", "",
             f"Datasets: {', '.join(config['datasets'])}. {seeds}. {spread}",
             f"Machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}. "
             f"Whole run (wall time): {results.get('seconds', 0) / 60:.1f} min.", ""]
    if len(results.get("parts", [])) > 1:
        lines[-2:] = _parts_lines(results["parts"])
    elif results.get("resumed_units"):
        lines[-1:] = [f"This run resumed {results['resumed_units']:,} finished head fits and fine-tuning runs from "
                      f"its journal, which took {results.get('resumed_seconds', 0) / 60:.1f} min when they ran; "
                      "features computed by earlier runs came from the cache (the extract column gives the time "
                      "they took when computed).", ""]
    lines += _how(config, selection, results, tuned)
    for dataset, rows in table.items():
        lines += [f"## {dataset}", "", "| features | head | test accuracy | macro-F1 | selection acc. | chosen "
                  "| extract s | train s | CPU s | peak MB |", "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
        for r in rows:
            peak = f"{r['peak_rss_mb']:,.0f}" if r["peak_rss_mb"] else ""
            sel = f"{r['validation_accuracy']:.3f}" if r["validation_accuracy"] is not None else ""
            mark = " ⚠" if r["flags"] else ""
            cpu = _cpu_cost(r)
            lines.append(f"| {short[r['features']]} | {r['head']} | {_spread(r, 'test_accuracy')} | "
                         f"{_spread(r, 'macro_f1')} | {sel} | {r['chosen']}{mark} | {r['extract_seconds']:.1f} | "
                         f"{r['train_seconds']:.1f} | {'' if cpu is None else f'{cpu:.1f}'} | {peak} |")
        lines.append("")
        flagged = [(r, f) for r in rows for f in r["flags"]]
        if flagged:
            lines += ["⚠ Choices at the edge of their grid (the best setting may lie beyond it):", ""]
            lines += [f"- {short[r['features']]} + {r['head']}: {f}" for r, f in flagged]
            lines.append("")
        lines += _mix_weights(results["rows"], dataset, short)
        cost = out / f"cost-{_slug(dataset)}.png"
        measure = "cpu" if all(_cpu_cost(r) is not None for r in rows) else "wall"
        if cost_plot(rows, dataset, cost, families, short, cost=measure):
            lines += [f"![accuracy vs cost, {dataset}]({cost.name})", "",
                      "The plot's cost axis is **CPU seconds** (extraction's first run + training and selection, "
                      "every thread and waited-for child process: it does not move when other work shares the "
                      "machine)." if measure == "cpu" else "The plot's cost axis is **wall-clock seconds**: the "
                      "run behind some rows did not record CPU seconds (results written before embedx recorded "
                      "them), so machine load moves these points.", ""]
        lines += _confusion(results, dataset, rows, short, out)
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


def fine_tuned(results: dict[str, Any]) -> bool:
    """Whether fine-tuning was part of the run: a fine-tuner was resolved (even one that could not run here), or
    a fine-tuning row exists (results written before the resolved list was recorded)."""
    if isinstance(results.get("finetuners"), list):
        return bool(results["finetuners"]) or any(r["head"] == "fine-tune" for r in results["rows"])
    return bool(results["config"].get("finetuners")) or any(r["head"] == "fine-tune" for r in results["rows"])


def _spread(row: dict[str, Any], key: str) -> str:
    """``0.912 ± 0.004`` over several seeds; one seed has no spread, so only its value."""
    return f"{row[key]:.3f} ± {row[key + '_std']:.3f}" if row["seeds"] > 1 else f"{row[key]:.3f}"


def _cpu_cost(row: dict[str, Any]) -> float | None:
    """Extraction (first run) plus training CPU seconds; None when either was not recorded."""
    if row.get("cpu_seconds") is None or row.get("extract_cpu_seconds") is None:
        return None
    return float(row["extract_cpu_seconds"] + row["cpu_seconds"])


def _confusion(results: dict[str, Any], dataset: str, rows: list[dict[str, Any]], short: dict[str, str],
               out: Path) -> list[str]:
    """The confusion plot of the best frozen row and the best fine-tuning row (by mean test accuracy)."""
    classes = (results.get("classes") or {}).get(dataset)
    if not classes:
        return []
    panels, named = [], []
    for tuned in (False, True):
        best = next((r for r in rows if r["fine_tune"] == tuned and r.get("confusion")
                     and len(r["confusion"]) == len(classes)), None)
        if best is not None:
            what = f"{short.get(best['features'], best['features'])} + {best['head']}"
            panels.append((f"best {'fine-tuning' if tuned else 'frozen'}: {what}\n"
                           f"accuracy {best['test_accuracy']:.3f}, {best['confusion_seeds']} seed(s)",
                           [str(c) for c in classes], np.asarray(best["confusion"])))
            named.append(what)
    path = out / f"confusion-{_slug(dataset)}.png"
    if not confusion_plot(panels, dataset, path):
        return []
    return [f"Test confusion matrices of {' and '.join(named)} ([plot]({path.name})): rows are the given "
            "class, columns the predicted one, counts summed over seeds.", "",
            f"![confusion matrices, {dataset}]({path.name})", ""]


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


def _how(config: dict[str, Any], selection: str, results: dict[str, Any], tuned: bool = True) -> list[str]:
    """How every number in the tables was obtained."""
    lines = ["## How the numbers were obtained", ""]
    lines += _split_lines(config, results)
    if selection == "cv":
        lines.append(f"- **Heads' settings** (logistic regression's and the linear SVM's C and whether to "
                     f"standardise, the dense head's epochs) are chosen by stratified {config.get('folds', 5)}-fold "
                     "cross-validation on train+validation together, by mean accuracy; the head is then refit on "
                     "all train+validation rows with that setting (the dense head for the median of the folds' best "
                     "epochs, early stopping on held-out accuracy) and scored once on test. Heads with nothing to "
                     "choose (random forest, gradient boosting) train on train+validation. *Selection acc.* is the "
                     "cross-validated mean accuracy of the chosen setting.")
    else:
        lines.append("- **Heads' settings** are chosen on the validation split (each candidate trained on train); "
                     "the winner is scored once on test without a refit. *Selection acc.* is its validation "
                     "accuracy.")
    if tuned:
        lines.append(f"- **Fine-tuning** trains on at most {config['finetune_samples_per_class']} texts per class "
                     "of the same train split (a subsample, to fit a 2-core CPU), uses the validation split as the "
                     "fine-tuner does, and is scored on the same test split. *Selection acc.* is its validation "
                     "accuracy.")
    lines += [
        "- **Chosen**: the settings picked, per seed when they differ. ⚠ marks a choice at the edge of its grid.",
        "- **Extract s** is the wall time of the run that computed the features (later runs read the cache); "
        "**train s** is per seed and includes the whole selection (every fold and candidate) and the refit. "
        "**CPU s** is both in CPU seconds (every thread, and child processes once they exit), blank where the "
        "run did not record them.",
        "- The layers x pooling table, if present, uses the validation split for its choices (for cost).", ""]
    return lines


def _split_lines(config: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """One line per dataset: how its rows were split and capped, the sizes, and how repeated texts were kept."""
    cap = config["samples_per_class"]
    splits, given = results.get("splits") or {}, results.get("given_splits") or {}
    lines = [f"- **Texts** are cut to {config['max_tokens']} tokens before splitting."
             if config.get("max_tokens") else "- **Texts** are used whole (no token limit)."]
    for name in config["datasets"]:
        info = splits.get(name) or ({"kind": "given", "column": given[name]["column"]} if name in given
                                    else {"kind": "dealt"})
        fractions = info.get("fractions") or [0.7, 0.15, 0.15]
        shares = " / ".join(f"{100 * f:g}%" for f in fractions)
        if info["kind"] == "given":
            vcap = info.get("validation_cap")
            capped = (f"train capped at {cap} texts per class and validation at {vcap}" if vcap is not None
                      else f"train capped at {cap or 'all'} texts per class, validation not capped (a run before "
                           "embedx capped it)" if cap else "no cap")
            test = (given.get(name) or {}).get("test")
            line = (f"- **{name}** keeps its own split (column `{info['column']}`): "
                    f"{'its' if test is None else f'{test:,}'} test rows as given; validation carved from train "
                    f"per seed, stratified, when the file has none; {capped}.")
        else:
            line = (f"- **{name}**: per seed, each class shuffled and its first {cap or 'all'} texts dealt "
                    f"{shares} into train / validation / test (stratified; `embedx.datasets.split`); no standard "
                    "split ships with it.")
        sizes = info.get("sizes") or {}
        if sizes:
            seed, size = next(iter(sizes.items()))
            line += (f" Seed {seed}: {size['train']:,} train, {size['validation']:,} validation, {size['test']:,} "
                     "test rows.")
        grouping = _grouping_text(info.get("grouping"))
        lines.append(line + (f" {grouping}" if grouping else ""))
    return lines


def _grouping_text(grouping: Any) -> str:
    """How repeated texts were treated, from ``Splits.report()`` of each seed (`embedx.datasets.grouping`)."""
    if not isinstance(grouping, dict) or not grouping:
        return ""
    reports = [g for g in grouping.values() if isinstance(g, dict)]
    if not reports:
        return ""
    first = reports[0]

    def most(key: str) -> Any:
        values: list[float] = [g[key] for g in reports if isinstance(g.get(key), (int, float))]
        return max(values) if values else None

    parts = []
    if first.get("groups") is not None:
        kept = "each text's rows on one side" if first.get("duplicates", "group") == "group" else (
            "rows dealt one by one (`--duplicates keep`)")
        parts.append(f"{first.get('duplicate_rows', 0):,} duplicate rows, {first['groups']:,} distinct texts, "
                     f"{kept}")
    if most("conflicting_texts") is not None:
        parts.append(f"{most('conflicting_texts'):,} texts with conflicting labels")
    if most("cross_split_texts") is not None:
        parts.append(f"{most('cross_split_texts'):,} texts in more than one part")
    drift = most("drift_max")
    if drift is not None:
        parts.append(f"class shares off their exact ones by at most {100 * drift:.1f} points")
    warnings = sorted({w for g in reports for w in g.get("warnings", []) if isinstance(w, str)})
    text = ("Repeated texts (first seed; largest over seeds): " + "; ".join(parts) + ".") if parts else ""
    return text + "".join(f" ⚠ {w}" for w in warnings)


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
        row = [(f"{np.mean(cells[(v, p)]):.3f} ± {np.std(cells[(v, p)]):.3f}" if len(cells[(v, p)]) > 1
                else f"{cells[(v, p)][0]:.3f}") if cells[(v, p)] else "" for p in poolings]
        lines.append(f"| {v} | " + " | ".join(row) + " |")
    lines.append("")
    for (variant, pooling), w in weights.items():
        lines.append(f"- learned layer weights, {variant}, {pooling} pooling: {', '.join(f'{x:.2f}' for x in w)}")
    lines.append("")
    return lines
