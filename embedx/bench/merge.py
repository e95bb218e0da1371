"""Combine the results of comparison runs made on different datasets into one report.

A full comparison can take longer than one sitting or one machine allows; running it as parts
(``--datasets mr,tweets`` here, ``--datasets trec`` there) and merging their ``results.json`` gives
one report whose header says which run produced which dataset and how long each took. Parts must share
every protocol setting the report states once (seeds, caps, token limit, selection), so that one
"How the numbers were obtained" section is true of every table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embedx.contract.errors import EmbedxError

#: Settings the report states once for all datasets: parts that differ in one cannot share a report.
SHARED_SETTINGS = ("seeds", "finetune_seeds", "samples_per_class", "finetune_samples_per_class", "max_tokens",
                   "max_token_length", "selection", "folds")
LISTS = ("rows", "curves", "layers", "skipped", "extraction")


def load_results(path: Path) -> dict[str, Any]:
    """Read one run's ``results.json`` (or the folder holding it), with an error naming the file at fault."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbedxError(f"{path}: no such results file (give a run's results.json or its --out folder)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EmbedxError(f"{path}: not a comparison's results.json ({exc})") from None
    if not isinstance(results, dict):
        raise EmbedxError(f"{path}: not a comparison's results.json (top level is not an object)")
    missing = [k for k in ("config", "machine", *LISTS) if k not in results]
    if missing or not isinstance(results.get("config"), dict) or "datasets" not in results["config"]:
        raise EmbedxError(f"{path}: not a comparison's results.json (missing "
                          f"{', '.join(missing) or 'config.datasets'})")
    for key in LISTS:
        if not isinstance(results[key], list):
            raise EmbedxError(f"{path}: {key!r} should be a list")
    _check_items(path, results)
    return results


def _check_items(path: Path, results: dict[str, Any]) -> None:
    """What the report reads from each item is there and of its type: one error naming the first that is not.

    A results file is what the user asked to report (it may come from another machine), so it is not
    authenticated like the journal; it is checked, so a malformed one is one line, never a traceback."""
    from embedx.bench.journal import CURVE_FIELDS, OPTIONAL_ROW_FIELDS, ROW_FIELDS, _finite

    def text(v: Any) -> bool:
        return isinstance(v, str)

    wanted = {"rows": {k: ROW_FIELDS[k] for k in ("dataset", "features", "head", "seed", "test")},
              "layers": {k: ROW_FIELDS[k] for k in ("dataset", "seed", "test")} | {"pooling": text, "variant": text},
              "curves": {k: CURVE_FIELDS[k] for k in ("dataset", "curves")},
              "extraction": {"dataset": text, "features": text, "first_run_seconds": _finite},
              "skipped": {}}
    optional = {"train_seconds": _finite, "validation": lambda v: isinstance(v, dict) and (
        not v or _finite(v.get("accuracy"))), "extra": lambda v: isinstance(v, dict) and ROW_FIELDS["extra"](v),
        "peak_rss_mb": _finite, "flags": ROW_FIELDS["flags"], "chosen": lambda v: isinstance(v, dict),
        "cpu_seconds": OPTIONAL_ROW_FIELDS["cpu_seconds"], "confusion": OPTIONAL_ROW_FIELDS["confusion"]}
    for key, fields in wanted.items():
        for i, item in enumerate(results[key]):
            bad = None if isinstance(item, dict) else "not an object"
            for name, check in fields.items():
                if bad is None and (name not in item or not check(item[name])):
                    bad = f"field {name!r} missing or of the wrong type"
            for name, check in optional.items() if key in ("rows", "layers") else ():
                if bad is None and name in item and not check(item[name]):
                    bad = f"field {name!r} of the wrong type"
            if bad:
                raise EmbedxError(f"{path}: {key}[{i}]: {bad}; not a comparison's results.json")
    config = results["config"]
    if not isinstance(config["datasets"], list) or not all(isinstance(d, str) for d in config["datasets"]):
        raise EmbedxError(f"{path}: config.datasets should be a list of names")
    for key in ("embedders", "heads", "finetuners"):
        if not isinstance(config.get(key, []), list):
            raise EmbedxError(f"{path}: config.{key} should be a list")
    _check_dataset_facts(path, results)
    for key in ("seconds", "resumed_units", "resumed_seconds"):
        if key in results and not _finite(results[key]):
            raise EmbedxError(f"{path}: {key!r} should be a number")


def _check_dataset_facts(path: Path, results: dict[str, Any]) -> None:
    """The per-dataset facts the report states: families, how each dataset was split, its class names."""
    for key in ("families", "given_splits", "splits", "classes"):
        if not isinstance(results.get(key) or {}, dict):
            raise EmbedxError(f"{path}: {key!r} should be an object")
    for name, info in (results.get("splits") or {}).items():
        if not isinstance(info, dict) or info.get("kind") not in ("dealt", "given") or (
                info["kind"] == "given" and not isinstance(info.get("column"), str)):
            raise EmbedxError(f"{path}: splits[{name!r}] should say how the dataset was split; not a comparison's "
                              "results.json")
    for name, classes in (results.get("classes") or {}).items():
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise EmbedxError(f"{path}: classes[{name!r}] should be a list of class names")
    if not isinstance(results.get("finetuners", []), list):
        raise EmbedxError(f"{path}: 'finetuners' should be a list")


def merge_results(parts: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One results dict from named parts; refuses parts that disagree on a shared setting or repeat a dataset."""
    if not parts:
        raise EmbedxError("nothing to merge: give at least one results.json")
    first_name, first = parts[0]
    merged: dict[str, Any] = {"config": dict(first["config"]), "machine": first["machine"], "families": {},
                              "given_splits": {}, "splits": {}, "classes": {}, "parts": [],
                              **{key: [] for key in LISTS}}
    merged["config"]["datasets"] = []
    seen: dict[str, str] = {}
    for name, results in parts:
        config = results["config"]
        for key in SHARED_SETTINGS:
            if config.get(key) != first["config"].get(key):
                raise EmbedxError(f"{name}: {key} is {config.get(key)!r} but {first_name} has "
                                  f"{first['config'].get(key)!r}; one report needs one protocol")
        for dataset in config["datasets"]:
            if dataset in seen:
                raise EmbedxError(f"{name}: dataset {dataset!r} is also in {seen[dataset]}; merge runs on "
                                  "different datasets (rerun one with --datasets to drop it)")
            seen[dataset] = name
            merged["config"]["datasets"].append(dataset)
        for key in LISTS:
            merged[key] += results[key]
        merged["families"].update(results.get("families", {}))
        merged["given_splits"].update(results.get("given_splits") or {})
        merged["splits"].update(results.get("splits") or {})
        merged["classes"].update(results.get("classes") or {})
        if "finetuners" in results:
            merged["finetuners"] = list(dict.fromkeys([*merged.get("finetuners", []), *results["finetuners"]]))
        for key in ("embedders", "heads", "finetuners"):
            merged["config"][key] = list(dict.fromkeys([*merged["config"].get(key, []), *config.get(key, [])]))
        merged["parts"].append({"source": name, "datasets": list(config["datasets"]),
                                "seconds": float(results.get("seconds", 0.0)),
                                "resumed_units": int(results.get("resumed_units", 0)),
                                "resumed_seconds": float(results.get("resumed_seconds", 0.0)),
                                "machine": results["machine"]})
    merged["seconds"] = sum(p["seconds"] for p in merged["parts"])
    merged["resumed_units"] = sum(p["resumed_units"] for p in merged["parts"])
    merged["resumed_seconds"] = sum(p["resumed_seconds"] for p in merged["parts"])
    return merged
