"""A comparison's finished units, appended as they complete, so an hours-long ``--full`` run resumes.

The features are already resumable (the content-keyed cache); this covers the rest: each head fit
per seed, each fine-tuning run, each layer-sweep row. A unit's key holds every setting that changes
its result (dataset, the features' set name, which carries the embedder's whole configuration and its
model-file digests, head, seed, the protocol and sizes, the embedx version; for fine-tuning, digests of
the files and folders its options name), so a changed setting or a model retrained in place recomputes
only the units it touches. Lines are fsynced one by one; a line cut short by a crash is ignored, never
trusted. The file holds JSON only: nothing in it can run code.

A journal is read back, so it is untrusted like any other file: each line carries an HMAC under this
user's local key (:mod:`embedx.trust`), computed over the rest of the line, and must pass a strict
schema check: its rows are dicts with the expected fields and types, and they name the dataset,
features, head and seed of the unit they are keyed under (:func:`unit_ok`). A line that fails either
(forged, edited, cut short, written on another machine or by another user) is ignored, its unit is
computed again, and the run ends with one warning line counting them. A journal copied from another
machine is therefore simply recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

#: the config fields every unit's result depends on (the lists of datasets, embedders, heads and
#: seeds are not here: each unit names its own dataset, features, head and seed)
SHARED_SETTINGS = ("samples_per_class", "finetune_samples_per_class", "max_tokens", "max_token_length",
                   "selection", "folds")

#: what a unit adds to the results, replayed on resume
PARTS = ("rows", "curves", "layers")

#: the HMAC's purpose string: a MAC made for anything else never authenticates a journal line
PURPOSE = "embedx bench journal v1"
_PREFIX = re.compile(r'\{"mac": "([0-9a-f]{64})", ')
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Journal:
    def __init__(self, path: Path, config: dict[str, Any], enabled: bool = True):
        from embedx import __version__

        self.path, self.enabled = Path(path), enabled
        self.shared = {"embedx": __version__, **{k: config.get(k) for k in SHARED_SETTINGS}}
        self.rejected = 0  # lines ignored: failed the MAC or the schema (counted in one warning)
        self.done: dict[str, dict[str, Any]] = self._load() if enabled else {}
        self.reused = 0

    def key(self, *unit: Any) -> str:
        text = json.dumps([self.shared, *unit], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str, expect: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The journalled entry of a unit, if it is there and (with ``expect``) fits that unit (:func:`unit_ok`)."""
        entry = self.done.get(key)
        if entry is not None and expect is not None and not unit_ok(entry, expect):
            self.rejected += 1
            del self.done[key]
            entry = None
        if entry is not None:
            self.reused += 1
        return entry

    def add(self, key: str, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from embedx.trust import mac

        body = json.dumps({"key": key, **entry}, default=plain_json)
        line = '{"mac": "' + mac(PURPOSE, body.encode("utf-8")) + '", ' + body[1:]
        with open(self.path, "a", encoding="utf-8") as fh:
            if fh.tell() and not _ends_with_newline(self.path):
                fh.write("\n")  # close a line a crash cut short, so this one is not glued onto it
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.done[key] = json.loads(body)
        self.done[key].pop("key")

    def warning(self) -> str | None:
        """One line saying how many journal lines were ignored, or None when none were."""
        if not self.rejected:
            return None
        return (f"warning: {self.rejected:,} line(s) of {self.path} ignored: not written by this user's embedx on "
                "this machine, changed since, cut short, or not of the expected form; their units were computed again")

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        from embedx.trust import mac_ok

        done: dict[str, dict[str, Any]] = {}
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    self.rejected += 1
                    continue
                match = _PREFIX.match(text)
                body = "{" + text[match.end():] if match else ""
                if not match or not mac_ok(PURPOSE, body.encode("utf-8"), match.group(1)):
                    self.rejected += 1  # forged, edited, another machine's, or a line a crash cut short
                    continue
                try:
                    entry = json.loads(body)
                except (ValueError, RecursionError):
                    self.rejected += 1
                    continue
                if not entry_ok(entry):
                    self.rejected += 1
                    continue
                done[entry.pop("key")] = entry
        return done


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


# -- the schema ---------------------------------------------------------------------------------------
def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _number(value) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _scores(value: Any, required: bool) -> bool:
    if not isinstance(value, dict) or not all(isinstance(k, str) and _finite(v) for k, v in value.items()):
        return False
    if required or value:
        return all(k in value and 0.0 <= value[k] <= 1.0 for k in ("accuracy", "macro_f1"))
    return True


def _counts(value: Any) -> bool:
    """A square matrix of non-negative whole numbers, as lists."""
    return isinstance(value, list) and all(
        isinstance(row, list) and len(row) == len(value) and all(_int(v) and v >= 0 for v in row) for row in value)


def _extra(value: Any) -> bool:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return False
    weights = value.get("layer_weights")
    return weights is None or (isinstance(weights, list) and bool(weights) and all(_finite(w) for w in weights))


#: every field a result row (``rows`` and ``layers``) must have, with its check
ROW_FIELDS = {
    "dataset": lambda v: isinstance(v, str), "features": lambda v: isinstance(v, str),
    "head": lambda v: isinstance(v, str), "seed": _int,
    "validation": lambda v: _scores(v, False), "test": lambda v: _scores(v, True),
    "train_seconds": lambda v: _finite(v) and v >= 0, "chosen": lambda v: isinstance(v, dict),
    "extra": _extra, "n_train": lambda v: _int(v) and v >= 0, "selection": lambda v: isinstance(v, str),
    "method": lambda v: isinstance(v, str), "flags": _str_list,
}
#: fields some rows have: fine-tuning's memory, the layer table's variant and pooling, CPU seconds and the test
#: confusion counts (rows written before they were recorded lack them)
OPTIONAL_ROW_FIELDS = {"peak_rss_mb": lambda v: _finite(v) and v >= 0, "pooling": lambda v: isinstance(v, str),
                       "variant": lambda v: isinstance(v, str), "embedder": lambda v: isinstance(v, str),
                       "cpu_seconds": lambda v: _finite(v) and v >= 0, "confusion": lambda v: _counts(v)}
CURVE_FIELDS = {
    "dataset": lambda v: isinstance(v, str), "what": lambda v: isinstance(v, str),
    "features": lambda v: isinstance(v, str), "head": lambda v: isinstance(v, str),
    "seed": lambda v: v is None or _int(v),
    "curves": lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(c, list) and all(_number(x) for x in c) for k, c in v.items()),
}


