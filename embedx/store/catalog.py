"""What a feature file holds, committed or pending, as the writer sees it while holding the lock.

The index (``FILE.h5``) lists the segments it maps. Any other segment in ``FILE.h5.segments/``
was written by a run that did not reach its commit: :func:`recover` keeps those a commit can
use (the next commit maps them, so their rows are not recomputed), deletes what a finished
commit or merge already replaced, and sets aside in ``FILE.h5.quarantine/`` anything that
cannot be read or committed, saying what and how many rows, so no run is ever stuck behind it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedx.errors import StoreError
from embedx.store import layout as L
from embedx.store.durable import atomic_write
from embedx.store.open import open_checked
from embedx.store.segment import (
    INPUT,
    INPUT_FINAL,
    SET,
    SegmentInfo,
    check_segments_present,
    now,
    read_info,
    token_base,
)


class NeedsUpgrade(StoreError):
    """The file is format 1: the writer upgrades it before anything else."""


SET_META_KEYS = ("embedder", "plugin", "config_hash", "config", "outputs", "dtype", "compression")


@dataclass
class SetState:
    name: str
    meta: dict[str, Any]
    segments: list[SegmentInfo] = field(default_factory=list)  # committed, in row order
    pending: list[SegmentInfo] = field(default_factory=list)  # written, not yet committed, in row order
    created: str = ""

    @property
    def all(self) -> list[SegmentInfo]:
        return self.segments + self.pending

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.all)

    def tokens(self, output: str) -> int:
        return sum(s.tokens.get(output, 0) for s in self.all)


@dataclass
class InputState:
    name: str
    meta: dict[str, Any]
    pieces: list[SegmentInfo]
    final: SegmentInfo
    created: str = ""

    @property
    def generation(self) -> int:
        return self.final.lo


@dataclass
class Catalog:
    path: Path
    created: str
    sets: dict[str, SetState] = field(default_factory=dict)
    inputs: dict[str, InputState] = field(default_factory=dict)
    pending_inputs: dict[str, InputState] = field(default_factory=dict)
    next_seq: int = 1
    messages: list[str] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)  # files the index on disk maps (readers may be using them)
    rewrite: bool = False  # the index names another segment folder (renamed with it): the next commit rewrites it

    @property
    def directory(self) -> Path:
        return L.segment_dir(self.path)

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def referenced(self) -> set[str]:
        files = {s.file for st in self.sets.values() for s in st.segments}
        for table in self.inputs.values():
            files |= {p.file for p in table.pieces} | {table.final.file}
        return files

    def quarantine(self, file: Path, what: str, why: str) -> None:
        """Move ``file`` aside into ``FILE.h5.quarantine/`` and record a message saying so."""
        target_dir = L.quarantine_dir(self.path)
        target_dir.mkdir(exist_ok=True)
        target = target_dir / file.name
        os.replace(file, target)
        self.messages.append(f"set aside {what} in {target} ({why}); it was never committed, so nothing "
                             "committed is lost, and this run goes on without it")


def load(path: Path) -> Catalog:
    """The committed state of ``path`` (format 2), or an empty catalog if it does not exist yet."""
    if not path.exists():
        return Catalog(path, created=now())
    with open_checked(path, renamed_ok=True) as handle:  # the writer reads no virtual data through HDF5
        version = int(handle.attrs.get("format_version", 0))
        if version < 2:
            raise NeedsUpgrade(f"{path} uses embedx format version {version}; it must be upgraded first")
        catalog = Catalog(path, created=str(handle.attrs.get("created", now())))
        try:
            infos = [SegmentInfo.from_json(t) for t in handle[L.SEGMENTS].asstr()[:]] if L.SEGMENTS in handle else []
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path}: its segment list is damaged ({exc}); move the file aside") from None
        check_segments_present(path, infos)
        by_group: dict[tuple[str, str], list[SegmentInfo]] = {}
        for info in infos:
            by_group.setdefault((info.kind if info.kind == SET else INPUT, info.name), []).append(info)
        for name, group in handle[L.SETS].items():
            meta = {k: _attr(group.attrs, k) for k in SET_META_KEYS}
            catalog.sets[name] = SetState(name, meta, by_group.get((SET, name), []),
                                          created=str(group.attrs.get("created", "")))
        for name, group in handle[L.INPUTS].items():
            parts = by_group.get((INPUT, name), [])
            finals = [p for p in parts if p.kind == INPUT_FINAL]
            if len(finals) != 1:
                raise StoreError(f"{path}: input {name!r} lists {len(finals)} final pieces; the index is damaged")
            meta = {k: _attr(group.attrs, k) for k in ("source", "columns", "text_stored", "digest", "typed")}
            meta |= _coverage(group.attrs)
            catalog.inputs[name] = InputState(name, meta, sorted((p for p in parts if p.kind == INPUT),
                                                                 key=lambda p: p.part), finals[0],
                                              created=str(group.attrs.get("created", "")))
        catalog.next_seq = 1 + max((max(i.lo, i.hi) for i in infos), default=0)
        catalog.rewrite = _recorded_folder(handle) not in (None, catalog.directory.name)
    catalog.loaded = catalog.referenced()
    return catalog


def _recorded_folder(handle: Any) -> str | None:
    """The segment folder the index's virtual datasets name (its name when it was written), if any."""
    for section in (L.SETS, L.INPUTS):
        for group in handle[section].values():
            sources = group[L.KEYS].virtual_sources() if group[L.KEYS].is_virtual else []
            if sources:
                return sources[0].file_name.split("/", 1)[0]
    return None


