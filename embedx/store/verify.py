"""Verify an HDF5 feature file's structure before embedx reads from it or writes through it.

A feature file comes from someone else, so it is untrusted. HDF5 can make an ordinary read
leave the file: an external link, a virtual dataset that maps another file, or a dataset whose
raw bytes live in some other file (``external=``) all read foreign bytes, and a write through
them lands outside the file. A header can also declare a shape that makes a reader allocate
terabytes. ``verify_structure`` walks every link, group, dataset and attribute (metadata and at
most a few elements, never bulk data) and refuses anything an embedx-written file does not
hold, naming the file and the object.

Virtual datasets are followed only into ``allowed_dir`` (the store's own segment folder), and
only onto plain datasets there; without ``allowed_dir`` every virtual dataset is refused.

libhdf5 itself can loop forever or crash on damaged metadata (the fuzz tests found spliced
and zeroed blocks that do), and nothing in-process survives that. ``verify_isolated`` therefore
opens and verifies a file in a child process first, with a time limit, once per file state. The
child is forked only while this process runs a single thread: a fork copies locks that other
threads hold (Ray's, torch's, a progress bar's), so in a threaded process the child is a fresh
interpreter instead.
"""

from __future__ import annotations

import faulthandler
import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePath
from typing import Any, TypeGuard

import h5py
import numpy as np

from embedx.contract.errors import StoreError
from embedx.store import layout as L

# builds the error for (object, why) / for why: the caller names the object
Fail = Callable[[str, str], StoreError]
FailWhy = Callable[[str], StoreError]

MAX_OBJECTS = 1_000_000  # groups + datasets + links; a real file with this many is far beyond any corpus
MAX_ROWS = 2**36  # about 69 billion texts or tokens
MAX_INNER = 2**24  # a vector dimension or a layer count
MAX_RANK = 4
MAX_VIRTUAL_SOURCES = 1_000_000
# deflate, shuffle, fletcher32, szip, nbit, scale-offset, lzf: HDF5 built-ins plus h5py's lzf.
# Any other filter id would make HDF5 look for a plugin library to load.
SAFE_FILTERS = {1, 2, 3, 4, 5, 6, 32000}
# Compressed chunks of constant data shrink at most ~1000x with deflate; a larger ratio of declared
# to stored bytes means unallocated (sparse) chunks: a header promising data the file does not hold.
MAX_COMPRESSION_RATIO = 2048
KEY_COMPRESSION_RATIO = 4
_SLACK_BYTES = 1 << 20

JSON_ATTRS = {"config": dict, "outputs": list, "columns": list}
INT_ROLES = {L.OFFSETS: 8, L.LINE: 8, L.TRUNCATED: 0}  # 0: any integer width


def verify_structure(handle: h5py.File, path: Path | str, allowed_dir: Path | str | None = None,
                     renamed_ok: bool = False) -> None:
    """Raise :class:`StoreError` unless every object in ``handle`` stays inside the file (or
    ``allowed_dir``) and every dataset has a sane dtype and a shape consistent with ``rows``.

    ``renamed_ok`` (the writer only, which never reads virtual data through HDF5): sources
    recorded under another segment folder name (the file was renamed with its folder) are
    checked in ``allowed_dir`` instead, so the writer can load the file and record the new name."""
    _Verifier(handle, Path(path), None if allowed_dir is None else Path(allowed_dir), renamed_ok).run()


