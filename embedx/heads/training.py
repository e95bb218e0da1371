"""Train a head on cached features: labels from the input table, given or seeded splits, a selection protocol, save.

Nothing here runs an embedder: features come from the HDF5 cache. Predicting for new texts
embeds them through a feature cache with the saved embedder configuration, so repeats are free.

A saved head travels between people, so :func:`predict` treats it as untrusted: it records the
embedder's configuration, but trust comes only from the caller. A head whose recorded options
grant trust (``trust_pickle=true``, any ``trust_*`` or declared trust option) is refused unless the
caller passes that option; paths in its options are resolved from the current directory, as if
typed there (never from the head's folder), and named before anything is loaded; features are
written to the file the caller gives, else :func:`default_predict_features`, never to the path
the head records (that is only informational).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedx.contract.errors import EmbedxError, OptionError, StoreError
from embedx.contract.options import resolve_options
from embedx.datasets.grouping import Duplicates, Grouping
from embedx.heads.base import Head
from embedx.heads.data import HeadData
from embedx.heads.metrics import per_class, scores
from embedx.heads.saved import HeadStateError, refuse_legacy
from embedx.heads.selection import Protocol, Selection, choose_and_fit
from embedx.registry import Registry, get_registry, missing_requirements
from embedx.store.reader import FeatureSet, FeatureStore

HEAD_FILE = "head.json"
SPLITS_FILE = "splits.csv"  # the row -> split (and fold) assignment, beside the head
PREDICTIONS_FILE = "predictions.csv"  # each test row's label, prediction and class probabilities
HEAD_FORMAT = 2  # 1 was pickle / torch.save files; 2 is state.npz + state.json (data only)
MAX_HEAD_FILE_BYTES = 16 << 20  # head.json holds settings, scores and curves: far below this
PREDICT_FEATURES = "predict-features.h5"  # predict's feature cache, in embedx's cache folder


def default_predict_features() -> Path:
    """Where ``predict`` embeds texts when not told: ``predict-features.h5`` in embedx's cache folder
    (``$EMBEDX_CACHE_DIR``, else ``$XDG_CACHE_HOME/embedx``, else ``~/.cache/embedx``). No head can change it."""
    from embedx.files.digests import cache_root

    return cache_root() / PREDICT_FEATURES


@dataclass
class SplitSpec:
    """How rows are split. ``column`` names an input column of given splits (train / validation / test)."""

    seed: int = 0
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    samples_per_class: int | None = None
    column: str | None = None
    duplicates: Duplicates = "group"  # "keep": rows dealt one by one, a repeated text may cross parts


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
    metric: str = "accuracy"  # what selection maximised: accuracy or macro_f1
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)  # test precision/recall/f1/support
    grouping: dict[str, Any] = field(default_factory=dict)  # Grouping.as_dict(), plus cv_folds and cv_fold_drift
    warnings: list[str] = field(default_factory=list)  # small classes, classes only in test, conflicting labels

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


def make_splits(y: np.ndarray, classes: list[str], spec: SplitSpec, given: np.ndarray | None = None,
                keys: np.ndarray | None = None, lines: np.ndarray | None = None,
                source: str = "input") -> tuple[dict[str, np.ndarray], Grouping]:
    """Row indices per part and the grouping report: the given split column's parts, else a seeded split.

    Rows with equal ``keys`` (content keys) stay on one side unless ``spec.duplicates == "keep"``; without
    ``keys`` every row is its own text.
    """
    from embedx.datasets.splits import check_fractions, split_rows

    if given is None:
        check_fractions(spec.train, spec.validation, spec.test)
    keys = np.arange(len(y)) if keys is None else keys
    fractions = np.array([spec.train, spec.validation, spec.test], dtype=np.float64)
    parts, grouping = split_rows(y, classes, keys, seed=spec.seed, fractions=fractions,
                                 samples_per_class=spec.samples_per_class, duplicates=spec.duplicates,
                                 given=given, column=spec.column or "split",
                                 lines=lines.tolist() if lines is not None else None, source=source)
    return ({p: np.sort(v) if given is not None else v for p, v in parts.items()}, grouping)


def train(head_id: str, features: str | Path, embedder: str, labels: str, *, input: str | None = None,
          config_hash: str | None = None, output: str | None = None, options: dict[str, Any] | None = None,
          grid: dict[str, list[str]] | None = None, split: SplitSpec | None = None, save: str | Path | None = None,
          protocol: Protocol | None = None, registry: Registry | None = None) -> TrainOutcome:
    """Train ``head_id`` on one feature set, choosing settings by ``protocol`` (default: 5-fold CV, refit).

    Rows of one text (one content key) stay on one side of the split and in one fold (unless
    ``split.duplicates == "keep"``); ``outcome.grouping`` says how many there were.
    """
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
        keys = np.asarray(table.keys)
        parts, grouping = make_splits(data.y, data.classes, split, given, keys, np.asarray(table.lines),
                                      source=f"{Path(features).name}, input {table.name!r}")
        _need_test_rows(parts, data.y, data.classes, keys, split)
        groups = None if split.duplicates == "keep" else keys
        picked = choose_and_fit(lambda combo: build_head(head_id, combo, registry), dict(options or {}),
                                grid or {}, data, parts["train"], parts["validation"], protocol, groups)
        test_data = data.subset(parts["test"])
        proba = np.asarray(picked.head.predict_proba(test_data))
        predicted = proba.argmax(1)
        test = scores(test_data.y, predicted, len(data.classes))
        report = grouping.as_dict()
        if picked.folds is not None:
            report["cv_folds"] = int(picked.folds.max()) + 1
            report["cv_fold_drift"] = picked.fold_drift
        outcome = TrainOutcome(
            head=head_id, embedder=fset.info.embedder, set_name=fset.info.name, output=chosen_output,
            options=dict(picked.options), classes=data.classes,
            sizes={p: len(v) for p, v in parts.items()}, validation=picked.selection_scores, test=test,
            chosen=picked.chosen, curves=picked.report.curves, extra=picked.report.extra,
            seconds=time.perf_counter() - started, grid=picked.candidates, selection=protocol.selection,
            method=picked.method + "; scored once on test", flags=picked.flags, metric=protocol.metric,
            per_class=per_class(test_data.y, predicted, data.classes), grouping=report,
            warnings=list(grouping.warnings))
        if save is not None:
            _save(Path(save), picked.head, outcome, fset, Path(features), input, labels, split, protocol,
                  _assignment(keys, data.y, data.classes, parts, picked),
                  _predictions(keys, data.y, data.classes, parts["test"], proba))
    return outcome


def _need_test_rows(parts: dict[str, np.ndarray], y: np.ndarray, classes: list[str], keys: np.ndarray,
                    split: SplitSpec) -> None:
    """An empty train or test part is one clear error naming the classes' sizes, not a failure deep in a head."""
    for part in ("train", "test"):
        if len(parts[part]):
            continue
        texts = {classes[c]: len(np.unique(keys[y == c])) for c in np.unique(y).tolist()}
        sizes = ", ".join(f"class {name!r} has {n} text(s)" for name, n in texts.items())
        fraction = getattr(split, part)
        raise OptionError(f"no rows fell in the {part} part: {sizes}; a {part} fraction of {fraction:g} needs about "
                          f"{math.ceil(1 / fraction) if fraction > 0 else 'more'} texts in a class to give it one. "
                          "Use more rows, a larger fraction (--split) or --split-column")


