"""Compare every feature set cached for one input: a logistic regression per set, plus neighbours.

This is what the README's `make demo` ends with: features are read from the HDF5 cache (no
model runs here), a stratified split is trained and scored per set, and a Markdown report
and a bar chart are written for a person to look at.

    python examples/compare_features.py features.h5 --input mr --label label --out runs/demo
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import embedx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", type=Path)
    parser.add_argument("--input", required=True, help="input table holding the texts and labels")
    parser.add_argument("--label", required=True, help="label column of that input")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows, neighbours = [], []
    with embedx.open_store(args.features) as store:
        table = store.input(args.input)
        labels = np.asarray(table.column(args.label)).astype(str)
        texts = table.texts
        index = np.arange(len(labels))
        train, test = train_test_split(index, test_size=0.3, stratify=labels, random_state=args.seed)
        for info in store.sets():
            fset = store.feature_set(info.name)
            if not any(o["level"] == "document" for o in info.outputs):
                continue
            started = time.perf_counter()
            X = fset.vectors(input=args.input).astype(np.float32)
            # C chosen by 3-fold cross-validation on the training part only
            model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.01, 0.1, 1.0], cv=3, max_iter=2000))
            model.fit(X[train], labels[train])
            predicted = model.predict(X[test])
            rows.append((info.embedder, X.shape[1], accuracy_score(labels[test], predicted),
                         f1_score(labels[test], predicted, average="macro"), time.perf_counter() - started))
            if info.embedder.startswith("glove"):
                neighbours = nearest(X, texts, queries=[int(test[0]), int(test[1]), int(test[2])])

    rows.sort(key=lambda r: -r[2])
    lines = [f"# Frozen features on `{args.input}` ({len(labels):,} texts, 70/30 stratified split, seed {args.seed})",
             "", "| features | dim | test accuracy | macro-F1 | train+select+score s |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {dim} | {acc:.3f} | {f1:.3f} | {sec:.1f} |" for name, dim, acc, f1, sec in rows]
    if neighbours:
        lines += ["", "## Nearest neighbours by GloVe mean vector (cosine)", ""]
        for query, hits in neighbours:
            lines.append(f"- **{query}**")
            lines += [f"  - {score:.3f}: {text}" for score, text in hits]
    report = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report)
    plot(rows, args.out / "accuracy.png")
    print(report)
    print(f"wrote {args.out / 'report.md'} and {args.out / 'accuracy.png'}")


def nearest(X: np.ndarray, texts: list[str], queries: list[int], k: int = 3) -> list:
    unit = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)
    result = []
    for q in queries:
        scores = unit @ unit[q]
        scores[q] = -np.inf
        top = np.argsort(-scores)[:k]
        result.append((texts[q][:120], [(float(scores[i]), texts[i][:120]) for i in top]))
    return result


def plot(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.6 * len(rows) + 1.2))
    names = [r[0] for r in rows][::-1]
    ax.barh(names, [r[2] for r in rows][::-1], color="#4C72B0")
    for y, value in enumerate([r[2] for r in rows][::-1]):
        ax.text(value + 0.005, y, f"{value:.3f}", va="center")
    ax.set_xlim(0.4, 1.0)
    ax.set_xlabel("test accuracy (logistic regression on cached features)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