class _Verifier:
    def __init__(self, handle: h5py.File, path: Path, allowed_dir: Path | None, renamed_ok: bool = False):
        self.handle = handle
        self.renamed_ok = renamed_ok
        self.path = path
        self.allowed = allowed_dir.resolve() if allowed_dir is not None else None
        self.allowed_path = allowed_dir.absolute() if allowed_dir is not None else None
        self.seen: set[tuple[int, int]] = set()
        self.count = 0
        self.sources: dict[Path, dict[str, tuple[np.dtype, tuple[int, ...]]]] = {}

    def fail(self, obj: str, why: str) -> StoreError:
        return StoreError(f"{self.path}: {obj} {why}; refusing to use this file (embedx never follows "
                          "references out of a feature file, and checks its shapes before reading)")

    def renamed(self, folder: str) -> StoreError:
        """The index was written under another name: its virtual datasets name that name's segment folder."""
        assert self.allowed is not None
        written = folder.removesuffix(L.SEGMENT_DIR_SUFFIX)
        return StoreError(f"{self.path} was renamed: it was written as {written}, and its rows are read from the "
                          f"folder {folder}/ beside it (that name is recorded inside the file), not from "
                          f"{self.allowed.name}/. Rename it back to {written}, and its segment folder back to "
                          f"{folder} if that was renamed too (or, with the folder renamed along to "
                          f"{self.allowed.name}, run `embedx compact {self.path}` once to record the new names)")

    def run(self) -> None:
        try:
            self._group(self.handle, "/")
            self._layout()
        except StoreError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"{self.path} is damaged ({text[:200]}); move it aside and re-run "
                             "the extraction") from None

    # every link and object --------------------------------------------------------------------
    def _group(self, group: h5py.Group, name: str) -> None:
        if not self._first_visit(group):
            return
        self._attrs(group, name)
        for child in group:
            self.count += 1
            if self.count > MAX_OBJECTS:
                raise self.fail(name, f"holds more than {MAX_OBJECTS:,} objects")
            where = f"{name.rstrip('/')}/{child}"
            kind = group.id.links.get_info(child.encode("utf-8")).type
            if kind == h5py.h5l.TYPE_EXTERNAL:
                link = group.get(child, getlink=True)
                raise self.fail(f"object {where}", f"is an external link to {link.path!r} in file {link.filename!r}")
            if kind == h5py.h5l.TYPE_SOFT:
                self._soft(group.get(child, getlink=True).path, where)
                continue  # its target is checked where it is hard-linked
            if kind != h5py.h5l.TYPE_HARD:
                raise self.fail(f"object {where}", f"is a user-defined link (type {kind})")
            obj = group[child]
            if isinstance(obj, h5py.Group):
                self._group(obj, where)
            elif isinstance(obj, h5py.Dataset):
                self._dataset(obj, where)
            else:
                raise self.fail(f"object {where}", f"is a {type(obj).__name__}, not a group or dataset")

    def _first_visit(self, obj: h5py.HLObject) -> bool:
        info = h5py.h5o.get_info(obj.id)
        ident = (info.fileno, info.addr)
        if ident in self.seen:
            return False
        self.seen.add(ident)
        return True

    def _soft(self, target: str, where: str) -> None:
        """A soft link must resolve, through hard links of this file only, to an existing object."""
        current: h5py.Group = self.handle if target.startswith("/") else self.handle[where.rsplit("/", 1)[0] or "/"]
        parts = [p for p in target.split("/") if p and p != "."]
        for depth, part in enumerate(parts):
            if part == ".." or not isinstance(current, h5py.Group) or not current.id.links.exists(part.encode("utf-8")):
                raise self.fail(f"soft link {where}", f"points at {target!r}, which does not exist in the file")
            kind = current.id.links.get_info(part.encode("utf-8")).type
            if kind != h5py.h5l.TYPE_HARD:
                raise self.fail(f"soft link {where}", f"points at {target!r} through another link "
                                                     "(it may leave the file)")
            current = current[part]
            if depth > 64:
                raise self.fail(f"soft link {where}", "is nested too deeply")

    def _attrs(self, obj: h5py.HLObject, name: str) -> None:
        for key in obj.attrs:
            value = obj.attrs[key]
            if key in JSON_ATTRS:
                parse_json_attr(value, JSON_ATTRS[key], partial(self.fail, f"attribute {key!r} of {name}"))
            elif key == "rows":
                rows_attr(value, lambda why: self.fail(f"attribute 'rows' of {name}", why))

    def _dataset(self, ds: h5py.Dataset, name: str) -> None:
        if not self._first_visit(ds):
            return
        self._attrs(ds, name)
        what = f"dataset {name}"
        if ds.external:
            files = ", ".join(repr(e[0]) for e in ds.external)
            raise self.fail(what, f"keeps its raw data in another file ({files})")
        plist = ds.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if code not in SAFE_FILTERS:
                raise self.fail(what, f"uses HDF5 filter {code}, which embedx does not write (it would load a plugin)")
        check_dtype(ds.dtype, what, self.fail)
        shape = ds.shape
        if shape is None:
            raise self.fail(what, "has no dataspace")
        if len(shape) > MAX_RANK:
            raise self.fail(what, f"has {len(shape)} dimensions")
        if shape and shape[0] > MAX_ROWS:
            raise self.fail(what, f"declares {shape[0]:,} rows (more than {MAX_ROWS:,})")
        if any(n > MAX_INNER for n in shape[1:]):
            raise self.fail(what, f"declares a dimension of {max(shape[1:]):,} (more than {MAX_INNER:,})")
        if ds.is_virtual:
            self._virtual(ds, what)
        else:
            self._allocated(ds, what)

    def _allocated(self, ds: h5py.Dataset, what: str) -> None:
        """The file must hold the bytes the header declares (no sparse, never-written chunks)."""
        if ds.dtype.kind == "O":
            return  # variable-length strings: their heap size is not the declared size
        declared = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize) if ds.shape else ds.dtype.itemsize
        stored = ds.id.get_storage_size()
        # Hex content keys carry 4 bits per byte: no codec shrinks them 4x, unless they are not keys.
        ratio = KEY_COMPRESSION_RATIO if ds.name.rsplit("/", 1)[-1] == L.KEYS else MAX_COMPRESSION_RATIO
        limit = (ratio * stored if ds.id.get_create_plist().get_nfilters() else stored) + _SLACK_BYTES
        if declared > limit:
            raise self.fail(what, f"declares {declared:,} bytes but the file stores {stored:,} for it "
                                  "(a sparse or truncated dataset)")

    def _virtual(self, ds: h5py.Dataset, what: str) -> None:
        if self.allowed is None:
            first = ds.virtual_sources()[0] if ds.virtual_sources() else None
            target = f" (it maps {first.file_name!r}:{first.dset_name!r})" if first else ""
            raise self.fail(what, f"is a virtual dataset{target}; embedx follows virtual datasets only into "
                                  "its own segment folder")
        what = "virtual " + what
        if os.environ.get("HDF5_VDS_PREFIX"):
            raise self.fail(what, "is a virtual dataset and HDF5_VDS_PREFIX is set, which changes where HDF5 "
                                  "looks for its sources; unset it")
        sources = ds.virtual_sources()
        if len(sources) > MAX_VIRTUAL_SOURCES:
            raise self.fail(what, f"maps {len(sources):,} sources")
        mapped = 0
        for source in sources:
            resolved = self._source_file(source.file_name, what)
            dtype, shape = self._source_dataset(resolved, source.dset_name, what)
            if dtype != ds.dtype:
                raise self.fail(what, f"maps {source.dset_name!r} in {source.file_name!r}, which holds {dtype}, "
                                      f"not {ds.dtype}")
            points = source.vspace.get_select_npoints()
            if points > int(np.prod(shape, dtype=np.float64)):
                raise self.fail(what, f"maps more elements from {source.file_name!r} than its dataset holds")
            mapped += points
        total = int(np.prod(ds.shape, dtype=np.float64)) if ds.shape else 1
        if mapped != total:
            raise self.fail(what, f"is a virtual dataset of {total:,} elements whose sources map {mapped:,}")

    def _source_file(self, name: str, what: str) -> Path:
        pure = PurePath(name)
        if name in ("", ".") or "%" in name or ".." in pure.parts:
            raise self.fail(what, f"maps source file {name!r}; only plain names inside the segment folder are followed")
        assert self.allowed is not None
        candidate: PurePath
        folder = pure.parts[0] if len(pure.parts) > 1 and not pure.is_absolute() else ""
        if folder.endswith(L.SEGMENT_DIR_SUFFIX) and folder != self.allowed.name:
            if not self.renamed_ok:
                raise self.renamed(folder)
            candidate, remapped = self.allowed / PurePath(*pure.parts[1:]), True  # the same file, in the folder now
        else:
            remapped = False
            candidate = pure if pure.is_absolute() else self.path.absolute().parent / pure
        candidate_path = Path(candidate)
        for entry in (self.allowed_path, candidate_path):  # the folder and the file: never through a link
            try:
                st = os.lstat(entry)  # type: ignore[arg-type]  # allowed_path is set with allowed
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                raise self.fail(what, f"maps source file {name!r}, but {entry} is a symbolic link; embedx reads "
                                      "nothing outside the segment folder and follows no link in or to it")
            if entry is candidate_path and not stat.S_ISREG(st.st_mode):
                raise self.fail(what, f"maps source file {name!r}, which is not a regular file")
        try:
            resolved = candidate_path.resolve(strict=True)
        except (OSError, RuntimeError):
            if remapped:
                raise self.renamed(folder) from None  # renamed without its folder (or the folder elsewhere)
            raise self.fail(what, f"maps source file {name!r}, which does not exist") from None
        if not resolved.is_relative_to(self.allowed) or not resolved.is_file():
            raise self.fail(what, f"maps source file {name!r}, which resolves to {resolved}, outside "
                                  f"the segment folder {self.allowed}")
        return resolved

    def _source_dataset(self, file: Path, name: str, what: str) -> tuple[np.dtype, tuple[int, ...]]:
        if file not in self.sources:
            self.sources[file] = {}
        known = self.sources[file]
        if name not in known:
            try:
                with h5py.File(file, "r") as source:
                    known[name] = self._plain_source(source, file, name, what)
                    if name == L.KEYS and L.SORTED_ROWS in source:
                        self._key_rows(source, file, known[name][1])
            except OSError as exc:
                raise self.fail(what, f"maps {file}, which is not a readable HDF5 file ({exc})") from None
        return known[name]

    def _key_rows(self, source: h5py.File, file: Path, shape: tuple[int, ...]) -> None:
        """Every row a set segment's key index names lies in the segment (lookups then trust it, see
        :mod:`embedx.store.lookup`); checked once per verified generation, 4 bytes a row."""
        rows = shape[0] if shape else 0
        ds = source[L.SORTED_ROWS]
        if not isinstance(ds, h5py.Dataset) or ds.shape != (rows,) or ds.dtype.kind not in "iu":
            return  # the lookup's own checks refuse it, naming the dataset
        self._plain_source(source, file, L.SORTED_ROWS, f"dataset {L.SORTED_ROWS} of {file}")
        for start in range(0, rows, 1 << 22):
            block = ds[start:start + (1 << 22)]
            if len(block) and int(block.max()) >= rows:
                raise StoreError(f"segment {file}: {L.SORTED_ROWS} names row {int(block.max()):,}, but the segment "
                                 f"has {rows:,} rows; the file is damaged (refusing to read it)")

    def _plain_source(self, source: h5py.File, file: Path, name: str, what: str) -> tuple[np.dtype, tuple[int, ...]]:
        current: Any = source
        for part in [p for p in name.split("/") if p]:
            if not isinstance(current, h5py.Group) or not current.id.links.exists(part.encode("utf-8")):
                raise self.fail(what, f"maps {name!r} in {file}, which does not exist")
            if current.id.links.get_info(part.encode("utf-8")).type != h5py.h5l.TYPE_HARD:
                raise self.fail(what, f"maps {name!r} in {file} through a link")
            current = current[part]
        if not isinstance(current, h5py.Dataset):
            raise self.fail(what, f"maps {name!r} in {file}, which is not a dataset")
        if current.is_virtual or current.external:
            raise self.fail(what, f"maps {name!r} in {file}, which itself refers to other files")
        check_dtype(current.dtype, f"dataset {name} of {file}", self.fail)
        self._allocated(current, f"dataset {name} of {file}")
        return current.dtype, current.shape

    # the embedx layout ---------------------------------------------------------------------------
    def _layout(self) -> None:
        for section in (L.SETS, L.INPUTS):
            if section in self.handle and not isinstance(self.handle[section], h5py.Group):
                raise self.fail(f"/{section}", "is not a group")
        if L.SETS in self.handle:
            for name, group in self.handle[L.SETS].items():
                self._feature_set(group, f"/{L.SETS}/{name}")
        if L.INPUTS in self.handle:
            for name, group in self.handle[L.INPUTS].items():
                self._input_table(group, f"/{L.INPUTS}/{name}")

    def _need(self, group: Any, child: str, where: str, kind: type = h5py.Dataset, typed: bool = True) -> Any:
        """``group[child]``, which must be a ``kind``; a dataset's dtype must suit its role (its name)."""
        if not isinstance(group, h5py.Group) or child not in group:
            raise self.fail(where, f"lacks its {child!r} {'dataset' if kind is h5py.Dataset else 'group'}")
        obj = group[child]
        if not isinstance(obj, kind):
            raise self.fail(f"{where}/{child}", f"is not a {'dataset' if kind is h5py.Dataset else 'group'}")
        if kind is h5py.Dataset and typed:
            check_dtype(obj.dtype, f"dataset {where}/{child}", self.fail, role=child)  # type: ignore[attr-defined]
        return obj

    def _rows(self, group: h5py.Group, where: str) -> int:
        if "rows" not in group.attrs:
            raise self.fail(where, "lacks its 'rows' attribute")
        return rows_attr(group.attrs["rows"], lambda why: self.fail(f"attribute 'rows' of {where}", why))

    def _length(self, ds: h5py.Dataset, expected: int, where: str, ndim: int = 1) -> None:
        if len(ds.shape) != ndim or ds.shape[0] != expected:
            raise self.fail(f"dataset {where}", f"has shape {ds.shape}, expected {expected:,} rows "
                                                f"({ndim}-dimensional) to match the 'rows' attribute")

    def _feature_set(self, group: Any, where: str) -> None:
        if not isinstance(group, h5py.Group):
            raise self.fail(where, "is not a group")
        for attr in ("embedder", "config_hash", "config", "outputs", "dtype"):
            if attr not in group.attrs:
                raise self.fail(where, f"lacks its {attr!r} attribute")
        rows = self._rows(group, where)
        keys = self._need(group, L.KEYS, where)
        self._length(keys, rows, f"{where}/{L.KEYS}")
        if L.TRUNCATED in group:
            self._length(self._need(group, L.TRUNCATED, where), rows, f"{where}/{L.TRUNCATED}")
        outputs = parse_json_attr(
            group.attrs["outputs"], list, lambda why: self.fail(f"attribute 'outputs' of {where}", why)
        )
        if not outputs:
            raise self.fail(where, "lists no outputs")
        for spec in outputs:
            self._output(group, spec, rows, where)

    def _output(self, group: h5py.Group, spec: Any, rows: int, where: str) -> None:
        bad = self.fail(f"attribute 'outputs' of {where}", f"has a malformed entry {str(spec)[:80]!r}")
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("name"), str)
            or spec.get("level") not in ("document", "token")
        ):
            raise bad
        dim, layers = spec.get("dim"), spec.get("layers")
        if not _count(dim) or not 0 < dim <= MAX_INNER:
            raise bad
        per_layer = bool(spec.get("per_layer"))
        if per_layer and (not _count(layers) or not 0 < layers <= MAX_INNER):
            raise bad
        out = f"{where}/{spec['name']}"
        sub = self._need(group, spec["name"], where, h5py.Group)
        values = self._need(sub, L.VALUES, out)
        inner = (layers, dim) if per_layer else (dim,)
        if tuple(values.shape[1:]) != inner:
            raise self.fail(f"dataset {out}/{L.VALUES}", f"has shape {values.shape}, but the set declares "
                                                         f"rows of {inner}")
        if spec["level"] == "document":
            if values.shape[0] != rows:
                raise self.fail(f"dataset {out}/{L.VALUES}", f"has {values.shape[0]:,} rows but the set has "
                                                             f"{rows:,} keys")
            return
        offsets = self._need(sub, L.OFFSETS, out)
        self._length(offsets, rows + 1, f"{out}/{L.OFFSETS}")
        first, last = int(offsets[0]), int(offsets[-1])
        if first != 0 or last != values.shape[0]:
            raise self.fail(f"dataset {out}/{L.OFFSETS}", f"runs from {first} to {last}, but {L.VALUES} has "
                                                         f"{values.shape[0]:,} token rows")
        if L.TOKENS in sub:
            self._length(self._need(sub, L.TOKENS, out), values.shape[0], f"{out}/{L.TOKENS}")

    def _input_table(self, group: Any, where: str) -> None:
        if not isinstance(group, h5py.Group):
            raise self.fail(where, "is not a group")
        keys = self._need(group, L.KEYS, where)
        rows = self._rows(group, where) if "rows" in group.attrs else keys.shape[0] if keys.shape else 0
        self._length(keys, rows, f"{where}/{L.KEYS}")
        for child in (L.TEXT, L.EMPTY, L.LINE):
            if child in group:
                self._length(self._need(group, child, where), rows, f"{where}/{child}")
        if L.COLUMNS in group:
            columns = self._need(group, L.COLUMNS, where, h5py.Group)
            for name in columns:
                self._length(
                    self._need(columns, name, f"{where}/{L.COLUMNS}", typed=False), rows, f"{where}/{L.COLUMNS}/{name}"
                )


