"""Train a head on cached features: labels from the input table, given or seeded splits, a selection protocol, save.

Nothing here runs an embedder: features come from the HDF5 cache. Predicting for new texts
embeds them through the same cache with the saved embedder configuration, so repeats are free.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedx.errors import EmbedxError, OptionError, StoreError
from embedx.heads.base import Head
from embedx.heads.data import HeadData
from embedx.heads.metrics import scores
from embedx.heads.saved import HeadStateError, refuse_legacy
from embedx.heads.selection import Protocol, Selection, choose_and_fit
from embedx.keys import config_hash
from embedx.options import resolve_options
from embedx.registry import Registry, get_registry, missing_requirements
from embedx.store.reader import FeatureSet, FeatureStore

HEAD_FILE = "head.json"
SPLITS_FILE = "splits.csv"  # the row -> split (and fold) assignment, beside the head
HEAD_FORMAT = 2  # 1 was pickle / torch.save files; 2 is state.npz + state.json (data only)


@dataclass
class SplitSpec:
    """How rows are split. ``column`` names an input column of given splits (train / validation / test)."""

    seed: int = 0
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    samples_per_class: int | None = None
    column: str | None = None


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
    selection: str = "cv"
    method: str = ""
    flags: list[str] = field(default_factory=list)

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


def make_splits(y: np.ndarray, classes: list[str], spec: SplitSpec,
                given: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row indices per part: the given split column's parts, else a seeded stratified random split."""
    from embedx.datasets import Dataset, split
    from embedx.datasets.splits import check_fractions, given_split

    if given is not None:
        share = spec.validation / (spec.train + spec.validation) if spec.train + spec.validation > 0 else 0.0
        return given_split(y, given, seed=spec.seed, validation_share=share,
                           samples_per_class=spec.samples_per_class, column=spec.column or "split")
    check_fractions(spec.train, spec.validation, spec.test)
    labels = np.asarray(classes, dtype=object)[y]
    ds = Dataset("features", [""] * len(y), labels.astype(str), [str(i) for i in range(len(y))], tuple(classes))
    parts = split(ds, seed=spec.seed, train=spec.train, validation=spec.validation, test=spec.test,
                  samples_per_class=spec.samples_per_class)
    return {"train": parts.train, "validation": parts.validation, "test": parts.test}


def train(head_id: str, features: str | Path, embedder: str, labels: str, *, input: str | None = None,
          config_hash: str | None = None, output: str | None = None, options: dict[str, Any] | None = None,
          grid: dict[str, list[str]] | None = None, split: SplitSpec | None = None, save: str | Path | None = None,
          protocol: Protocol | None = None, registry: Registry | None = None) -> TrainOutcome:
    """Train ``head_id`` on one feature set, choosing settings by ``protocol`` (default: 5-fold CV, refit)."""
    split = split or SplitSpec()
    protocol = protocol or Protocol(seed=split.seed)
    started = time.perf_counter()
    with FeatureStore(features) as store:
        fset = store.feature_set(embedder, config_hash)
        head = build_head(head_id, options, registry)
        chosen_output = pick_output(fset, head, output)
        data = labelled_data(fset, store, input, labels, chosen_output)
        table = store.input(input)
        given = np.asarray(table.column(split.column)) if split.column else None
        parts = make_splits(data.y, data.classes, split, given)
        picked = choose_and_fit(lambda combo: build_head(head_id, combo, registry), dict(options or {}),
                                grid or {}, data, parts["train"], parts["validation"], protocol)
        test_data = data.subset(parts["test"])
        test = scores(test_data.y, picked.head.predict(test_data), len(data.classes))
        outcome = TrainOutcome(
            head=head_id, embedder=fset.info.embedder, set_name=fset.info.name, output=chosen_output,
            options=dict(picked.options), classes=data.classes,
            sizes={p: len(v) for p, v in parts.items()}, validation=picked.selection_scores, test=test,
            chosen=picked.chosen, curves=picked.report.curves, extra=picked.report.extra,
            seconds=time.perf_counter() - started, grid=picked.candidates, selection=protocol.selection,
            method=picked.method + "; scored once on test", flags=picked.flags)
        if save is not None:
            _save(Path(save), picked.head, outcome, fset, Path(features), input, labels, split, protocol,
                  _assignment(table.keys, data.y, data.classes, parts, picked))
    return outcome


def _assignment(keys: np.ndarray, y: np.ndarray, classes: list[str], parts: dict[str, np.ndarray],
                picked: Selection) -> list[tuple]:
    """One ``(row, content key, split, fold, label)`` per input row; unused rows say ``unused``."""
    part = np.full(len(keys), "unused", dtype=object)
    for name, rows in parts.items():
        part[rows] = name
    fold = np.full(len(keys), -1, dtype=np.int64)
    if picked.folds is not None:
        fold[picked.pool] = picked.folds
    return [(i, k.decode() if isinstance(k, bytes) else str(k), part[i], "" if fold[i] < 0 else int(fold[i]),
             classes[y[i]]) for i, k in enumerate(keys.tolist())]