def _predictions(keys: np.ndarray, y: np.ndarray, classes: list[str], test: np.ndarray,
                 proba: np.ndarray) -> list[list[Any]]:
    """One row per test row: row, content key, true label, predicted label, one probability per class."""
    rows = []
    for i, r in enumerate(test.tolist()):
        key = keys[r].decode() if isinstance(keys[r], bytes) else str(keys[r])
        rows.append([r, key, classes[y[r]], classes[int(proba[i].argmax())],
                     *(f"{float(p):.6g}" for p in proba[i])])
    return sorted(rows, key=lambda row: row[0])


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
          input: str | None, labels: str, split: SplitSpec, protocol: Protocol, assignment: list[tuple],
          predictions: list[list[Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    head.save(directory)
    with open(directory / SPLITS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "key", "split", "fold", "label"])
        writer.writerows(assignment)
    with open(directory / PREDICTIONS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "key", "label", "predicted", *(f"p:{c}" for c in outcome.classes)])
        writer.writerows(predictions)
    shape = _row_shape(fset.outputs.get(outcome.output, {}))
    meta = {"format": "embedx-head", "format_version": HEAD_FORMAT, "outcome": outcome.as_dict(),
            "embedder_config": fset.info.config, "config_hash": fset.info.config_hash,
            "features": str(features.resolve()), "input": input, "labels": labels, "split": asdict(split),
            "protocol": asdict(protocol), "splits_file": SPLITS_FILE, "predictions_file": PREDICTIONS_FILE,
            **({"feature_shape": shape} if shape is not None else {})}
    (directory / HEAD_FILE).write_text(json.dumps(meta, indent=2, default=str))


