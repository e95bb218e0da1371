"""Run a comparison: extract through the cache, train every head per seed, fine-tune, collect results.

Every embedder, head and fine-tuner comes from the registry, so a newly installed plugin
joins the comparison without new code here. Anything that cannot run (a missing model, an
offline hub handle) is skipped and listed in the report with its reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embedx.bench.config import AUTO, BenchConfig
from embedx.bench.journal import PARTS, Journal, plain_json
from embedx.bench.specs import EmbedderSpec, parse_spec
from embedx.contract.errors import EmbedxError
from embedx.contract.options import option_specs
from embedx.files.digests import path_digests
from embedx.heads.data import MemoryData
from embedx.heads.metrics import scores
from embedx.registry import Registry, get_registry, missing_requirements


def auto_specs(kind: dict, skip: list[str]) -> list[EmbedderSpec]:
    """Every registered id that needs no option and has its dependencies installed."""
    specs = []
    for entry_id, entry in sorted(kind.items()):
        required = [s for s in option_specs(entry.cls).values() if s.required and s.name not in entry.defaults]
        if required or missing_requirements(entry) or entry_id in skip:
            continue
        specs.append(EmbedderSpec(entry_id))
    return specs


def _specs(items: list[str], kind: dict, skip: list[str]) -> list[EmbedderSpec]:
    specs: list[EmbedderSpec] = []
    for item in items:
        specs.extend(auto_specs(kind, skip) if item == AUTO else [parse_spec(item)])
    return specs


class Comparison:
    def __init__(self, config: BenchConfig, out: Path, registry: Registry | None = None,
                 log: Callable[[str], None] = print, progress: bool = False, resume: bool = True):
        self.config, self.out, self.log, self.progress = config, Path(out), log, progress
        self.registry = registry or get_registry()
        self.out.mkdir(parents=True, exist_ok=True)
        self.cache = self.out / "features.h5"
        self.times_file = self.out / "extract_times.json"
        self.times, self._times_rejected = _read_times(self.times_file)
        self.results: dict[str, Any] = {"config": config.as_dict(), "machine": machine(), "rows": [], "curves": [],
                                        "layers": [], "skipped": [], "extraction": [], "resumed_seconds": 0.0}
        journal = self.out / "journal.jsonl"
        if not resume:
            journal.unlink(missing_ok=True)
        self.journal = Journal(journal, config.as_dict())
        self._dataset_keys: dict[str, str] = {}  # what identifies each dataset's rows in the journal
        # what identifies each set of features: the store's set name carries the embedder's whole configuration,
        # model-file digests included, so a model retrained at the same path is not answered from the journal
        self._feature_sets: dict[tuple[str, str], str] = {}
        self._done = 0  # units computed by this run (resumed ones are counted by the journal)

    # -- driver ------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        embedders = _specs(self.config.embedders, self.registry.embedders, self.config.slow_embedders)
        finetuners = _specs(self.config.finetuners, self.registry.finetuners, [])
        self.results["finetuners"] = [spec.label for spec in finetuners]  # none: the report leaves fine-tuning out
        # fine-tuning seeds are split only when a fine-tuner runs, and their rows are never extracted
        tune_seeds = self.config.finetune_seeds if finetuners else []
        for index, name in enumerate(self.config.datasets):
            ds = self._load_dataset(name)
            splits = {seed: self._split(ds, seed) for seed in sorted(set(self.config.seeds) | set(tune_seeds))}
            knobbed = next(iter(splits.values())).dataset
            heads_use = [splits[seed] for seed in self.config.seeds] or list(splits.values())
            used = np.unique(np.concatenate([np.concatenate([s.train, s.validation, s.test]) for s in heads_use]))
            given = next(iter(splits.values())).settings.get("given")
            self.log(f"[{name}] {len(used):,} texts extracted of {len(ds):,}; labels {', '.join(ds.label_names)}"
                     + (f"; its own splits (column {given!r})" if given else ""))
            self._describe_split(name, ds, splits, given)
            for spec in embedders:
                layered = self._layered_output(spec.id)
                both = [self._first_document_output(spec.id), layered] if layered else None  # one set, one pass
                X = self._extract(name, knobbed.texts, used, spec, outputs=both)
                if X is not None:
                    self._heads(name, spec.label, X, knobbed, splits)
                if X is not None and layered:
                    self._layer_mix(name, spec, self._extract(name, knobbed.texts, used, spec, outputs=both,
                                                              read=layered), knobbed, splits)
            if self.config.layer_sweep and index == 0:
                self._layer_sweep(name, knobbed, used, splits)
            for spec in finetuners:
                self._finetune(name, spec, knobbed, splits)
        self.results["curves"] = self._first_seed_curves(self.results["curves"])
        self.results["seconds"] = time.perf_counter() - started
        self.results["resumed_units"] = self.journal.reused
        if self.journal.reused:
            self.log(f"{self.journal.reused:,} finished units taken from {self.journal.path} (--restart "
                     "recomputes them)")
        warning = self.journal.warning()
        if warning:
            self.log(warning)
        if self._times_rejected:
            self.log(f"warning: {self.times_file} ignored: not written by this user's embedx on this machine, "
                     "changed since, or not of the expected form; extraction times are those of this run")
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1, default=plain_json))
        return self.results

    def _split(self, ds: Any, seed: int) -> Any:
        """One seed's split. A file's own split has its validation part capped like train: at the cap times
        validation/train (15/70 of 500 = 107 per class by default), so --samples-per-class bounds every part
        but the test rows the file gives."""
        from embedx import datasets

        cap = self.config.samples_per_class
        split = datasets.split(ds, seed=seed, samples_per_class=cap, max_tokens=self.config.max_tokens,
                               max_token_length=self.config.max_token_length)
        if split.settings.get("given") and cap is not None:
            split = dataclasses.replace(split, validation=_per_class(split.validation, ds.label_ids,
                                                                     validation_cap(cap, split.settings)))
        _need_rows(split, seed)
        return split

    def _describe_split(self, name: str, ds: Any, splits: dict[int, Any], given: str | None) -> None:
        """What the report's split line for this dataset says: how rows were dealt, capped, and grouped."""
        first = splits[self.config.seeds[0]] if self.config.seeds else next(iter(splits.values()))
        settings, cap = first.settings, self.config.samples_per_class
        info: dict[str, Any] = {
            "kind": "given" if given else "dealt", "rows": len(ds), "cap": cap,
            "fractions": [settings.get(part) for part in ("train", "validation", "test")],
            "validation_cap": validation_cap(cap, settings) if given and cap is not None else None,
            "sizes": {str(seed): {part: int(len(getattr(s, part))) for part in ("train", "validation", "test")}
                      for seed, s in splits.items()}}
        if given:
            info["column"] = given
            self.results.setdefault("given_splits", {})[name] = {"column": given, **info["sizes"][str(
                next(iter(splits)))]}
        grouping = [s.report() for s in splits.values() if callable(getattr(s, "report", None))]
        if grouping:  # how repeated texts were kept together (embedx.datasets.grouping), per seed
            info["grouping"] = {str(seed): g for seed, g in zip(splits, grouping, strict=True)}
        self.results.setdefault("splits", {})[name] = info
        self.results.setdefault("classes", {})[name] = list(ds.label_names)

    def _load_dataset(self, name: str) -> Any:
        """A registered dataset (fetched when missing) or a labelled file; files are keyed by their content."""
        from embedx import datasets
        from embedx.datasets.files import is_labelled_file

        if is_labelled_file(name):
            ds = datasets.from_file(name, self.config.text_column, self.config.label_column,
                                    split_field=self.config.split_column, name=name,
                                    encoding_errors=self.config.encoding_errors)  # type: ignore[arg-type]
            if len(ds.label_names) < 2:
                raise EmbedxError(f"{name}: column {self.config.label_column!r} holds one label "
                                  f"({', '.join(map(repr, ds.label_names)) or 'none'}); a comparison needs two or more")
            # a file's own split: its validation part is capped like train (see _split), which changes results
            capped = "+validation-capped" if self.config.split_column and self.config.samples_per_class else ""
            self._dataset_keys[name] = f"{name}@{ds.meta['sha256']}{capped}"
            return ds
        if self.config.split_column:
            raise EmbedxError(f"--split-column {self.config.split_column}: dataset {name!r} is a registered one "
                              "(no columns); give a labelled .csv/.tsv/.jsonl file, or leave the option out")
        self._dataset_keys[name] = name
        return datasets.load(name, fetch=True)

    # -- extraction --------------------------------------------------------------------------------
    def _extract(self, dataset: str, texts: list[str], used: np.ndarray, spec: EmbedderSpec,
                 outputs: list[str] | None = None, read: str | None = None) -> np.ndarray | None:
        """``[len(texts), ...]`` features of output ``read`` (default: the first document output).

        ``outputs`` (default: the embedder's defaults) are computed together into one feature set.
        """
        from embedx.pipeline.extraction import extract
        from embedx.store.reader import FeatureStore

        chosen = [texts[i] for i in used]
        cpu = cpu_clock()
        try:
            report = extract(chosen, spec.id, self.cache, options=dict(spec.options), progress=self.progress,
                             registry=self.registry, **({"outputs": outputs} if outputs else {}))  # type: ignore[arg-type]
        except EmbedxError as exc:
            self.results["skipped"].append({"dataset": dataset, "what": spec.label, "why": str(exc)})
            self.log(f"  skip {spec.label}: {exc}")
            return None
        self.results.setdefault("families", {})[spec.label] = self._family(self.registry.embedders, spec.id)
        self._feature_sets[(dataset, spec.label)] = report.set_name
        cpu = cpu_clock() - cpu
        key = f"{dataset}/{report.set_name}"
        if report.computed:
            self.times[key] = {"seconds": report.seconds_total, "computed": report.computed,
                               "texts_per_second": report.texts_per_second, "cpu_seconds": cpu}
            _write_times(self.times_file, self.times)
        first = self.times.get(key, {"seconds": report.seconds_total, "computed": report.computed})
        self.results["extraction"].append({"dataset": dataset, "features": spec.label, "set": report.set_name,
                                           "texts": len(chosen), "first_run_seconds": first["seconds"],
                                           "first_run_cpu_seconds": first.get("cpu_seconds"),
                                           "this_run_seconds": report.seconds_total, "this_run_cpu_seconds": cpu,
                                           "computed_now": report.computed})
        self.log(f"  {spec.label}: {report.computed:,} computed, {report.cached:,} cached, "
                 f"{report.seconds_total:.1f} s")
        with FeatureStore(self.cache) as store:
            fset = store.feature_set(report.set_name)
            vectors = fset.vectors(chosen, output=read) if read else fset.vectors(chosen)  # first document output
        full = np.zeros((len(texts), *vectors.shape[1:]), dtype=np.float32)
        full[used] = vectors
        return full

    def _first_document_output(self, embedder_id: str) -> str:
        cls = self.registry.embedders[embedder_id].cls
        documents = [o.name for o in cls.outputs if o.level == "document"]
        defaults = [name for name in cls.default_outputs if name in documents]
        return (defaults or documents)[0]

    def _layered_output(self, embedder_id: str) -> str | None:
        """A per-layer document output besides the default one (ELMo's ``layers_mean``): the layer-mix head's input."""
        entry = self.registry.embedders.get(embedder_id)
        if entry is None or "layer-mix" not in self.registry.heads:
            return None
        for out in entry.cls.outputs:
            if out.level == "document" and out.per_layer and out.name not in entry.cls.default_outputs:
                return out.name
        return None

    def _layer_mix(self, dataset: str, spec: EmbedderSpec, X: np.ndarray | None, ds: Any, splits: dict) -> None:
        """The frozen layers through the layer-mix head (a learned softmax over layers + linear classifier)."""
        if X is None or X.ndim != 3:
            return
        y, classes = ds.label_ids, list(ds.label_names)
        for seed in self.config.seeds:
            self._unit(("head", self._dataset_keys[dataset], spec.label, self._feature_sets.get((dataset, spec.label)),
                        "layer-mix", seed),
                       lambda seed=seed: self._fit_head(dataset, spec.label, "layer-mix", X, y, classes,
                                                        splits[seed], seed) and None,
                       _head_unit(dataset, spec.label, "layer-mix", seed))

    def _first_seed_curves(self, curves: list[dict]) -> list[dict]:
        """One curve per head and fine-tuner: this run's first seed's.

        Every seed's curve is journalled with its seed, so a run with other seeds (``--finetune-seeds 2``
        beside a main run) replays the right one; entries journalled before seeds were recorded are kept.
        """
        def first(curve: dict) -> int:
            return (self.config.finetune_seeds if curve["head"] == "fine-tune" else self.config.seeds)[0]

        return [c for c in curves if c.get("seed") is None or c["seed"] == first(c)]

    @staticmethod
    def _family(kind: dict, entry_id: str) -> str:
        """The plugin that registered an id: the embedder family the plots colour by."""
        entry = kind.get(entry_id)
        return str(getattr(entry, "plugin", "") or entry_id)

    # -- resumable units ---------------------------------------------------------------------------
    def _unit(self, unit: tuple, compute: Callable[..., Any], expect: dict[str, Any]) -> Any:
        """Run one unit (a head fit, a fine-tuning run) unless the journal holds it; journal what it added.

        ``expect`` says what the unit adds (see :func:`embedx.bench.journal.unit_ok`): a journalled entry
        that holds anything else is ignored and the unit runs again. A unit that skipped something (a
        fine-tuner that cannot run) is not journalled: it runs again.
        """
        key = self.journal.key(*unit)
        entry = self.journal.get(key, expect)
        if entry is not None:
            for part in PARTS:
                self.results[part].extend(entry.get(part, []))
            self.results.setdefault("families", {}).update(entry.get("families", {}))
            seconds = entry.get("seconds")
            self.results["resumed_seconds"] += seconds if isinstance(seconds, (int, float)) else 0.0
            return entry.get("value")
        before = {part: len(self.results[part]) for part in PARTS}
        skipped = len(self.results["skipped"])
        started = time.perf_counter()
        value = compute()
        seconds = time.perf_counter() - started
        if len(self.results["skipped"]) == skipped:
            added = {part: self.results[part][before[part]:] for part in PARTS}
            self.journal.add(key, {**added, "families": self.results.get("families", {}), "value": value,
                                   "seconds": seconds})
            self._done += 1
            for row in added["rows"] + added["layers"]:
                if row.get("head") != "fine-tune":  # fine-tuning logs its own line
                    what = row.get("variant") and f"{row['embedder']}:{row['pooling']} {row['variant']}"
                    self.log(f"    [{self._done:,} done] {what or row['features']} + {row['head']}, seed "
                             f"{row['seed']}: test accuracy {row['test']['accuracy']:.3f}, {seconds:.0f} s")
        return value

    # -- heads -------------------------------------------------------------------------------------
    def _heads(self, dataset: str, features: str, X: np.ndarray, ds: Any, splits: dict) -> None:
        y, classes = ds.label_ids, list(ds.label_names)
        flat = X.reshape(len(X), -1)
        for head_id in self.config.heads:
            for seed in self.config.seeds:
                self._unit(("head", self._dataset_keys[dataset], features, self._feature_sets.get((dataset, features)),
                            head_id, seed),
                           lambda head_id=head_id, seed=seed: self._fit_head(
                               dataset, features, head_id, flat, y, classes, splits[seed], seed) and None,
                           _head_unit(dataset, features, head_id, seed))

    def _fit_head(self, dataset: str, features: str, head_id: str, X: np.ndarray, y: np.ndarray, classes: list[str],
                  split: Any, seed: int, label: str | None = None, options: dict | None = None,
                  selection: str | None = None) -> dict | None:
        from embedx.heads.selection import Protocol, choose_and_fit
        from embedx.heads.training import build_head

        entry = self.registry.heads.get(head_id)
        if entry is None:
            raise EmbedxError(f"no head {head_id!r} (heads: {', '.join(sorted(self.registry.heads))})")
        opts = dict(options or {})
        if "seed" in option_specs(entry.cls):
            opts["seed"] = seed
        protocol = Protocol(selection or self.config.selection, self.config.folds, seed)  # type: ignore[arg-type]
        data = MemoryData(X, y, classes)
        started, cpu = time.perf_counter(), cpu_clock()
        picked = choose_and_fit(lambda combo: build_head(head_id, combo, self.registry), opts, {}, data,
                                split.train, split.validation, protocol, _groups(split))
        seconds, cpu = time.perf_counter() - started, cpu_clock() - cpu
        test = data.subset(split.test)
        n = len(classes)
        predicted = np.asarray(picked.head.predict(test))  # type: ignore[arg-type]
        row = {"dataset": dataset, "features": features, "head": label or head_id, "seed": seed,
               "validation": picked.selection_scores, "test": scores(test.y, predicted, n),
               "confusion": confusion_counts(test.y, predicted, n),
               "train_seconds": seconds, "cpu_seconds": cpu, "chosen": picked.chosen, "extra": picked.report.extra,
               "n_train": len(split.train) + len(split.validation) if protocol.selection == "cv" else len(split.train),
               "selection": protocol.selection, "method": picked.method, "flags": picked.flags}
        self.results["rows"].append(row)
        curves = picked.curves
        if curves and selection is None:  # the layer sweep keeps to its table
            self.results["curves"].append({"dataset": dataset, "what": f"{features} + {label or head_id}",
                                           "features": features, "head": label or head_id, "seed": seed,
                                           "curves": curves})
        return row

    # -- BERT Table 7 ------------------------------------------------------------------------------
    def _layer_sweep(self, dataset: str, ds: Any, used: np.ndarray, splits: dict) -> None:
        for embedder_id in layer_sweep_ids(self.config.layer_sweep, self.registry):
            self._sweep_one(embedder_id, dataset, ds, used, splits)

    def _sweep_one(self, embedder_id: str, dataset: str, ds: Any, used: np.ndarray, splits: dict) -> None:
        """One embedder's layers x pooling rows, with the options it declares (the shared vocabulary)."""
        from embedx.contract.options import option_specs

        y, classes = ds.label_ids, list(ds.label_names)
        cls = self.registry.embedders[embedder_id].cls
        poolings: list[str | None] = [p for p in self.config.layer_sweep_poolings if p in cls.pooling_choices]
        poolings = poolings or [None]
        extra = {"normalize": False} if "normalize" in option_specs(cls) else {}  # raw layers, not unit vectors
        for pooling in poolings:
            options: dict[str, Any] = {"layers": "all", **extra, **({"pooling": pooling} if pooling else {})}
            spec = EmbedderSpec(embedder_id, options)
            X = self._extract(dataset, ds.texts, used, spec)
            if X is None:
                return
            if X.ndim != 3:
                self.log(f"  {spec.label} has no layer axis; layer sweep skipped")
                return
            variants = {
                "embeddings (layer 0)": ("logreg", X[:, 0]),
                "second-to-last hidden": ("logreg", X[:, -2]),
                "last hidden": ("logreg", X[:, -1]),
                "concat last four": ("logreg", X[:, -4:].reshape(len(X), -1)),
                "weighted sum, last four (layer-mix)": ("layer-mix", X[:, -4:]),
                "weighted sum, all layers (layer-mix)": ("layer-mix", X),
            }
            for name, (head_id, features) in variants.items():
                for seed in self.config.seeds:
                    self._unit(
                        (
                            "sweep",
                            self._dataset_keys[dataset],
                            embedder_id,
                            self._feature_sets.get((dataset, spec.label)),
                            pooling,
                            name,
                            seed,
                        ),
                        lambda name=name, head_id=head_id, features=features, seed=seed, pooling=pooling: (
                            self._sweep_row(
                                dataset, embedder_id, pooling, name, head_id, features, y, classes, splits[seed], seed
                            )
                        ),
                        {
                            "layers": (
                                1,
                                {
                                    "dataset": dataset,
                                    "embedder": embedder_id,
                                    "pooling": pooling or "-",
                                    "variant": name,
                                    "head": head_id,
                                    "seed": seed,
                                    "features": f"{embedder_id}:{pooling}:{name}",
                                },
                            )
                        },
                    )

    def _sweep_row(self, dataset: str, embedder_id: str, pooling: str | None, name: str, head_id: str,
                   features: np.ndarray, y: np.ndarray, classes: list[str], split: Any, seed: int) -> None:
        row = self._fit_head(dataset, f"{embedder_id}:{pooling}:{name}", head_id,
                             features, y, classes, split, seed, selection="validation")
        self.results["rows"].pop()  # these rows go to the layer table, not the main one
        self.results["layers"].append({**row, "pooling": pooling or "-", "variant": name, "embedder": embedder_id})  # type: ignore[dict-item]

    # -- fine-tuning -------------------------------------------------------------------------------
    def _finetune(self, dataset: str, spec: EmbedderSpec, ds: Any, splits: dict) -> None:
        # the content behind every model path it reads, defaults included, hashed once for all seeds
        entry = self.registry.finetuners[spec.id]
        models = path_digests(entry.cls.model_paths({**entry.defaults, **spec.options}))
        settings = _effective_options(entry.cls, {**entry.defaults, **spec.options})
        for seed in self.config.finetune_seeds:
            if (
                self._unit(  # every setting it runs with is in the key: new defaults never reuse an old run
                    ("finetune", self._dataset_keys[dataset], spec.label, models, settings, seed),
                    lambda seed=seed: self._finetune_one(dataset, spec, ds, splits[seed], seed),
                    _head_unit(dataset, spec.label, "fine-tune", seed),
                )
                == "skipped"
            ):
                return

    def _finetune_one(self, dataset: str, spec: EmbedderSpec, ds: Any, split: Any, seed: int) -> str | None:
        """One fine-tuning run in a child process; ``"skipped"`` when the fine-tuner cannot run here."""
        y = ds.label_ids
        train = _per_class(split.train, y, self.config.finetune_samples_per_class)
        job = {"finetuner": spec.id, "options": spec.options, "seed": seed, "n_classes": len(ds.label_names),
               "train": [[ds.texts[i] for i in train], y[train].tolist()],
               "validation": [[ds.texts[i] for i in split.validation], y[split.validation].tolist()],
               "test": [ds.texts[i] for i in split.test]}
        self.log(f"  fine-tune {spec.label} (seed {seed}, {len(train)} training texts) ...")
        try:
            result = run_worker(job)
        except EmbedxError as exc:
            self.results["skipped"].append({"dataset": dataset, "what": spec.label, "why": str(exc)})
            self.log(f"  skip {spec.label}: {exc}")
            return "skipped"
        n = len(ds.label_names)
        self.results.setdefault("families", {})[spec.label] = "fine-tuning"
        predicted = np.asarray(result["test_pred"])
        row = {"dataset": dataset, "features": spec.label, "head": "fine-tune", "seed": seed,
               "validation": scores(y[split.validation], np.asarray(result["validation_pred"]), n),
               "test": scores(y[split.test], predicted, n), "confusion": confusion_counts(y[split.test], predicted, n),
               "train_seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"],
               "peak_rss_mb": result["peak_rss_mb"], "n_train": len(train),
               "extra": result.get("extra", {}), "chosen": {}, "selection": "fine-tune",
               "method": f"fine-tuned on up to {self.config.finetune_samples_per_class} texts per class of "
                         "train; validation used by the fine-tuner (early stopping where it has it); scored "
                         "once on test", "flags": []}
        self.results["rows"].append(row)
        self.results["curves"].append({"dataset": dataset, "what": f"{spec.label} fine-tune",
                                       "features": spec.label, "head": "fine-tune", "seed": seed,
                                       "curves": result.get("curves", {})})
        self.log(f"    test accuracy {row['test']['accuracy']:.3f}, {result['seconds']:.0f} s, "
                 f"peak {result['peak_rss_mb']:.0f} MB")
        return None