def _save(directory: Path, head: Head, outcome: TrainOutcome, fset: FeatureSet, features: Path,
          input: str | None, labels: str, split: SplitSpec, protocol: Protocol, assignment: list[tuple]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    head.save(directory)
    with open(directory / SPLITS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "key", "split", "fold", "label"])
        writer.writerows(assignment)
    meta = {"format": "embedx-head", "format_version": HEAD_FORMAT, "outcome": outcome.as_dict(),
            "embedder_config": fset.info.config, "config_hash": fset.info.config_hash,
            "features": str(features.resolve()), "input": input, "labels": labels, "split": asdict(split),
            "protocol": asdict(protocol), "splits_file": SPLITS_FILE}
    (directory / HEAD_FILE).write_text(json.dumps(meta, indent=2, default=str))


def _retrain_command(meta: dict[str, Any]) -> str:
    outcome, split = meta.get("outcome", {}), meta.get("split", {})
    parts = ["embedx train", str(outcome.get("head", "HEAD")), "-f", str(meta.get("features", "FEATURES")),
             "-e", str(outcome.get("embedder", "EMBEDDER")), "--labels", str(meta.get("labels", "LABEL"))]
    if meta.get("input"):
        parts += ["--input", str(meta["input"])]
    if split.get("seed"):
        parts += ["--seed", str(split["seed"])]
    parts += ["--save", "DIR"]
    return " ".join(parts)


def load_head(directory: str | Path, registry: Registry | None = None) -> tuple[Head, dict[str, Any]]:
    """A saved head, read as data only: files that could run code (old pickle format) are refused unread."""
    directory = Path(directory)
    path = directory / HEAD_FILE
    if not path.is_file():
        raise StoreError(f"{directory} is not a saved head (no {HEAD_FILE}); save one with `embedx train --save`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        head_id, options = meta["outcome"]["head"], meta["outcome"]["options"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{path}: not a readable head description ({exc.__class__.__name__}: {exc})") from None
    refuse_legacy(directory, _retrain_command(meta))
    if meta.get("format_version") != HEAD_FORMAT:
        raise HeadStateError(f"{path}: head format {meta.get('format_version')!r}, this embedx reads format "
                             f"{HEAD_FORMAT}; re-save it by training again: {_retrain_command(meta)}")
    head = build_head(head_id, options, registry)
    try:
        head.restore(directory)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise HeadStateError(f"{directory}: saved head does not fit a {head_id!r} head "
                             f"({exc.__class__.__name__}: {exc}); save it again") from None
    return head, meta


def expected_config(config: dict[str, Any], registry: Registry | None = None) -> str:
    """The configuration hash the embedder would compute now for a saved configuration; runs nothing."""
    from embedx.extraction import ExtractSettings, _build

    options = dict(config.get("options", {}), **config.get("unkeyed_options", {}))
    settings = ExtractSettings(config["embedder"], "unused.h5", options=options, outputs=config.get("outputs"),
                               dtype=config.get("dtype", "float32"))
    _, now, _, _ = _build(registry or get_registry(), settings)
    return config_hash(now)


def predict(directory: str | Path, texts: list[str], features: str | Path | None = None,
            registry: Registry | None = None, reports: list | None = None) -> tuple[list[str], np.ndarray]:
    """Labels and class probabilities for ``texts``, embedding them through the cache first.

    The extraction's report (what was computed, what came from the cache) is appended to ``reports``.
    """
    from embedx.extraction import extract

    head, meta = load_head(directory, registry)
    config = meta["embedder_config"]
    path = Path(features or meta["features"])
    options = dict(config.get("options", {}), **config.get("unkeyed_options", {}))
    now = expected_config(config, registry)  # before anything is computed or written to the cache
    if now != meta["config_hash"]:
        raise StoreError(f"the embedder {config['embedder']!r} no longer computes the configuration this head was "
                         f"trained on ({meta['config_hash'][:12]} then, {now[:12]} now: a model file "
                         "or library version changed); retrain the head")
    report = extract(texts, config["embedder"], path, options=options, outputs=config.get("outputs"),
                     dtype=config.get("dtype", "float32"), registry=registry)
    if reports is not None:
        reports.append(report)
    with FeatureStore(path) as store:
        fset = store.feature_set(report.set_name)
        output = meta["outcome"]["output"]
        rows = fset.rows(texts)
        data = HeadData(fset, output, rows, np.zeros(len(rows), dtype=np.int64), meta["outcome"]["classes"])
        proba = head.predict_proba(data)
    classes = meta["outcome"]["classes"]
    return [classes[i] for i in proba.argmax(1)], proba