def _row_shape(output: dict[str, Any]) -> list[int] | None:
    """One row's shape for a document output (``[dim]``, or ``[layers, dim]`` per layer); None for tokens."""
    dim, layers = output.get("dim"), output.get("layers")
    if output.get("level") != "document" or not isinstance(dim, int):
        return None
    return [int(layers), dim] if output.get("per_layer") and isinstance(layers, int) else [dim]


def _retrain_command(meta: dict[str, Any]) -> str:
    outcome: dict[str, Any] = meta["outcome"] if isinstance(meta.get("outcome"), dict) else {}
    split: dict[str, Any] = meta["split"] if isinstance(meta.get("split"), dict) else {}
    parts = ["embedx train", str(outcome.get("head", "HEAD")), "-f", str(meta.get("features", "FEATURES")),
             "-e", str(outcome.get("embedder", "EMBEDDER")), "--labels", str(meta.get("labels", "LABEL"))]
    if meta.get("input"):
        parts += ["--input", str(meta["input"])]
    if split.get("seed"):
        parts += ["--seed", str(split["seed"])]
    parts += ["--save", "DIR"]
    return " ".join(parts)


_HEX64 = re.compile(r"[0-9a-f]{64}")


def read_head_meta(directory: str | Path) -> dict[str, Any]:
    """A saved head's ``head.json``, checked field by field: one line naming the first that is wrong."""
    directory = Path(directory)
    path = directory / HEAD_FILE
    if not path.is_file():
        raise StoreError(f"{directory} is not a saved head (no {HEAD_FILE}); save one with `embedx train --save`")
    try:
        size = path.stat().st_size
        if size > MAX_HEAD_FILE_BYTES:
            raise StoreError(f"{path}: {size:,} bytes, more than a head description takes; not a saved head")
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise StoreError(f"{path}: not a readable head description ({exc.__class__.__name__}: "
                         f"{str(exc)[:200]})") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: not a readable head description (not a JSON object)")
    refuse_legacy(directory, _retrain_command(meta))
    if meta.get("format_version") != HEAD_FORMAT:
        raise HeadStateError(f"{path}: head format {str(meta.get('format_version'))[:20]!r}, this embedx reads format "
                             f"{HEAD_FORMAT}; re-save it by training again: {_retrain_command(meta)}")

    _check_head_fields(path, meta)
    return meta


