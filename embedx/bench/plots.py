"""The report's figures: accuracy against cost with its Pareto frontier, learning curves, confusion matrices.

Each embedder keeps one colour in every report (:func:`embedder_colours`: its name hashed into a
qualitative palette), listed in the legend under its family (the plugin that registered it); the
head is the marker's shape. Only the frontier (no other result is both cheaper and more accurate) is
labelled: numbers beside its points, nudged apart until none overlaps, and short names in a key
beside the plot. Frontier rings are drawn behind the markers, so they never hide one.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

MARKERS = {"logreg": "o", "linear-svm": "s", "random-forest": "^", "gradient-boosting": "v", "dense": "D",
           "layer-mix": "P", "fine-tune": "*"}
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD"]
#: colours an embedder can get: distinct hues first (Tableau 10), then darker and brighter ones
EMBEDDER_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#00a087",
                    "#f0027f", "#e6ab02"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colours(families: list[str]) -> dict[str, str]:
    return {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(sorted(set(families)))}


def _slot(name: str) -> int:
    """Where ``name`` wants to sit in the palette: a hash of the name alone, the same in every report and process."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=4).digest(), "big") % len(EMBEDDER_PALETTE)


def embedder_colours(names: list[str]) -> dict[str, str]:
    """One colour per embedder, fixed by its name: each takes the palette slot its hash picks, so it keeps its
    colour across reports. Two names of one report that hash to one slot do not share it: the one that sorts
    first keeps it, the other takes the next free slot. Past the palette's size colours repeat."""
    taken: dict[int, str] = {}
    result: dict[str, str] = {}
    for name in sorted(set(names), key=lambda n: (_slot(n), n)):
        slot = _slot(name)
        for step in range(len(EMBEDDER_PALETTE)):
            candidate = (slot + step) % len(EMBEDDER_PALETTE)
            if candidate not in taken:
                slot = candidate
                break
        taken[slot] = name
        result[name] = EMBEDDER_PALETTE[slot]
    return result


def cost_ticks(low: float, high: float) -> list[float]:
    """At least three plain ticks (1, 2, 5 times a power of ten; decades alone when those are three or more)
    spanning ``[low, high]``; the range is widened to the nearest ticks outside it when fewer fall inside."""
    low, high = max(low, 1e-4), max(high, low, 1e-4)
    ladder = [m * 10.0 ** e for e in range(math.floor(math.log10(low)) - 2, math.ceil(math.log10(high)) + 3)
              for m in (1.0, 2.0, 5.0)]
    ladder = [float(f"{t:.6g}") for t in ladder]
    inside = [t for t in ladder if low <= t <= high]
    decades = [t for t in inside if f"{t:.6g}".lstrip("0.").startswith("1")]
    if len(decades) >= 3:
        return decades
    ticks = inside
    while len(ticks) < 3:
        below = [t for t in ladder if t < (ticks[0] if ticks else low)]
        above = [t for t in ladder if t > (ticks[-1] if ticks else high)]
        # add the neighbour closer (in log) to the data, so the axis grows as little as possible
        if below and (not above or math.log(low / below[-1]) <= math.log(above[0] / high)):
            ticks = [below[-1], *ticks]
        else:
            ticks = [*ticks, above[0]]
    return ticks