def check_dtype(dtype: np.dtype[Any], what: str, fail: Fail, role: str | None = None) -> None:
    """Numbers, fixed-size bytes and UTF-8/ASCII strings only; and the dtype ``role`` (the
    dataset's place in the layout, such as ``values``) demands."""
    string = h5py.check_string_dtype(dtype)
    if dtype.kind == "O" and string is None:
        raise fail(what, f"has dtype {h5py.check_vlen_dtype(dtype) or dtype} (references or variable-length "
                         "arrays), which embedx never writes")
    if dtype.kind not in "biufSO" or dtype.fields is not None or dtype.subdtype is not None:
        raise fail(what, f"has dtype {dtype}, which embedx never writes")
    if role == L.VALUES and not (dtype.kind == "f" and dtype.itemsize in (2, 4, 8)):
        raise fail(what, f"has dtype {dtype}; feature values must be float16 or float32")
    if role == L.KEYS and dtype != np.dtype(L.KEY_DTYPE):
        raise fail(what, f"has dtype {dtype}; content keys are {L.KEY_DTYPE}")
    if role in INT_ROLES and not (dtype.kind in "iu" and (INT_ROLES[role] == 0 or dtype.itemsize == INT_ROLES[role])):
        raise fail(what, f"has dtype {dtype}; expected {'int64' if INT_ROLES[role] else 'integers'}")
    if role == L.EMPTY and dtype.kind != "b":
        raise fail(what, f"has dtype {dtype}; expected bool")
    if role in (L.TEXT, L.TOKENS) and string is None:
        raise fail(what, f"has dtype {dtype}; expected strings")