def _check_head_fields(path: Path, meta: dict[str, Any]) -> None:
    """Each field of a ``head.json`` of the current format has the type and shape it should."""

    def wrong(field: str, expected: str) -> StoreError:
        return HeadStateError(f"{path}: {field} is not {expected}; save the head again")

    outcome, config = meta.get("outcome"), meta.get("embedder_config")
    if not isinstance(outcome, dict):
        raise wrong("'outcome'", "an object")
    if not isinstance(outcome.get("head"), str) or not isinstance(outcome.get("options"), dict):
        raise wrong("'outcome.head' / 'outcome.options'", "a head id and its options")
    classes = outcome.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)
            and len(set(classes)) == len(classes)):
        raise wrong("'outcome.classes'", "a list of two or more distinct class names")
    if not isinstance(outcome.get("output"), str):
        raise wrong("'outcome.output'", "an output name")
    if not isinstance(config, dict) or not isinstance(config.get("embedder"), str):
        raise wrong("'embedder_config'", "an embedder configuration")
    for key in ("options", "unkeyed_options"):
        if not isinstance(config.get(key, {}), dict) or not all(isinstance(k, str) for k in config.get(key, {})):
            raise wrong(f"'embedder_config.{key}'", "an object of options")
    outputs = config.get("outputs")
    if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)):
        raise wrong("'embedder_config.outputs'", "a list of output names")
    if config.get("dtype", "float32") not in ("float32", "float16"):
        raise wrong("'embedder_config.dtype'", "float32 or float16")
    if not isinstance(meta.get("config_hash"), str) or not _HEX64.fullmatch(meta["config_hash"]):
        raise wrong("'config_hash'", "a SHA-256 in hex")
    shape = meta.get("feature_shape")
    if shape is not None and not (isinstance(shape, list) and 1 <= len(shape) <= 2 and all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise wrong("'feature_shape'", "one or two positive sizes")


def load_head(directory: str | Path, registry: Registry | None = None) -> tuple[Head, dict[str, Any]]:
    """A saved head, read as data only: files that could run code (old pickle format) are refused unread.

    ``head.json`` is checked field by field, the head's own options may not grant trust (like an
    embedder's, see :mod:`embedx.trust`), and ``state.npz`` is bounded and checked before it is read
    (:func:`embedx.heads.saved.read_state`).
    """
    from embedx.trust import granted_trust

    directory = Path(directory)
    meta = read_head_meta(directory)
    head_id, options = meta["outcome"]["head"], meta["outcome"]["options"]
    registry = registry or get_registry()
    entry = registry.heads.get(head_id)
    granted = granted_trust(options, entry.cls if entry else None, entry.defaults if entry else None)
    if granted:
        name, value = next(iter(granted.items()))
        raise OptionError(f"{directory / HEAD_FILE}: the head's option {name}={value!r} would grant trust, "
                          "which a saved "
                          "head cannot do; retrain it if you trust it")
    head = build_head(head_id, options, registry)
    try:
        head.restore(directory)
    except EmbedxError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, OverflowError, RuntimeError) as exc:
        raise HeadStateError(f"{directory}: saved head does not fit a {head_id!r} head "
                             f"({exc.__class__.__name__}: {str(exc)[:200]}); save it again") from None
    return head, meta


def expected_config(config: dict[str, Any], registry: Registry | None = None,
                    options: dict[str, Any] | None = None) -> str:
    """The configuration hash the embedder would compute now for a saved configuration; runs nothing.

    ``options`` replaces the configuration's own (see :func:`embedder_options`)."""
    from embedx.pipeline.extraction import resolve_embedder

    if options is None:
        options = dict(config.get("options", {}), **config.get("unkeyed_options", {}))
    return resolve_embedder(registry or get_registry(), config["embedder"], options, config.get("outputs"),
                            dtype=config.get("dtype", "float32")).config_hash


def embedder_options(config: dict[str, Any], given: dict[str, Any] | None, registry: Registry,
                     where: str = "the saved head") -> dict[str, Any]:
    """The options to embed with: the recorded ones without their trust and write-location options, then the caller's.

    A recorded trust option that grants trust (``trust_pickle=true``) is refused unless the caller
    passes that option too: trust comes from the command line or the API call, never from a file.
    """
    from embedx.trust import granted_trust, is_trust_option, is_write_option

    entry = registry.embedders.get(config["embedder"])  # unknown: trust options by name alone, refused first
    cls, presets = (entry.cls, entry.defaults) if entry is not None else (None, None)
    recorded = dict(config.get("options", {}), **config.get("unkeyed_options", {}))
    given = dict(given or {})
    granted = {k: v for k, v in granted_trust(recorded, cls, presets).items() if k not in given}
    if granted:
        name, value = next(iter(granted.items()))
        raise OptionError(f"{where} records {name}={value!r} for embedder {config['embedder']!r}; a saved head cannot "
                          f"grant trust. If you trust what it loads, pass --option {name}=... yourself")
    # trust and write locations come from the caller: recorded ones are dropped (the embedder's default applies)
    kept = {k: v for k, v in recorded.items() if not is_trust_option(k, cls) and not is_write_option(k, cls)}
    return {**kept, **given}