def _effective_options(cls: type, given: dict[str, Any]) -> dict[str, str]:
    """Every option ``cls`` runs with: its signature's defaults under the registered and given ones, as text."""
    defaults = {name: spec.default for name, spec in option_specs(cls).items() if not spec.required}
    return {name: str(value) for name, value in sorted({**defaults, **given}.items())}


def _head_unit(dataset: str, features: str, head: str, seed: int) -> dict[str, Any]:
    """What a head fit or fine-tuning run adds: one row and at most one curve, naming its dataset, features,
    head and seed (a journal line holding anything else is not this unit's)."""
    fields = {"dataset": dataset, "features": features, "head": head, "seed": seed}
    return {"rows": (1, fields), "curves": (1, fields)}


#: the HMAC purpose of ``extract_times.json`` (see :mod:`embedx.trust`)
TIMES_PURPOSE = "embedx bench extract times v1"


def _read_times(path: Path) -> tuple[dict[str, dict[str, float]], bool]:
    """The first-run extraction times this user's embedx recorded, and whether a file there was refused.

    The file is read back, so it is authenticated like the journal: a MAC under the local key over its
    times, which must be numbers. A file that fails is ignored: its times are this run's.
    """
    from embedx.trust import mac_ok

    if not path.exists():
        return {}, False
    try:
        if path.stat().st_size > 64 << 20:
            return {}, True
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}, True
    if not isinstance(saved, dict) or set(saved) != {"mac", "times"} or not isinstance(saved["times"], dict):
        return {}, True
    times = saved["times"]
    body = json.dumps(times, sort_keys=True).encode("utf-8")
    if not mac_ok(TIMES_PURPOSE, body, saved["mac"]):
        return {}, True
    for key, value in times.items():
        if not (
            isinstance(key, str)
            and isinstance(value, dict)
            and set(value) <= {"seconds", "computed", "texts_per_second", "cpu_seconds"}
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v >= 0
                for v in value.values()
            )
            and "seconds" in value
            and "computed" in value
        ):
            return {}, True
    return times, False