def _coverage(attrs: Any) -> dict[str, Any]:
    """The table's coverage record (:mod:`embedx.store.coverage`); none when it is absent or malformed."""
    fingerprint, covered = attrs.get("fingerprint"), attrs.get("covered")
    if isinstance(fingerprint, bytes):
        fingerprint = fingerprint.decode("utf-8", "replace")
    if isinstance(covered, bytes):
        covered = covered.decode("utf-8", "replace")
    if not isinstance(fingerprint, str) or not fingerprint or not isinstance(covered, str):
        return {}
    try:
        parsed = json.loads(covered)
    except (ValueError, RecursionError):
        return {}
    return {"fingerprint": fingerprint, "covered": parsed} if isinstance(parsed, dict) else {}


def _attr(attrs: Any, key: str) -> Any:
    value = attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode()
    if key in ("config", "outputs", "columns", "typed") and isinstance(value, str):
        return json.loads(value)
    if key == "text_stored" and value is not None:
        return bool(value)
    if key == "compression" and value in ("", None):
        return None
    return value.item() if hasattr(value, "item") else value


def recover(path: Path) -> Catalog:
    """The committed state plus whatever unfinished runs left that can still be committed.

    Only call this while holding the writer lock: it deletes and moves files in the segment folder.
    """
    catalog = load(path)
    directory = catalog.directory
    if not directory.is_dir():
        return catalog
    for tmp in directory.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)
    known = catalog.referenced() | expire_retired(directory)
    orphans: list[tuple[SegmentInfo, dict[str, Any]]] = []
    for file in sorted(directory.iterdir()):
        if file.name in known or not file.name.endswith(".h5") or not file.is_file():
            continue
        try:
            info, meta = read_info(file)
        except StoreError as exc:
            catalog.quarantine(file, f"the unreadable segment {file.name}", str(exc))
            continue
        catalog.next_seq = max(catalog.next_seq, info.hi + 1)
        orphans.append((info, meta))
    _recover_sets(catalog, [(i, m) for i, m in orphans if i.kind == SET])
    _recover_inputs(catalog, [(i, m) for i, m in orphans if i.kind != SET])
    return catalog


def _covered(info: SegmentInfo, others: list[SegmentInfo]) -> bool:
    return any(o is not info and o.lo <= info.lo and info.hi <= o.hi and (o.lo, o.hi) != (info.lo, info.hi)
               for o in others)


def _recover_sets(catalog: Catalog, orphans: list[tuple[SegmentInfo, dict[str, Any]]]) -> None:
    directory = catalog.directory
    by_set: dict[str, list[tuple[SegmentInfo, dict[str, Any]]]] = {}
    for info, meta in orphans:
        by_set.setdefault(info.name, []).append((info, meta))
    for name, items in by_set.items():
        state = catalog.sets.get(name)
        committed = state.segments if state else []
        infos = [i for i, _ in items]
        keep = []
        for info, meta in items:
            overlaps = any(c.lo <= info.hi and info.lo <= c.hi for c in committed)
            if overlaps or _covered(info, infos):  # replaced by a finished commit or merge
                retire(directory, {info.file})  # a reader of the previous index may still use it
            else:
                keep.append((info, meta))
        keep.sort(key=lambda item: item[0].lo)
        for info, meta in keep:
            state = catalog.sets.get(name) or SetState(name, {k: meta.get(k) for k in SET_META_KEYS}, created=now())
            problem = _mismatch(state, info, meta, directory)
            if problem:
                catalog.quarantine(directory / info.file, f"{info.rows:,} uncommitted rows of set {name}", problem)
                continue
            catalog.sets[name] = state
            state.pending.append(info)


def _mismatch(state: SetState, info: SegmentInfo, meta: dict[str, Any], directory: Path) -> str | None:
    """Why a pending set segment cannot follow the set's rows, or ``None`` if it can."""
    if meta.get("config_hash") != state.meta.get("config_hash"):
        return "its configuration differs from the set's"
    if meta.get("outputs") != state.meta.get("outputs"):
        return "its outputs or dimensions differ from the set's"
    for out in state.meta["outputs"]:
        if out["level"] == "token":
            expected = state.tokens(out["name"])
            try:
                base = token_base(directory / info.file, out["name"])
            except (StoreError, OSError, KeyError, ValueError):
                return "its token offsets cannot be read"
            if base != expected:
                return f"its token offsets start at {base}, not at {expected} where the set ends"
    return None