def named_paths(options: dict[str, Any]) -> dict[str, Path]:
    """The option values that name a file or folder, resolved from the current directory (as typed there)."""
    found = {}
    for name, value in options.items():
        if not isinstance(value, str) or not value or len(value) > 4096 or "\0" in value:
            continue
        path = Path(value).expanduser()
        try:
            exists = path.exists()
        except (OSError, ValueError):
            continue
        if exists or os.sep in value or value.startswith("~"):
            found[name] = Path(os.path.abspath(path))
    return found


def predict(directory: str | Path, texts: list[str], features: str | Path | None = None,
            registry: Registry | None = None, reports: list | None = None, options: dict[str, Any] | None = None,
            say: Callable[[str], None] | None = None, info: dict[str, Any] | None = None,
            ) -> tuple[list[str], np.ndarray]:
    """Labels and class probabilities for ``texts``, embedding them through a feature cache first.

    The head is untrusted (see the module docstring): its recorded trust options are refused unless
    ``options`` passes them, ``options`` overrides any recorded embedder option, and ``features``
    (default :func:`default_predict_features`) is the only file written. ``say`` hears, before
    anything is loaded, which files the embedder's options name and where features go; ``info``
    receives the classes, the feature file and those paths. The extraction's report (what was
    computed, what came from the cache) is appended to ``reports``.
    """
    from embedx.pipeline.extraction import extract

    registry = registry or get_registry()
    head, meta = load_head(directory, registry)
    config = meta["embedder_config"]
    where = str(Path(directory) / HEAD_FILE)
    embed_options = embedder_options(config, options, registry, where)
    path = Path(features) if features is not None else default_predict_features()
    paths = named_paths(embed_options)
    classes = meta["outcome"]["classes"]
    if info is not None:
        info.update(classes=classes, features=path, paths=paths)
    if say is not None:
        for name, target in paths.items():
            kind = "folder" if target.is_dir() else "file" if target.exists() else "path (missing)"
            say(f"embedder {config['embedder']!r} option {name}: {kind} {target}")
        say(f"features: {path}" + ("" if features is not None else " (the default; --features to choose)"))
    now = expected_config(config, registry, embed_options)  # before anything is computed or written to the cache
    if now != meta["config_hash"]:
        raise StoreError(f"the embedder {config['embedder']!r} no longer computes the configuration this head was "
                         f"trained on ({meta['config_hash'][:12]} then, {now[:12]} now: a model file, option "
                         "or library version changed); retrain the head")
    if features is None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    report = extract(texts, config["embedder"], path, options=embed_options, outputs=config.get("outputs"),
                     dtype=config.get("dtype", "float32"), registry=registry)
    if reports is not None:
        reports.append(report)
    with FeatureStore(path) as store:
        fset = store.feature_set(report.set_name)
        output = meta["outcome"]["output"]
        if output not in fset.outputs:
            raise HeadStateError(f"{where}: the head reads output {output!r}, which embedder {config['embedder']!r} "
                                 f"does not produce here (it has: {', '.join(fset.outputs)}); retrain the head")
        recorded, actual = meta.get("feature_shape"), _row_shape(fset.outputs[output])
        if recorded is not None and actual is not None and recorded != actual:
            raise HeadStateError(f"{where}: the head was trained on rows of shape {recorded}, the embedder gives "
                                 f"{actual}; retrain the head")
        rows = fset.rows(texts)
        data = HeadData(fset, output, rows, np.zeros(len(rows), dtype=np.int64), classes)
        try:
            proba = np.asarray(head.predict_proba(data))
        except EmbedxError:
            raise
        except (ValueError, IndexError, RuntimeError, TypeError) as exc:
            raise HeadStateError(f"{directory}: the saved head does not fit these features ({exc.__class__.__name__}: "
                                 f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); retrain the head") from None
    if proba.shape != (len(texts), len(classes)) or not all(math.isfinite(v) for v in proba.ravel().tolist()):
        raise HeadStateError(f"{directory}: the saved head gives probabilities of shape {proba.shape} (or not finite) "
                             f"for {len(texts)} texts and {len(classes)} classes; retrain the head")
    return [classes[i] for i in proba.argmax(1)], proba
