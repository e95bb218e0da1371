"""The report's figures: accuracy against cost with its Pareto frontier, and learning curves per family.

Points are coloured by embedder family (the plugin that registered the embedder) and marked by
head. Only the frontier (no other result is both cheaper and more accurate) is labelled: numbers
beside its points, nudged apart until none overlaps, and short names in a key beside the plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MARKERS = {"logreg": "o", "linear-svm": "s", "random-forest": "^", "gradient-boosting": "v", "dense": "D",
           "layer-mix": "P", "fine-tune": "*"}
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colours(families: list[str]) -> dict[str, str]:
    return {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(sorted(set(families)))}


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and accuracy (higher), cheapest first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    frontier, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            frontier.append(i)
            best = points[i][1]
    return frontier


def separate_labels(fig, texts: list, steps: int = 60) -> list:
    """Nudge labels apart vertically (in points) until no two bounding boxes overlap; return the boxes.

    Labels are annotations placed in offset points, so moving one never needs a redraw of the figure.
    """
    if not texts:
        return []
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for _ in range(steps):
        boxes = [t.get_window_extent(renderer) for t in texts]
        moved = False
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                if boxes[i].overlaps(boxes[j]):
                    lower, upper = (i, j) if boxes[i].y0 <= boxes[j].y0 else (j, i)
                    for index, sign in ((lower, -1), (upper, 1)):
                        x, y = texts[index].get_position()
                        texts[index].set_position((x, y + sign * 2))
                    boxes = [t.get_window_extent(renderer) for t in texts]
                    moved = True
        if not moved:
            break
    return [t.get_window_extent(renderer) for t in texts]


def cost_plot(rows: list[dict[str, Any]], dataset: str, path: Path, families: dict[str, str],
              short: dict[str, str]) -> list:
    """Accuracy vs cost; returns the frontier labels' bounding boxes (for the overlap test)."""
    if not rows:
        return []
    plt = _plt()
    fams = [families.get(r["features"], r["features"]) for r in rows]
    palette = colours(fams)
    points = [(max(r["extract_seconds"] + r["train_seconds"], 1e-2), r["test_accuracy"]) for r in rows]
    fig, ax = plt.subplots(figsize=(11, 6))
    for r, fam, (cost, acc) in zip(rows, fams, points, strict=True):
        ax.errorbar(cost, acc, yerr=r["test_accuracy_std"], fmt=MARKERS.get(r["head"], "x"), color=palette[fam],
                    ms=11 if r["head"] == "fine-tune" else 6, capsize=2, alpha=0.85, elinewidth=0.8)
    front = pareto(points)
    xs, ys = [points[i][0] for i in front], [points[i][1] for i in front]
    ax.step(xs, ys, where="post", color="black", lw=1, ls="--", alpha=0.6, zorder=0)
    ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="black", lw=1, zorder=3)
    texts, key = [], []
    for n, i in enumerate(front, start=1):  # numbers on the plot, names in the key beside it
        r = rows[i]
        texts.append(ax.annotate(str(n), points[i], fontsize=8, fontweight="bold", xytext=(6, 4),
                                 textcoords="offset points"))
        key.append(f"{n}  {short.get(r['features'], r['features'])} + {r['head']}: "
                   f"{r['test_accuracy']:.3f}, {points[i][0]:.3g} s")
    ax.set_xscale("log")
    ax.set_xlabel("seconds: feature extraction (first run) + training and selection")
    ax.set_ylabel("test accuracy (mean over seeds; bars: std)")
    ax.set_title(f"{dataset}: accuracy vs cost; circled and numbered: the Pareto frontier")
    ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    family_handles = [Line2D([], [], ls="", marker="o", color=c, label=f) for f, c in palette.items()]
    head_handles = [Line2D([], [], ls="", marker=MARKERS.get(h, "x"), color="0.3", label=h)
                    for h in dict.fromkeys(r["head"] for r in rows)]
    first = ax.legend(handles=family_handles, title="family", fontsize=7, title_fontsize=8,
                      loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.add_artist(first)
    fig.tight_layout()
    # the head legend and the frontier key go below the family legend, each under the one before
    # (however long the lists), and the saved image grows to hold them
    second = ax.legend(handles=head_handles, title="head", fontsize=7, title_fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.01, _bottom(fig, ax, first) - 0.02))
    third = ax.text(1.01, _bottom(fig, ax, second) - 0.03, "Pareto frontier\n" + "\n".join(key),
                    transform=ax.transAxes, fontsize=7, va="top", ha="left", family="monospace")
    boxes = separate_labels(fig, texts)
    renderer = fig.canvas.get_renderer()
    panels = [artist.get_window_extent(renderer) for artist in (first, second, third)]
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return CostPlot(boxes, panels)


class CostPlot(list):
    """The frontier labels' bounding boxes (a list, for the overlap test), with ``panels``: the extents
    of the family legend, the head legend and the frontier key beside the plot."""

    def __init__(self, labels: list, panels: list):
        super().__init__(labels)
        self.panels = panels


def _bottom(fig: Any, ax: Any, artist: Any) -> float:
    """Where ``artist`` ends at the bottom, in axes coordinates."""
    fig.canvas.draw()
    extent = artist.get_window_extent(fig.canvas.get_renderer())
    return float(ax.transAxes.inverted().transform((extent.x0, extent.y0))[1])


def curve_plot(curves: list[dict[str, Any]], dataset: str, path: Path, families: dict[str, str],
               short: dict[str, str]) -> bool:
    """Validation (solid) and training (dotted) accuracy per epoch: one small panel per embedder family."""
    usable = [c for c in curves if "val_accuracy" in c["curves"]]
    if not usable:
        return False
    plt = _plt()
    groups: dict[str, list[dict]] = {}
    for c in usable:
        groups.setdefault(families.get(c.get("features", ""), "other"), []).append(c)
    n = len(groups)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False, sharey=True)
    for ax, (family, members) in zip(axes.flat, sorted(groups.items()), strict=False):
        for k, c in enumerate(members):
            colour = PALETTE[k % len(PALETTE)]
            values = c["curves"]["val_accuracy"]
            epochs = np.arange(1, len(values) + 1)
            label = f"{short.get(c.get('features', ''), c.get('features', ''))} + {c.get('head', '')}"
            ax.plot(epochs, values, color=colour, lw=1.3, label=label)
            if "train_accuracy" in c["curves"]:
                ax.plot(epochs[:len(c["curves"]["train_accuracy"])], c["curves"]["train_accuracy"], color=colour,
                        ls=":", lw=1)
        ax.set_title(family, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="lower right", framealpha=0.7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("accuracy", fontsize=8)
    fig.suptitle(f"{dataset}: accuracy per epoch (solid: held-out, dotted: train; first seed, first CV fold)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True
