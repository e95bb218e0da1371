"""Get a feature file ready for writing: upgrade format 1, set aside old staging, recover unfinished runs.

Format 1 files (every row inside ``FILE.h5``) are read as they are. The first write upgrades
them once: every set and input table is copied into segments, then the format 2 index replaces
the file in one rename. A kill during the upgrade leaves the format 1 file untouched, and the
segments it had written are deleted by the next run, which upgrades again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from embedx.store import layout as L
from embedx.store.catalog import (
    Catalog,
    InputState,
    NeedsUpgrade,
    SetState,
    open_folder,
    quarantine_legacy_staging,
    recover,
)
from embedx.store.commit import write_index
from embedx.store.faults import check_free_space, needs_space_message
from embedx.store.lease import ensure as ensure_lease
from embedx.store.open import open_checked
from embedx.store.packing import pack_strings
from embedx.store.segment import now, write_input_final, write_input_piece, write_set_segment
from embedx.store.sidepaths import (
    MARKER,
    SideFolder,
    is_own_name,
    parent_folder,
    quarantine_folder,
    remove_index_temporaries,
)

log = logging.getLogger(__name__)

UPGRADE_ROWS = 65536


def prepare(path: Path) -> Catalog:
    """The writer's view of ``path`` (call only while holding its writer lock).

    The segment folder exists afterwards, checked and recorded as this store's (see
    :func:`~embedx.store.catalog.claim`), before anything is written into it."""
    notes: list[str] = []
    try:
        catalog = recover(path)
    except NeedsUpgrade:
        notes.append(upgrade(path))
        catalog = recover(path)
    quarantine_legacy_staging(catalog)
    folder = open_folder(catalog, create=True)
    if folder is not None:
        with folder:
            ensure_lease(folder)
    remove_index_temporaries(path)
    catalog.messages[:0] = [n for n in notes if n]
    for message in catalog.messages:
        log.warning("%s", message)
    return catalog


def upgrade(path: Path) -> str:
    """Rewrite a format 1 file as a format 2 index plus segments; return a message saying so."""
    directory = L.segment_dir(path)
    note = _clear_folder(path)
    needed = path.stat().st_size
    if not check_free_space(path.parent, needed, "upgrading"):
        from embedx.contract.errors import StoreError

        raise StoreError(needs_space_message(path.parent, needed, f"upgrading {path} to format {L.FORMAT_VERSION}"))
    catalog = Catalog(path, created=now())
    folder = SideFolder.open(directory, "the segment folder", create=True)
    assert folder is not None
    with folder:  # recorded as the upgrade of this very version of the file, so a killed upgrade is known
        folder.write_atomic(MARKER, json.dumps({"store": catalog.store_id, "upgrade_of": _version(path)}).encode())
    with open_checked(path) as handle:
        catalog.created = str(handle.attrs.get("created", catalog.created))
        for name, group in handle[L.SETS].items():
            _upgrade_set(catalog, name, group)
        for name, group in handle[L.INPUTS].items():
            _upgrade_input(catalog, name, group)
    for state in catalog.sets.values():
        state.segments, state.pending = state.pending, []
    write_index(catalog)
    return ((note + "; ") if note else "") + (
        f"upgraded {path} from format 1 to format {L.FORMAT_VERSION} (a one-time copy of "
        f"{needed / 1e6:,.1f} MB into {directory.name}/); embedx before 0.2 cannot read it any more")


def _version(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _clear_folder(path: Path) -> str:
    """Make room for the segment folder of a format 1 file. A folder an interrupted upgrade of this
    very file left is emptied (its own files only); any other folder is moved aside, never deleted."""
    folder = SideFolder.open(L.segment_dir(path), "the segment folder")
    if folder is None:
        return ""
    with folder:
        raw = folder.read_small(MARKER, "the store record")
        try:
            record = json.loads(raw) if raw is not None else None
        except (ValueError, RecursionError):
            record = None
        names = folder.names()
        if (isinstance(record, dict) and record.get("upgrade_of") == _version(path)
                and all(is_own_name(n) and folder.problem(n) is None for n in names)):
            for name in names:
                folder.remove(name)
            try:
                os.rmdir(folder.path)
                return ""
            except OSError:
                pass
    with parent_folder(path) as parent, quarantine_folder(path) as target_dir:
        target = parent.move_to(L.segment_dir(path).name, target_dir, f"segments-{now().replace(':', '')}", folder=True)
    return (f"set aside {target}: a segment folder beside a format 1 file is not part of it (left by another "
            "embedx or another file), nothing in it was deleted")


def _text(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode("utf-8", "surrogatepass") if isinstance(v, bytes) else v for v in values], dtype=object)


def _upgrade_set(catalog: Catalog, name: str, group: h5py.Group) -> None:
    meta = {"embedder": str(group.attrs["embedder"]), "plugin": str(group.attrs.get("plugin", "")),
            "config_hash": str(group.attrs["config_hash"]), "config": json.loads(group.attrs["config"]),
            "outputs": json.loads(group.attrs["outputs"]), "dtype": str(group.attrs["dtype"]), "compression": None}
    for out in meta["outputs"]:
        values = group[out["name"]][L.VALUES]
        if values.compression:
            meta["compression"] = values.compression
    state = catalog.sets[name] = SetState(name, meta, created=str(group.attrs.get("created", now())))
    rows = group[L.KEYS].shape[0]
    bases = {o["name"]: 0 for o in meta["outputs"] if o["level"] == "token"}
    for start in range(0, rows, UPGRADE_ROWS):
        stop = min(rows, start + UPGRADE_ROWS)
        arrays = {"keys": group[L.KEYS][start:stop], "truncated": group[L.TRUNCATED][start:stop]}
        for out in meta["outputs"]:
            sub, prefix = group[out["name"]], out["name"] + "."
            if out["level"] == "document":
                arrays[prefix + L.VALUES] = sub[L.VALUES][start:stop]
                continue
            offsets = sub[L.OFFSETS][start:stop + 1]
            lo, hi = int(offsets[0]), int(offsets[-1])
            arrays[prefix + L.VALUES] = sub[L.VALUES][lo:hi]
            arrays[prefix + L.OFFSETS] = offsets - lo
            arrays[prefix + "tokens.bytes"], arrays[prefix + "tokens.offsets"] = pack_strings(
                list(_text(sub[L.TOKENS][lo:hi])))
        seq = catalog.take_seq()
        info = write_set_segment(catalog.directory, name, meta, seq, seq, arrays, bases)
        for key, count in info.tokens.items():
            bases[key] += count
        state.pending.append(info)


def _upgrade_input(catalog: Catalog, name: str, group: h5py.Group) -> None:
    generation = catalog.take_seq()
    rows = group[L.KEYS].shape[0]
    text_stored = L.TEXT in group
    columns = group[L.COLUMNS]
    by_name = {str(columns[c].attrs.get("name", c)): c for c in columns}
    try:  # the columns in their input order, as the table recorded it
        names = [n for n in json.loads(group.attrs["columns"]) if n in by_name]
    except (KeyError, TypeError, ValueError):
        names = []
    names += [n for n in by_name if n not in names]
    datasets = [by_name[n] for n in names]
    kinds = {str(i): ("str" if columns[c].dtype.kind in "OS" else "int" if columns[c].dtype.kind in "iu" else "float")
             for i, c in enumerate(datasets)}
    pieces = []
    for part, start in enumerate(range(0, max(rows, 1), UPGRADE_ROWS)):
        stop = min(rows, start + UPGRADE_ROWS)
        arrays = {L.KEYS: group[L.KEYS][start:stop], L.EMPTY: group[L.EMPTY][start:stop],
                  L.LINE: group[L.LINE][start:stop]}
        if text_stored:
            arrays[L.TEXT] = _text(group[L.TEXT][start:stop])
        for i, c in enumerate(datasets):
            if kinds[str(i)] == "str":
                arrays[f"{L.RAW}/{i}"] = _text(columns[c][start:stop])
        pieces.append(write_input_piece(catalog.directory, name, generation, part, arrays, text_stored))
    typed = {str(i): columns[c][:] for i, c in enumerate(datasets) if kinds[str(i)] != "str"}
    meta = {"source": str(group.attrs.get("source", "")), "columns": names, "text_stored": text_stored,
            "typed": kinds, "digest": str(group.attrs.get("digest", ""))}
    final = write_input_final(catalog.directory, name, generation, len(pieces), rows, meta, typed)
    catalog.inputs[name] = InputState(name, meta, pieces, final, created=str(group.attrs.get("created", now())))