def parse_json_attr(value: Any, kind: type, fail: FailWhy) -> Any:
    """A JSON attribute (``config``, ``outputs``, ``columns``) as ``kind``, or the error ``fail`` builds."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise fail("is not UTF-8") from None
    if not isinstance(value, str):
        raise fail(f"is a {type(value).__name__}, expected JSON text")
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        raise fail("is not valid JSON") from None
    if not isinstance(parsed, kind):
        raise fail(f"holds a JSON {type(parsed).__name__}, expected a {'list' if kind is list else 'object'}")
    return parsed


def rows_attr(value: Any, fail: FailWhy) -> int:
    """The ``rows`` attribute as a sane non-negative integer."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise fail(f"is {value!r}, expected an integer")
    if not 0 <= int(value) <= MAX_ROWS:
        raise fail(f"is {int(value):,}, outside 0..{MAX_ROWS:,}")
    return int(value)


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


_VERIFIED: set[tuple[str, str]] = set()  # file states (path, inode, size, mtime) a child has verified


def file_state(path: Path, allowed_dir: Path | str | None, renamed_ok: bool = False) -> tuple[str, str] | None:
    """What identifies one version of a file (and the check asked): a rename or an edit in place changes it."""
    key = _state_key(path, allowed_dir, renamed_ok)  # the index and every file of its segment folder
    return None if key is None else (str(path.absolute()), key)