def _write_times(path: Path, times: dict[str, dict[str, float]]) -> None:
    from embedx.files.atomic import atomic_write
    from embedx.trust import mac

    body = json.dumps(times, sort_keys=True)
    text = json.dumps({"mac": mac(TIMES_PURPOSE, body.encode("utf-8")), "times": times}, indent=1)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _per_class(indices: np.ndarray, y: np.ndarray, k: int | None) -> np.ndarray:
    """The first ``k`` indices of each class, in the split's (already shuffled) order."""
    if k is None:
        return indices
    taken: dict[int, int] = {}
    keep = []
    for i in indices:
        c = int(y[i])
        if taken.get(c, 0) < k:
            taken[c] = taken.get(c, 0) + 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def run_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune in a child process, so its peak memory is its own and a crash cannot take the run down."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "job.json", Path(tmp) / "result.json"
        src.write_text(json.dumps(job))
        cpu = _children_cpu()
        done = subprocess.run([sys.executable, "-m", "embedx.bench.finetune_worker", str(src), str(dst)],
                              capture_output=True, text=True)
        cpu = _children_cpu() - cpu  # the worker and every process it waited for, all their threads
        if done.returncode != 0 or not dst.exists():
            tail = "\n".join(done.stderr.strip().splitlines()[-6:])
            raise EmbedxError(f"fine-tuner {job['finetuner']!r} failed (exit {done.returncode}): {tail}")
        result = json.loads(dst.read_text())
        if "unavailable" in result:
            raise EmbedxError(f"fine-tuner {job['finetuner']!r} cannot run here: {result['unavailable']}")
        return {**result, "cpu_seconds": cpu}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_clock() -> float:
    """CPU seconds of this process (every thread) and of the children it has waited for.

    Unlike wall time it does not grow when other work shares the machine, so it is what the cost plots use.
    Worker processes still running (a process pool kept alive) are not counted until they exit.
    """
    return time.process_time() + _children_cpu()


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """Test counts ``[true][predicted]`` for the report's confusion matrices."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix.tolist()


def validation_cap(cap: int | None, settings: dict[str, Any]) -> int | None:
    """The per-class cap of a given split's validation part: the train cap in the split's validation/train
    proportion (at least 1)."""
    if cap is None:
        return None
    train, validation = settings.get("train", 0.7), settings.get("validation", 0.15)
    return max(1, round(cap * validation / train)) if train else cap


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor()}


def layer_sweep_ids(setting: str | None, registry: Any) -> list[str]:
    """The embedders a layer sweep covers: the ids given, or with ``auto`` every one declaring layer options
    that runs here with its defaults (``embedx embedders`` says "yes")."""
    if not setting:
        return []
    if setting != AUTO:
        return [s.strip() for s in setting.split(",") if s.strip()]
    from embedx.listing import describe_embedders

    runs = {row["id"] for row in describe_embedders(registry) if row["available"] and not row["needs"]}
    return [i for i, entry in sorted(registry.embedders.items()) if entry.cls.layer_options and i in runs]


def _groups(split: Any) -> np.ndarray | None:
    """Content keys of the split's rows, so cross-validation folds keep each text's rows together as the
    split itself does (``None``, rows as their own texts, when the split was asked to keep duplicates)."""
    if split.settings.get("duplicates") == "keep":
        return None
    from embedx.pipeline.keys import content_keys

    return np.asarray(content_keys(split.dataset.texts))  # hashing the texts costs microseconds beside a fit


def _need_rows(split: Any, seed: int) -> None:
    """A part with no rows is one clear error naming each class's size, not a failure deep inside a head."""
    for part in ("train", "test"):
        if len(split.indices(part)):
            continue
        ds = split.dataset
        sizes = ", ".join(f"class {name!r} has {int((ds.label_ids == c).sum())} row(s)"
                          for c, name in enumerate(ds.label_names))
        raise EmbedxError(f"{ds.name}: no rows fell in the {part} part for seed {seed} ({sizes}); give more rows, "
                          "or a file with its own split (--split-column)")