def tick_label(value: float) -> str:
    """A plain number: 0.05, 2, 1,000 (never 10^3)."""
    return f"{value:,.0f}" if value >= 1 else f"{value:.6g}"


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
              short: dict[str, str], cost: str = "wall") -> list:
    """Accuracy vs cost; returns the frontier labels' bounding boxes (for the overlap test).

    ``cost`` is ``"cpu"`` (CPU seconds: ``extract_cpu_seconds + cpu_seconds`` of each row) or ``"wall"``.
    """
    if not rows:
        return []
    plt = _plt()
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    colour = embedder_colours([r["features"] for r in rows])
    points = [(max(row_cost(r, cost), 1e-2), r["test_accuracy"]) for r in rows]
    fig, ax = plt.subplots(figsize=(11, 6))
    for r, (x, acc) in zip(rows, points, strict=True):
        ax.errorbar(x, acc, yerr=r["test_accuracy_std"] if r.get("seeds", 2) > 1 else None,
                    fmt=MARKERS.get(r["head"], "x"), color=colour[r["features"]],
                    ms=11 if r["head"] == "fine-tune" else 7, capsize=2, alpha=0.9, elinewidth=0.8, zorder=3)
    front = pareto(points)
    xs, ys = [points[i][0] for i in front], [points[i][1] for i in front]
    ax.step(xs, ys, where="post", color="black", lw=1, ls="--", alpha=0.5, zorder=1)
    # rings behind the markers (zorder 2 < 3): a frontier point stays visible, and so does any neighbour
    ax.scatter(xs, ys, s=260, facecolors="none", edgecolors="0.35", lw=0.9, zorder=2)
    texts, key = [], []
    for n, i in enumerate(front, start=1):  # numbers on the plot, names in the key beside it
        r = rows[i]
        texts.append(ax.annotate(str(n), points[i], fontsize=8, fontweight="bold", xytext=(8, 5),
                                 textcoords="offset points", zorder=4))
        key.append(f"{n}  {short.get(r['features'], r['features'])} + {r['head']}: "
                   f"{r['test_accuracy']:.3f}, {points[i][0]:.3g} s")
    ax.set_xscale("log")
    low, high = min(p[0] for p in points), max(p[0] for p in points)
    ticks = cost_ticks(low / 1.25, high * 1.25)
    ax.set_xlim(min(low / 1.25, ticks[0] / 1.1), max(high * 1.25, ticks[-1] * 1.1))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: tick_label(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    what = ("CPU seconds (every thread and child process)" if cost == "cpu" else "wall-clock seconds")
    ax.set_xlabel(f"{what}: feature extraction (first run) + training and selection; log scale")
    ax.set_ylabel("test accuracy (mean over seeds; bars: std)")
    ax.set_title(f"{dataset}: accuracy vs cost; ringed and numbered: the Pareto frontier")
    ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    by_family: dict[str, list[str]] = {}
    for name in sorted(colour, key=lambda n: short.get(n, n)):
        by_family.setdefault(families.get(name, "other"), []).append(name)
    embedder_handles: list[Any] = []
    headers: list[int] = []
    for family in sorted(by_family):  # a family's name, then its embedders, each in its colour
        headers.append(len(embedder_handles))
        embedder_handles.append(Line2D([], [], ls="", marker="", label=family))
        embedder_handles += [Line2D([], [], ls="", marker="o", color=colour[n], label=short.get(n, n))
                             for n in by_family[family]]
    head_handles = [Line2D([], [], ls="", marker=MARKERS.get(h, "x"), color="0.3", label=h)
                    for h in dict.fromkeys(r["head"] for r in rows)]
    first = ax.legend(handles=embedder_handles, title="embedder (colour), by family", fontsize=7, title_fontsize=8,
                      loc="upper left", bbox_to_anchor=(1.01, 1.0), handletextpad=0.3)
    for i, label in enumerate(first.get_texts()):
        if i in headers:
            label.set_fontweight("bold")
    ax.add_artist(first)
    fig.tight_layout()
    # the head legend and the frontier key go below the legend before (however long the lists), and the saved
    # image grows to hold them
    second = ax.legend(handles=head_handles, title="head (shape)", fontsize=7, title_fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.01, _bottom(fig, ax, first) - 0.02))
    third = ax.text(1.01, _bottom(fig, ax, second) - 0.03, "Pareto frontier\n" + "\n".join(key),
                    transform=ax.transAxes, fontsize=7, va="top", ha="left", family="monospace")
    boxes = separate_labels(fig, texts)
    renderer = fig.canvas.get_renderer()
    panels = [artist.get_window_extent(renderer) for artist in (first, second, third)]
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return CostPlot(boxes, panels, labels, colour)


def row_cost(row: dict[str, Any], cost: str) -> float:
    """A table row's cost in seconds: extraction (first run) plus training, wall or CPU."""
    if cost == "cpu":
        return float((row.get("extract_cpu_seconds") or 0.0) + (row.get("cpu_seconds") or 0.0))
    return float(row["extract_seconds"] + row["train_seconds"])


class CostPlot(list):
    """The frontier labels' bounding boxes (a list, for the overlap test), with ``panels``: the extents of
    the embedder legend (grouped by family), the head legend and the frontier key beside the plot;
    ``ticks``: the cost axis's tick labels; ``colours``: each embedder's colour."""

    def __init__(self, labels: list, panels: list, ticks: list[str] | None = None,
                 colours: dict[str, str] | None = None):
        super().__init__(labels)
        self.panels, self.ticks, self.colours = panels, ticks or [], colours or {}


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
    palette = embedder_colours([c.get("features", "") for c in usable])
    for ax, (family, members) in zip(axes.flat, sorted(groups.items()), strict=False):
        for c in members:
            colour = palette[c.get("features", "")]
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


def confusion_plot(panels: list[tuple[str, list[str], np.ndarray]], dataset: str, path: Path) -> bool:
    """One confusion matrix per panel (title, class names, counts ``[given][predicted]``): cells shaded by the
    share of their row (recall), each with its count; long class names are shortened, never overlapped."""
    panels = [p for p in panels if np.asarray(p[2]).size and np.asarray(p[2]).sum() > 0]
    if not panels:
        return False
    plt = _plt()
    n = max(len(p[1]) for p in panels)
    side = min(max(3.2, 0.55 * n + 1.6), 12.0)
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels) + 0.6, side + 0.6), squeeze=False)
    for ax, (title, classes, counts) in zip(axes.flat, panels, strict=True):
        counts = np.asarray(counts, dtype=np.int64)
        totals = counts.sum(1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        names = [c if len(c) <= 18 else c[:17] + "…" for c in classes]
        ax.set_xticks(range(len(names)), names, rotation=45 if max(map(len, names)) > 4 else 0, ha="right"
                      if max(map(len, names)) > 4 else "center", fontsize=8 if n <= 10 else 6)
        ax.set_yticks(range(len(names)), names, fontsize=8 if n <= 10 else 6)
        if n <= 20:
            for (i, j), v in np.ndenumerate(counts):
                ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=8 if n <= 10 else 6,
                        color="white" if shares[i, j] > 0.6 else "black")
        ax.set_xlabel("predicted", fontsize=9)
        ax.set_ylabel("given", fontsize=9)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"{dataset}: test confusion (counts summed over seeds; shade: share of the given class)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True