def _fields_ok(item: Any, required: dict, optional: dict) -> bool:
    if not isinstance(item, dict):
        return False
    for name, check in required.items():
        if name not in item or not check(item[name]):
            return False
    return all(name in required or (name in optional and optional[name](value)) for name, value in item.items())


def entry_ok(entry: Any) -> bool:
    """The shape every journal entry has, whatever its unit: typed rows, curves, layer rows and families."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not _HEX64.fullmatch(entry["key"]):
        return False
    if set(entry) - {"key", *PARTS, "families", "value", "seconds"}:
        return False
    parts = {"rows": (ROW_FIELDS, OPTIONAL_ROW_FIELDS), "layers": (ROW_FIELDS, OPTIONAL_ROW_FIELDS),
             "curves": (CURVE_FIELDS, {})}
    for part, (required, optional) in parts.items():
        items = entry.get(part, [])
        if not isinstance(items, list) or not all(_fields_ok(item, required, optional) for item in items):
            return False
    families = entry.get("families", {})
    if not isinstance(families, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in families.items()):
        return False
    seconds = entry.get("seconds", 0.0)
    value = entry.get("value")
    return _finite(seconds) and seconds >= 0 and (value is None or isinstance(value, str))


def unit_ok(entry: dict[str, Any], expect: dict[str, Any]) -> bool:
    """Whether an entry holds what its unit adds: ``expect`` maps each part to ``(most items, fields)``.

    Every item of a part must carry the given field values (the unit's dataset, features, head, seed);
    a part not in ``expect`` must be empty. So a line can only replay results of the unit it is keyed under.
    """
    for part in PARTS:
        items = entry.get(part, [])
        most, fields = expect.get(part, (0, {}))
        if len(items) > most:
            return False
        for item in items:
            if any(item.get(name) != value for name, value in fields.items()):
                return False
    return True


def plain_json(value: Any) -> Any:
    """numpy scalars and arrays as JSON values (anything else as its string): for ``json.dumps(default=...)``."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
