"""Train a head on cached features: labels from the input table, seeded stratified splits, grid search, save.

Nothing here runs an embedder: features come from the HDF5 cache. Predicting for new texts
embeds them through the same cache with the saved embedder configuration, so repeats are free.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedx.errors import EmbedxError, OptionError, StoreError
from embedx.heads.base import FitReport, Head
from embedx.heads.data import HeadData
from embedx.heads.metrics import scores
from embedx.options import resolve_options
from embedx.registry import Registry, get_registry, missing_requirements
from embedx.store.reader import FeatureSet, FeatureStore

HEAD_FILE = "head.json"


@dataclass
class SplitSpec:
    seed: int = 0
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    samples_per_class: int | None = None


@dataclass
class TrainOutcome:
    head: str
    embedder: str
    set_name: str
    output: str
    options: dict[str, Any]
    classes: list[str]
    sizes: dict[str, int]
    validation: dict[str, float]
    test: dict[str, float]
    chosen: dict[str, Any]
    curves: dict[str, list[float]]
    extra: dict[str, Any]
    seconds: float
    grid: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_head(head_id: str, options: dict[str, Any] | None = None, registry: Registry | None = None) -> Head:
    registry = registry or get_registry()
    if head_id not in registry.heads:
        raise OptionError(f"no head {head_id!r} (heads: {', '.join(sorted(registry.heads))})")
    entry = registry.heads[head_id]
    missing = missing_requirements(entry)
    if missing:
        raise EmbedxError(f"head {head_id!r} needs {missing[0][0]!r}: {missing[0][1]}")
    return entry.cls(**resolve_options(head_id, entry.cls, entry.defaults, options or {}))


def pick_output(fset: FeatureSet, head: Head, output: str | None) -> str:
    """The output a head trains on: the one named, else a per-layer one for layer heads, else the first document one."""
    if output is not None:
        if output not in fset.outputs:
            raise OptionError(f"set {fset.info.name} has no output {output!r} (it has: {', '.join(fset.outputs)})")
        return output
    outputs = list(fset.outputs.values())
    if head.input == "layers":
        layered = [o for o in outputs if o.get("per_layer")]
        if not layered:
            raise OptionError(f"head {head.id!r} needs a per-layer output; set {fset.info.name} has none "
                              "(extract with -O layers=all, or ELMo's per-layer output)")
        return sorted(layered, key=lambda o: o["level"] != "document")[0]["name"]
    docs = [o for o in outputs if o["level"] == "document"]
    if not docs:
        raise OptionError(f"head {head.id!r} needs a document output; set {fset.info.name} has none")
    return docs[0]["name"]


def labelled_data(fset: FeatureSet, store: FeatureStore, input: str | None, labels: str, output: str) -> HeadData:
    table = store.input(input)
    values = np.asarray(table.column(labels)).astype(str)
    classes = sorted(set(values.tolist()))
    if len(classes) < 2:
        raise OptionError(f"label column {labels!r} of input {table.name!r} has {len(classes)} class(es); need 2+")
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.fromiter((lookup[v] for v in values.tolist()), dtype=np.int64, count=len(values))
    return HeadData(fset, output, fset.rows(keys=table.keys), y, classes)


def make_splits(y: np.ndarray, classes: list[str], spec: SplitSpec) -> dict[str, np.ndarray]:
    from embedx.datasets import Dataset, split

    labels = np.asarray(classes, dtype=object)[y]
    ds = Dataset("features", [""] * len(y), labels.astype(str), [str(i) for i in range(len(y))], tuple(classes))
    parts = split(ds, seed=spec.seed, train=spec.train, validation=spec.validation, test=spec.test,
                  samples_per_class=spec.samples_per_class)
    return {"train": parts.train, "validation": parts.validation, "test": parts.test}


def fit_and_score(head: Head, data: HeadData, parts: dict[str, np.ndarray]) -> tuple[FitReport, dict, dict]:
    train, validation, test = (data.subset(parts[p]) for p in ("train", "validation", "test"))
    report = head.fit(train, validation)
    n = len(data.classes)
    return report, scores(validation.y, head.predict(validation), n), scores(test.y, head.predict(test), n)


def train(head_id: str, features: str | Path, embedder: str, labels: str, *, input: str | None = None,
          config_hash: str | None = None, output: str | None = None, options: dict[str, Any] | None = None,
          grid: dict[str, list[str]] | None = None, split: SplitSpec | None = None, save: str | Path | None = None,
          registry: Registry | None = None) -> TrainOutcome:
    """Train ``head_id`` on one feature set; with ``grid``, every combination is scored on validation."""
    split = split or SplitSpec()
    started = time.perf_counter()
    with FeatureStore(features) as store:
        fset = store.feature_set(embedder, config_hash)
        head = build_head(head_id, options, registry)
        chosen_output = pick_output(fset, head, output)
        data = labelled_data(fset, store, input, labels, chosen_output)
        parts = make_splits(data.y, data.classes, split)
        combos = [dict(options or {})]
        if grid:
            keys = list(grid)
            combos = [dict(options or {}, **dict(zip(keys, values, strict=True)))
                      for values in itertools.product(*(grid[k] for k in keys))]
        tried, best = [], None
        for combo in combos:
            candidate = build_head(head_id, combo, registry)
            report, val, test = fit_and_score(candidate, data, parts)
            tried.append({"options": combo, "validation": val, "test": test})
            if best is None or val["accuracy"] > best[2]["accuracy"]:
                best = (candidate, report, val, test, combo)
        head, report, val, test, combo = best
        outcome = TrainOutcome(
            head=head_id, embedder=fset.info.embedder, set_name=fset.info.name, output=chosen_output,
            options={k: v for k, v in combo.items()}, classes=data.classes,
            sizes={p: len(v) for p, v in parts.items()}, validation=val, test=test,
            chosen=report.chosen, curves=report.curves, extra=report.extra, seconds=time.perf_counter() - started,
            grid=tried if grid else [])
        if save is not None:
            _save(Path(save), head, outcome, fset, Path(features), input, labels, split)
    return outcome


def _save(directory: Path, head: Head, outcome: TrainOutcome, fset: FeatureSet, features: Path,
          input: str | None, labels: str, split: SplitSpec) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    head.save(directory)
    meta = {"format": "embedx-head", "format_version": 1, "outcome": outcome.as_dict(),
            "embedder_config": fset.info.config, "config_hash": fset.info.config_hash,
            "features": str(features.resolve()), "input": input, "labels": labels, "split": asdict(split)}
    (directory / HEAD_FILE).write_text(json.dumps(meta, indent=2, default=str))


def load_head(directory: str | Path, registry: Registry | None = None) -> tuple[Head, dict[str, Any]]:
    directory = Path(directory)
    path = directory / HEAD_FILE
    if not path.exists():
        raise StoreError(f"{directory} is not a saved head (no {HEAD_FILE}); save one with `embedx train --save`")
    meta = json.loads(path.read_text())
    head = build_head(meta["outcome"]["head"], meta["outcome"]["options"], registry)
    head.restore(directory)
    return head, meta


def predict(directory: str | Path, texts: list[str], features: str | Path | None = None,
            registry: Registry | None = None) -> tuple[list[str], np.ndarray]:
    """Labels and class probabilities for ``texts``, embedding them through the cache first."""
    from embedx.extraction import extract

    head, meta = load_head(directory, registry)
    config = meta["embedder_config"]
    path = Path(features or meta["features"])
    options = dict(config.get("options", {}), **config.get("unkeyed_options", {}))
    report = extract(texts, config["embedder"], path, options=options, outputs=config.get("outputs"),
                     dtype=config.get("dtype", "float32"), registry=registry)
    if report.config_hash != meta["config_hash"]:
        raise StoreError(f"the embedder {config['embedder']!r} no longer computes the configuration this head was "
                         f"trained on ({meta['config_hash'][:12]} then, {report.config_hash[:12]} now: a model file "
                         "or library version changed); retrain the head")
    with FeatureStore(path) as store:
        fset = store.feature_set(report.set_name)
        output = meta["outcome"]["output"]
        rows = fset.rows(texts)
        data = HeadData(fset, output, rows, np.zeros(len(rows), dtype=np.int64), meta["outcome"]["classes"])
        proba = head.predict_proba(data)
    classes = meta["outcome"]["classes"]
    return [classes[i] for i in proba.argmax(1)], proba
