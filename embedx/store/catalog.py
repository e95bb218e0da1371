"""What a feature file holds, committed or pending, as the writer sees it while holding the lock.

The index (``FILE.h5``) lists the segments it maps. Any other segment in ``FILE.h5.segments/``
was written by a run that did not reach its commit: :func:`recover` keeps those a commit can
use (the next commit maps them, so their rows are not recomputed), deletes what a finished
commit or merge already replaced, and sets aside in ``FILE.h5.quarantine/`` anything that
cannot be read or committed, saying what and how many rows, so no run is ever stuck behind it.

Everything beside the file may come from someone else (see :mod:`embedx.store.sidepaths`), so the
writer acts only in a segment folder that is a real folder of the user, that the index records as
its own (``store.json`` names the index's ``store_id``), and only on files named like segments that
are plain files with one link. A folder of another store, a link, or a ``retired.json`` naming
anything but a segment of this folder is refused with one line, and nothing is changed.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedx.contract.errors import StoreError
from embedx.store import layout as L
from embedx.store.open import open_checked
from embedx.store.segment import (
    INPUT,
    INPUT_FINAL,
    SET,
    SegmentInfo,
    check_segments_present,
    now,
    read_info,
    read_segment_list,
    token_base,
)
from embedx.store.sidepaths import (
    MARKER,
    RETIRED,
    TEMPORARY,
    SideFolder,
    is_segment_name,
    kind_of,
    parent_folder,
    quarantine_folder,
    refusal,
    segment_folder,
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
    store_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # recorded in the index and in store.json
    recorded_id: str | None = None  # the id the index on disk records (None: no index, or one written before ids)
    seen: set[str] = field(default_factory=set)  # uncommitted segments recovery read as this store's own

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

    def quarantine(self, folder: SideFolder, name: str, what: str, why: str) -> None:
        """Move the segment ``name`` aside into ``FILE.h5.quarantine/`` and record a message saying so."""
        with quarantine_folder(self.path) as target_dir:
            target = folder.move_to(name, target_dir)
        self.messages.append(f"set aside {what} in {target} ({why}); it was never committed, so nothing "
                             "committed is lost, and this run goes on without it")


STORE_ID = re.compile(r"[0-9a-f]{32}")


def load(path: Path) -> Catalog:
    """The committed state of ``path`` (format 2), or an empty catalog if it does not exist yet."""
    if not path.exists():
        return Catalog(path, created=now())
    with open_checked(path, renamed_ok=True) as handle:  # the writer reads no virtual data through HDF5
        version = int(handle.attrs.get("format_version", 0))
        if version < 2:
            raise NeedsUpgrade(f"{path} uses embedx format version {version}; it must be upgraded first")
        catalog = Catalog(path, created=str(handle.attrs.get("created", now())))
        recorded = handle.attrs.get("store_id")
        if recorded is not None:
            recorded = recorded.decode("utf-8", "replace") if isinstance(recorded, bytes) else recorded
            if not isinstance(recorded, str) or not STORE_ID.fullmatch(recorded):
                raise StoreError(f"{path}: its attribute 'store_id' is {str(recorded)[:40]!r}, not 32 hex digits; "
                                 "the index is damaged (move the file aside)")
            catalog.store_id = catalog.recorded_id = recorded
        infos = read_segment_list(handle, path)
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
                return str(sources[0].file_name).split("/", 1)[0]
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


def claim(catalog: Catalog, folder: SideFolder) -> None:
    """Refuse ``folder`` unless it is this store's segment folder; record it as such in ``store.json``.

    The index records its ``store_id``, the folder's ``store.json`` the store it belongs to. A
    folder of another store (a file renamed onto another's name, a copied index beside another
    folder) is refused before anything in it is read, merged, moved or deleted. A folder without
    a record is this store's when it is empty, when the index maps segments in it (all of them
    are there: see :func:`load`), or when there is no index yet or one written before store ids."""
    raw = folder.read_small(MARKER, "the store record")
    owner = None
    if raw is not None:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = None
        owner = data.get("store") if isinstance(data, dict) else None
        if not isinstance(owner, str) or not STORE_ID.fullmatch(owner):
            raise StoreError(f"{folder.path / MARKER} is damaged, so embedx cannot tell whether {folder.path} belongs "
                             f"to {catalog.path}; it changed nothing (move the folder aside)")
    if catalog.recorded_id is not None and owner != catalog.recorded_id:
        if owner is not None or not (catalog.referenced() or not folder.names()):
            raise StoreError(f"{folder.path} does not belong to {catalog.path}: it is the segment folder of another "
                             "feature file (or was not made by embedx), so embedx will not add to, merge, move or "
                             f"delete anything in it; give {catalog.path.name} back its own segment folder, or move "
                             "this one aside")
    elif owner is not None:
        catalog.store_id = owner
        return
    folder.write_atomic(MARKER, json.dumps({"store": catalog.store_id}).encode())


def open_folder(catalog: Catalog, create: bool = False) -> SideFolder | None:
    """The store's segment folder, checked (not a link, the user's own) and claimed (see :func:`claim`)."""
    folder = segment_folder(catalog.path, create=create)
    if folder is not None:
        try:
            claim(catalog, folder)
        except BaseException:
            folder.close()
            raise
    return folder


def recover(path: Path) -> Catalog:
    """The committed state plus whatever unfinished runs left that can still be committed.

    Only call this while holding the writer lock: it deletes and moves files in the segment folder.
    """
    catalog = load(path)
    folder = open_folder(catalog)
    if folder is None:
        return catalog
    with folder:
        for name in folder.names():
            if TEMPORARY.fullmatch(name):
                folder.remove(name)  # a killed writer's; left alone unless a plain file of this user
        known = catalog.referenced() | expire_retired(folder)
        orphans: list[tuple[SegmentInfo, dict[str, Any]]] = []
        for name in folder.names():
            if name in known or not is_segment_name(name):
                continue  # what embedx did not name is never touched
            why = folder.problem(name)
            if why:
                catalog.messages.append(f"left {folder.path / name} alone: it is {why}, not a segment embedx wrote, "
                                        "and it is not part of the file")
                continue
            try:
                info, meta = read_info(folder.path / name)
            except StoreError as exc:
                catalog.quarantine(folder, name, f"the unreadable segment {name}", str(exc))
                continue
            catalog.seen.add(name)
            catalog.next_seq = max(catalog.next_seq, info.hi + 1)
            orphans.append((info, meta))
        _recover_sets(catalog, folder, [(i, m) for i, m in orphans if i.kind == SET])
        _recover_inputs(catalog, folder, [(i, m) for i, m in orphans if i.kind != SET])
    return catalog


def _covered(info: SegmentInfo, others: list[SegmentInfo]) -> bool:
    return any(o is not info and o.lo <= info.lo and info.hi <= o.hi and (o.lo, o.hi) != (info.lo, info.hi)
               for o in others)


def _recover_sets(catalog: Catalog, folder: SideFolder, orphans: list[tuple[SegmentInfo, dict[str, Any]]]) -> None:
    directory = folder.path
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
                retire(folder, {info.file})  # a reader of the previous index may still use it
            else:
                keep.append((info, meta))
        keep.sort(key=lambda item: item[0].lo)
        for info, meta in keep:
            state = catalog.sets.get(name) or SetState(name, {k: meta.get(k) for k in SET_META_KEYS}, created=now())
            problem = _mismatch(state, info, meta, directory)
            if problem:
                catalog.quarantine(folder, info.file, f"{info.rows:,} uncommitted rows of set {name}", problem)
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


def _recover_inputs(catalog: Catalog, folder: SideFolder, orphans: list[tuple[SegmentInfo, dict[str, Any]]]) -> None:
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
                folder.remove(info.file)
            continue
        final, meta = finals[0]
        previous = newest.get(name)
        if previous is not None:
            for info in [*previous.pieces, previous.final]:
                folder.remove(info.file)
        newest[name] = InputState(name, meta, pieces, final, created=now())
    catalog.pending_inputs.update(newest)


def remove_unreferenced(catalog: Catalog, keep: set[str]) -> None:
    """After a commit (under the lock): retire what the previous index mapped, delete other leftovers.

    Only the store's own files are deleted: named like segments, read by :func:`recover` as
    uncommitted segments of this store, and plain files with one link."""
    folder = open_folder(catalog)
    if folder is None:
        return
    with folder:
        referenced = catalog.referenced() | keep
        retired = expire_retired(folder)
        old = set()
        for name in folder.names():
            if not is_segment_name(name) or name in referenced or name in retired:
                continue
            if name in catalog.loaded:
                old.add(name)
            elif name in catalog.seen:  # never mapped by any index: no reader can be using it
                folder.remove(name)
        retire(folder, old)
        if old:
            expire_retired(folder)  # deleted at once when no reader holds a lease (embedx.store.lease)
    catalog.loaded = catalog.referenced()


GRACE_SECONDS = 600.0


def retire(folder: SideFolder, files: set[str]) -> None:
    """Keep replaced segments for ``GRACE_SECONDS`` before deleting them.

    A reader that opened the previous index reads its segments lazily; HDF5 gives fill values,
    not an error, for a source file that is gone. Replaced segments therefore stay on disk for a
    while (listed in ``retired.json``), and a later writer deletes them.
    """
    if not files:
        return
    listed = _retired(folder)
    listed.update({f: time.time() for f in files if f not in listed})
    folder.write_atomic(RETIRED, json.dumps(listed).encode())


def expire_retired(directory: Path | SideFolder, grace: float | None = None) -> set[str]:
    """Delete retired segments older than the grace period; return those still kept."""
    if not isinstance(directory, SideFolder):
        opened = SideFolder.open(Path(directory), "the segment folder")
        if opened is None:
            return set()
        with opened:
            return expire_retired(opened, grace)
    folder = directory
    listed = _retired(folder)
    if not listed:
        return set()
    from embedx.store.lease import no_readers

    with no_readers(folder) as free:
        # A lease protects embedx's readers for as long as they are open. Plain h5py readers (the
        # documented format) take none, so a retired segment also waits out the grace period: the
        # lease adds protection, it never removes the time-based one.
        if free is False:  # an embedx reader holds a lease: keep everything it may map
            limit = -math.inf if grace is None else time.time() - grace
        else:  # no lease held (or none to go by): the time-based rule
            limit = time.time() - (GRACE_SECONDS if grace is None else grace)
        kept = {}
        for name, when in listed.items():
            if when <= limit:
                folder.remove(name)  # a file that is no plain segment of this user's is left alone, and unlisted
            elif folder.lstat(name) is not None:
                kept[name] = when
        if kept != listed:
            folder.write_atomic(RETIRED, json.dumps(kept).encode())
    return set(kept)


def _retired(folder: SideFolder) -> dict[str, float]:
    """``retired.json``: segment file names of this folder and when they were retired.

    A name that is not a segment file name (``..``, ``a/b``, another file) is refused: the list
    says what embedx deletes, so a forged one must not reach any other file."""
    raw = folder.read_small(RETIRED, "the list of retired segments")
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    listed = {}
    for name, when in data.items():
        if not is_segment_name(name):
            raise StoreError(f"{folder.path / RETIRED} lists {name[:80]!r}, which is not a segment file of this "
                             "folder; embedx deletes only its own segments, so it changed nothing (move "
                             f"{RETIRED} aside)")
        if isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when):
            listed[name] = float(when)
    return listed


def quarantine_legacy_staging(catalog: Catalog) -> None:
    """Staging left by an embedx that wrote format 1 (``FILE.h5.staging/``): set aside, recomputed on demand.

    Nothing in it is deleted: an empty tree of folders is removed, anything else is moved aside."""
    staging = catalog.path.with_name(catalog.path.name + ".staging")
    try:
        st = os.lstat(staging)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise refusal(staging, "the staging folder of an older embedx", kind_of(st))
    if st.st_uid != os.geteuid():
        raise StoreError(f"{staging} belongs to another user; embedx will not move it")
    shards = files = 0
    for _, _, names in os.walk(staging, followlinks=False):
        files += len(names)
        shards += sum(n.endswith(".npz") for n in names)
    if not files and _remove_empty_tree(staging):
        return
    with parent_folder(catalog.path) as parent, quarantine_folder(catalog.path) as target_dir:
        target = parent.move_to(staging.name, target_dir, f"staging-{now().replace(':', '')}", folder=True)
    catalog.messages.append(f"set aside {shards} uncommitted staging shard(s) of an older embedx in {target}; "
                            "their rows are recomputed when asked for again, nothing committed is lost")


def _remove_empty_tree(top: Path) -> bool:
    """Remove a tree of empty folders (never a file, never through a link); whether it is gone."""
    try:
        for dirpath, dirnames, _ in os.walk(top, topdown=False, followlinks=False):
            for name in dirnames:
                if os.path.islink(os.path.join(dirpath, name)):
                    return False
            os.rmdir(dirpath)
    except OSError:
        return False
    return True


def pending_rows(path: Path) -> dict[str, int]:
    """Rows per set that an unfinished run left in segments the next run will commit (read-only)."""
    try:
        catalog = load(path)
    except NeedsUpgrade:
        return {}  # format 1: its pending rows (if any) are in the old staging folder
    folder = segment_folder(catalog.path, write=False)
    if folder is None:
        return {}
    counts: dict[str, int] = {}
    with folder:
        known = catalog.referenced() | set(_retired(folder))
        for name in folder.names():
            if name in known or not name.startswith("set@") or not is_segment_name(name):
                continue
            st = folder.lstat(name)
            if st is None or not stat.S_ISREG(st.st_mode):
                continue
            try:
                info, _ = read_info(folder.path / name)
            except (StoreError, OSError):
                continue
            state = catalog.sets.get(info.name)
            if state and any(c.lo <= info.hi and info.lo <= c.hi for c in state.segments):
                continue
            counts[info.name] = counts.get(info.name, 0) + info.rows
    return counts