def is_verified(path: Path | str, allowed_dir: Path | str | None = None, renamed_ok: bool = False) -> bool:
    """Whether a child already verified this very version of ``path`` (the caller may skip its own check)."""
    return file_state(Path(path), allowed_dir, renamed_ok) in _VERIFIED


def verify_isolated(path: Path | str, allowed_dir: Path | str | None = None, timeout: float | None = None,
                    renamed_ok: bool = False) -> None:
    """Open and verify ``path`` in a child process first, so a file that makes libhdf5 hang or
    crash is refused with a message instead of taking embedx down. Raises :class:`StoreError`
    for a hang, a crash or a refusal; returns otherwise (other errors are left to the caller's
    own open, which words them). The limit is ``EMBEDX_VERIFY_TIMEOUT`` seconds (default 60)."""
    path = Path(path)
    state = file_state(path, allowed_dir, renamed_ok)
    if not hasattr(os, "fork") or state is None or state in _VERIFIED:
        return
    if _recorded(path, allowed_dir, renamed_ok):  # verified by an earlier process, and nothing changed since
        _VERIFIED.add(state)
        return
    limit = timeout if timeout is not None else float(os.environ.get("EMBEDX_VERIFY_TIMEOUT", "60"))
    if _single_threaded():
        outcome = _forked(path, allowed_dir, limit, renamed_ok)
        if outcome == "timeout" or outcome.startswith("signal"):  # confirm in a fresh interpreter before refusing
            outcome = _spawned(path, allowed_dir, limit, renamed_ok)
    else:
        outcome = _spawned(path, allowed_dir, limit, renamed_ok)
    if outcome == "timeout":
        raise StoreError(f"{path}: reading its HDF5 metadata did not finish within {limit:g} s, so the file is "
                         "damaged in a way that makes the HDF5 library loop; move it aside and re-run the extraction")
    if outcome.startswith("signal"):
        raise StoreError(f"{path}: its HDF5 metadata crashes the HDF5 library ({outcome}), so the file is damaged; "
                         "move it aside and re-run the extraction")
    if outcome.startswith("R"):
        raise StoreError(outcome[1:])
    if outcome == "K":
        _VERIFIED.add(state)
        record_verified(path, allowed_dir, renamed_ok)