def _recover_inputs(catalog: Catalog, orphans: list[tuple[SegmentInfo, dict[str, Any]]]) -> None:
    directory = catalog.directory
    generations: dict[tuple[str, int], list[tuple[SegmentInfo, dict[str, Any]]]] = {}
    for info, meta in orphans:
        generations.setdefault((info.name, info.lo), []).append((info, meta))
    newest: dict[str, InputState] = {}
    for (name, generation), items in sorted(generations.items(), key=lambda kv: kv[0][1]):
        finals = [(i, m) for i, m in items if i.kind == INPUT_FINAL]
        pieces = sorted((i for i, _ in items if i.kind == INPUT), key=lambda p: p.part)
        committed = catalog.inputs.get(name)
        complete = (len(finals) == 1 and [p.part for p in pieces] == list(range(finals[0][0].part))
                    and sum(p.rows for p in pieces) == finals[0][0].rows)
        if committed is not None and generation <= committed.generation or not complete:
            for info, _ in items:  # replaced, or the unfinished table of a killed run: rewritten next run
                (directory / info.file).unlink(missing_ok=True)
            continue
        final, meta = finals[0]
        previous = newest.get(name)
        if previous is not None:
            for info in [*previous.pieces, previous.final]:
                (directory / info.file).unlink(missing_ok=True)
        newest[name] = InputState(name, meta, pieces, final, created=now())
    catalog.pending_inputs.update(newest)


def remove_unreferenced(catalog: Catalog, keep: set[str]) -> None:
    """After a commit (under the lock): retire what the previous index mapped, delete other leftovers."""
    directory = catalog.directory
    if not directory.is_dir():
        return
    referenced = catalog.referenced() | keep
    retired = expire_retired(directory)
    old = set()
    for file in directory.iterdir():
        if not file.name.endswith(".h5") or file.name in referenced or file.name in retired:
            continue
        if file.name in catalog.loaded:
            old.add(file.name)
        else:  # never mapped by any index: no reader can be using it
            file.unlink(missing_ok=True)
    retire(directory, old)
    catalog.loaded = catalog.referenced()


RETIRED = "retired.json"
GRACE_SECONDS = 600.0


def retire(directory: Path, files: set[str]) -> None:
    """Keep replaced segments for ``GRACE_SECONDS`` before deleting them.

    A reader that opened the previous index reads its segments lazily; HDF5 gives fill values,
    not an error, for a source file that is gone. Replaced segments therefore stay on disk for a
    while (listed in ``retired.json``), and a later writer deletes them.
    """
    if not files:
        return
    listed = _retired(directory)
    listed.update({f: time.time() for f in files if f not in listed})
    atomic_write(directory / RETIRED, lambda tmp: tmp.write_text(json.dumps(listed)))


def expire_retired(directory: Path, grace: float | None = None) -> set[str]:
    """Delete retired segments older than the grace period; return those still kept."""
    listed = _retired(directory)
    if not listed:
        return set()
    limit = time.time() - (GRACE_SECONDS if grace is None else grace)
    kept = {}
    for name, when in listed.items():
        if when <= limit:
            (directory / name).unlink(missing_ok=True)
        elif (directory / name).exists():
            kept[name] = when
    if kept != listed:
        atomic_write(directory / RETIRED, lambda tmp: tmp.write_text(json.dumps(kept)))
    return set(kept)


def _retired(directory: Path) -> dict[str, float]:
    try:
        data = json.loads((directory / RETIRED).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and "/" not in str(k)}


def quarantine_legacy_staging(catalog: Catalog) -> None:
    """Staging left by an embedx that wrote format 1 (``FILE.h5.staging/``): set aside, recomputed on demand."""
    staging = catalog.path.with_name(catalog.path.name + ".staging")
    if not staging.is_dir():
        return
    shards = list(staging.rglob("*.npz"))
    if not shards:
        shutil.rmtree(staging, ignore_errors=True)
        return
    target_dir = L.quarantine_dir(catalog.path)
    target_dir.mkdir(exist_ok=True)
    target = target_dir / f"staging-{now().replace(':', '')}"
    os.replace(staging, target)
    catalog.messages.append(f"set aside {len(shards)} uncommitted staging shard(s) of an older embedx in {target}; "
                            "their rows are recomputed when asked for again, nothing committed is lost")


def pending_rows(path: Path) -> dict[str, int]:
    """Rows per set that an unfinished run left in segments the next run will commit (read-only)."""
    try:
        catalog = load(path)
    except NeedsUpgrade:
        return {}  # format 1: its pending rows (if any) are in the old staging folder
    directory = catalog.directory
    if not directory.is_dir():
        return {}
    known = catalog.referenced() | set(_retired(directory))
    counts: dict[str, int] = {}
    for file in directory.glob("set@*.h5"):
        if file.name in known:
            continue
        try:
            info, _ = read_info(file)
        except (StoreError, OSError):
            continue
        state = catalog.sets.get(info.name)
        if state and any(c.lo <= info.hi and info.lo <= c.hi for c in state.segments):
            continue
        counts[info.name] = counts.get(info.name, 0) + info.rows
    return counts