# -- verification records: one per feature file, valid for exactly one state of it -----------------
#
# A record names the state it was made for: the index file's identity (device, inode, size,
# mtime_ns, ctime_ns) and that of its segment folder and every entry in it. Any edit, rename,
# replacement or added file changes one of these (ctime cannot be set back by a user), so a record
# never lets a changed file pass; it only spares an unchanged store its verification by every process.

RECORD_VERSION = "embedx-verified-2"


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_nlink]


def _state_key(path: Path, allowed_dir: Path | str | None, renamed_ok: bool) -> str | None:
    """A digest of everything verification depends on (``None``: cannot tell, so verify)."""
    import hashlib

    try:
        real = os.path.realpath(path)
        parts: list[object] = [RECORD_VERSION, real, _identity(os.stat(real)), str(allowed_dir), bool(renamed_ok)]
        if allowed_dir is not None:
            try:
                fd = os.open(allowed_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                parts.append(None)
            else:
                try:
                    parts.append(_identity(os.fstat(fd)))
                    for name in sorted(os.listdir(fd)):
                        parts.append([name, _identity(os.stat(name, dir_fd=fd, follow_symlinks=False))])
                finally:
                    os.close(fd)
    except OSError:
        return None
    return hashlib.sha256(json.dumps(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _record_name(path: Path, allowed_dir: Path | str | None, renamed_ok: bool) -> str:
    import hashlib

    what = json.dumps([os.path.realpath(path), str(allowed_dir), bool(renamed_ok)])
    return hashlib.sha256(what.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _records_folder(create: bool) -> int | None:
    from embedx.files.digests import cache_root

    folder = cache_root() / "verified"
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def _recorded(path: Path, allowed_dir: Path | str | None, renamed_ok: bool) -> bool:
    if os.environ.get("EMBEDX_VERIFY_RECORDS", "1") == "0":
        return False
    key = _state_key(path, allowed_dir, renamed_ok)
    fd = _records_folder(create=False) if key else None
    if fd is None:
        return False
    try:
        rfd = os.open(_record_name(path, allowed_dir, renamed_ok), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK,
                      dir_fd=fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        if not stat.S_ISREG(os.fstat(rfd).st_mode):
            return False
        return os.read(rfd, 128).decode("ascii", "replace").strip() == key
    finally:
        os.close(rfd)


def record_verified(path: Path | str, allowed_dir: Path | str | None = None, renamed_ok: bool = False) -> None:
    """Record that ``path`` in its present state passed verification (best effort: a failure only costs a re-check).

    Called after a child verified it, and by the writer for an index it has just written from
    checked parts (:mod:`embedx.store.transaction`)."""
    from embedx.files.atomic import atomic_write_at

    path = Path(path)
    key = _state_key(path, allowed_dir, renamed_ok)
    fd = _records_folder(create=True) if key else None
    if fd is None:
        return
    try:
        atomic_write_at(fd, _record_name(path, allowed_dir, renamed_ok), key.encode("ascii"))  # type: ignore[union-attr]
    except OSError:
        pass
    finally:
        os.close(fd)
    state = file_state(path, allowed_dir, renamed_ok)
    if state is not None:
        _VERIFIED.add(state)


def _child_verify(path: Path, allowed_dir: Path | str | None, renamed_ok: bool = False) -> str:
    try:
        with h5py.File(path, "r") as handle:
            dict(handle.attrs)
            verify_structure(handle, path, allowed_dir, renamed_ok)
    except StoreError as exc:
        return "R" + str(exc)
    except BaseException:  # noqa: BLE001 - the parent's own open reports ordinary errors
        return "E"
    return "K"


def _single_threaded() -> bool:
    """Whether a fork is safe: no other thread, Python's or a native library's, can hold a lock the child needs."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc (macOS): native threads cannot be counted, so never fork
        return False


def _forked(path: Path, allowed_dir: Path | str | None, limit: float, renamed_ok: bool = False) -> str:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: verify, report, exit without running the parent's cleanup
        try:
            os.close(read_end)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # a crash report of the child is not the user's
            faulthandler.disable()
            os.write(write_end, _child_verify(path, allowed_dir, renamed_ok).encode("utf-8", "replace")[:60000])
        finally:
            os._exit(0)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([read_end], [], [], left)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        pid = 0
        if os.WIFSIGNALED(status):
            return f"signal {os.WTERMSIG(status)}"
        return b"".join(chunks).decode("utf-8", "replace") or "E"
    finally:
        os.close(read_end)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _spawned(path: Path, allowed_dir: Path | str | None, limit: float, renamed_ok: bool = False) -> str:
    code = ("import sys; from pathlib import Path; from embedx.store.verify import _child_verify; "
            "sys.stdout.write(_child_verify(Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3] == '1'))")
    try:
        child = subprocess.run(
            [sys.executable, "-c", code, str(path), str(allowed_dir or ""), "1" if renamed_ok else "0"],
            capture_output=True,
            timeout=limit + 5,
        )  # + interpreter start
    except subprocess.TimeoutExpired:
        return "timeout"
    if child.returncode < 0:
        return f"signal {-child.returncode}"
    return child.stdout.decode("utf-8", "replace") or "E"
