"""The extraction pipeline: dedupe, skip what is cached, batch by length, compute, validate, stage, commit."""

from __future__ import annotations

import importlib.metadata
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedx.embedder import Embedder
from embedx.errors import EmbedderOutputError, EmbedderUnavailable, EmbedxError, InputError, OptionError
from embedx.inputs import InputSpec, Record, read_records
from embedx.keys import config_hash, content_key
from embedx.options import option_specs
from embedx.progress import progress_bar
from embedx.registry import Registry, get_registry
from embedx.store import layout as L
from embedx.store.commit import commit
from embedx.store.input_table import input_table_arrays
from embedx.store.lock import WriterLock
from embedx.store.open import open_checked
from embedx.store.staging import Staging
from embedx.store.writer import ShardWriter
from embedx.validate import BatchChecker, OutputShape

EmptyPolicy = Literal["keep", "skip", "error"]
DTYPES = ("float32", "float16")
COMPRESSIONS = (None, "gzip", "lzf")


@dataclass
class ExtractReport:
    """What one extraction did, for the CLI summary and for callers."""

    path: str
    set_name: str
    embedder: str
    config_hash: str
    input_name: str | None
    rows: int
    unique: int
    cached: int
    computed: int
    empty: int
    skipped_empty: int
    truncated_computed: int
    truncated_input: int
    seconds_total: float
    seconds_compute: float
    seconds_staging: float
    seconds_commit: float

    @property
    def texts_per_second(self) -> float:
        return self.computed / self.seconds_compute if self.seconds_compute > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"texts_per_second": self.texts_per_second}


@dataclass
class ExtractSettings:
    """Everything about an extraction except the texts."""

    embedder: str
    path: str | Path
    options: dict[str, Any] | None = None
    outputs: Sequence[str] | None = None
    batch_size: int | None = None
    max_length: int | None = None
    dtype: str = "float32"
    compression: str | None = None
    empty: EmptyPolicy = "keep"
    store_text: bool = True
    progress: bool = False
    checkpoint_rows: int = 4096


def extract_file(spec: InputSpec, settings: ExtractSettings, name: str | None = None,
                 registry: Registry | None = None) -> ExtractReport:
    """Extract features for every text of an input file into ``settings.path``."""
    records, columns = read_records(spec)
    return run(records, columns, settings, name or spec.default_name, spec.source, registry)


def extract(texts: Sequence[str], embedder: str, path: str | Path, *, name: str | None = None,
            columns: dict[str, Sequence[Any]] | None = None, registry: Registry | None = None,
            **settings: Any) -> ExtractReport:
    """Extract features for ``texts`` into the feature file ``path``; see :class:`ExtractSettings`.

    With ``name``, the texts (and ``columns``, one value per text) are also stored as an input
    table, so features can later be read back in this order by name.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    columns = columns or {}
    for column, values in columns.items():
        if len(values) != len(texts):
            raise InputError(f"column {column!r} has {len(values)} values for {len(texts)} texts")
    records = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {i} is {type(text).__name__}, expected a string")
        records.append(Record(text, i + 1, {c: v[i] for c, v in columns.items()}))
    return run(records, list(columns), ExtractSettings(embedder, path, **settings), name, "<python>", registry)


def run(records: list[Record], columns: list[str], settings: ExtractSettings, input_name: str | None,
        source: str, registry: Registry | None = None) -> ExtractReport:
    started = time.perf_counter()
    path = Path(settings.path)
    records, empty, skipped = _apply_empty_policy(records, settings.empty, source)
    if settings.dtype not in DTYPES:
        raise OptionError(f"--dtype {settings.dtype!r}: choose {' or '.join(DTYPES)}")
    if settings.compression not in COMPRESSIONS:
        raise OptionError(f"--compression {settings.compression!r}: choose gzip or lzf")
    registry = registry or get_registry()
    embedder, config, requested, plugin = _build(registry, settings)
    chash = config_hash(config)
    set_name = L.set_name(settings.embedder, chash)
    if not path.parent.exists():
        raise InputError(f"{path.parent}: no such directory for the output file")

    with WriterLock(path):
        staging = Staging(path)
        staging.remove_tmp_files()
        for stale in path.parent.glob(f".{path.name}.tmp-*"):
            stale.unlink(missing_ok=True)
        stored_keys, stored_shapes = _stored(path, set_name)
        staged_meta = staging.set_meta(set_name)
        shapes = _shapes(embedder, requested, stored_shapes or (staged_meta or {}).get("outputs"))
        done = stored_keys | staging.staged_keys(set_name)

        keys = [content_key(r.text).encode("ascii") for r in records]
        todo: dict[bytes, tuple[str, int]] = {}
        for key, record in zip(keys, records, strict=False):
            if key not in done and key not in todo:
                todo[key] = (record.text, record.line)
        unique = len(set(keys))
        order = sorted(todo, key=lambda k: -len(todo[k][0]))
        meta = {"embedder": settings.embedder, "plugin": plugin, "config_hash": chash, "config": config,
                "dtype": settings.dtype, "compression": settings.compression}
        compute_seconds, truncated_computed, writer, failure = 0.0, 0, None, None
        try:
            if order:
                _load(embedder, settings.embedder, plugin)
                _refresh_shapes(embedder, shapes)
                checker = BatchChecker(settings.embedder, plugin, shapes, np.dtype(settings.dtype))
                writer = ShardWriter(staging, set_name, lambda: meta | {"outputs": [s.as_dict() for s in shapes]},
                                     checkpoint_rows=settings.checkpoint_rows)
                batch_size = settings.batch_size or type(embedder).batch_size
                with progress_bar(f"{settings.embedder}", len(order), settings.progress) as advance:
                    for number, start in enumerate(range(0, len(order), batch_size), start=1):
                        batch_keys = order[start:start + batch_size]
                        texts = [todo[k][0] for k in batch_keys]
                        lines = sorted(todo[k][1] for k in batch_keys)
                        where = f"batch {number} ({len(texts)} texts, input lines {_span(lines)} of {source})"
                        t0 = time.perf_counter()
                        result = _call(embedder, texts, where, settings.embedder, plugin)
                        arrays, truncated = checker.check(result, len(texts), where)
                        compute_seconds += time.perf_counter() - t0
                        truncated_computed += int((truncated > 0).sum())
                        arrays["keys"] = np.array(batch_keys, dtype=L.KEY_DTYPE)
                        arrays["truncated"] = truncated
                        writer.put(arrays)
                        advance(len(texts))
        except BaseException as exc:
            failure = exc
        staging_seconds = 0.0
        if writer is not None:
            try:
                writer.close()
            except BaseException as exc:
                failure = failure or exc
            staging_seconds = writer.seconds_writing
        if failure is None and input_name is not None:
            meta_in, arrays_in = input_table_arrays(records, keys, columns, source, settings.store_text)
            if meta_in["digest"] != _stored_input_digest(path, L.safe_name(input_name)):
                staging.write_input(L.safe_name(input_name), meta_in, arrays_in)
        t_commit = time.perf_counter()
        commit(path, staging)  # also after a failure: finished batches are kept, not recomputed
        commit_seconds = time.perf_counter() - t_commit
        if failure is not None:
            raise failure

    return ExtractReport(
        path=str(path), set_name=set_name, embedder=settings.embedder, config_hash=chash, input_name=input_name,
        rows=len(records), unique=unique, cached=unique - len(order), computed=len(order), empty=empty,
        skipped_empty=skipped, truncated_computed=truncated_computed,
        truncated_input=_truncated_in_input(path, set_name, keys), seconds_total=time.perf_counter() - started,
        seconds_compute=compute_seconds, seconds_staging=staging_seconds, seconds_commit=commit_seconds)


def _apply_empty_policy(records: list[Record], policy: str, source: str) -> tuple[list[Record], int, int]:
    empty = [r for r in records if not r.text.strip()]
    if not empty:
        return records, 0, 0
    if policy == "error":
        raise InputError(f"{source}, line {empty[0].line}: empty or whitespace-only text "
                         f"({len(empty)} such lines); pass --empty keep or --empty skip")
    if policy == "skip":
        return [r for r in records if r.text.strip()], 0, len(empty)
    if policy != "keep":
        raise OptionError(f"--empty {policy!r}: choose keep, skip or error")
    return records, len(empty), 0


def _build(registry: Registry, settings: ExtractSettings) -> tuple[Embedder, dict[str, Any], list[str], str]:
    entry = registry.entry(settings.embedder)
    options = dict(settings.options or {})
    if settings.max_length is not None:
        if "max_length" not in option_specs(entry.cls):
            raise OptionError(f"embedder {settings.embedder!r} has no max_length option; drop --max-length")
        options["max_length"] = settings.max_length
    embedder, resolved = registry.create(settings.embedder, options)
    names = [o.name for o in entry.cls.outputs]
    requested = list(settings.outputs or entry.cls.default_outputs or names)
    for name in requested:
        if name not in names:
            raise OptionError(f"embedder {settings.embedder!r} has no output {name!r} (outputs: {', '.join(names)})")
    embedder.requested_outputs = tuple(requested)
    versions = {}
    for dist in entry.cls.versioned:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    keyed = {k: v for k, v in resolved.items() if k not in entry.cls.unkeyed_options}
    config = {"embedder": settings.embedder, "options": keyed, "identity": embedder.identity(),
              "versions": versions, "outputs": requested, "dtype": settings.dtype}
    unkeyed = {k: v for k, v in resolved.items() if k in entry.cls.unkeyed_options}
    if unkeyed:  # recorded for people, left out of the hash (see Embedder.unkeyed_options)
        config["unkeyed_options"] = unkeyed
    return embedder, config, requested, entry.plugin


def _stored(path: Path, set_name: str) -> tuple[set[bytes], list[dict] | None]:
    if not path.exists():
        return set(), None
    with open_checked(path) as handle:
        sets = handle[L.SETS]
        if set_name not in sets:
            return set(), None
        return set(sets[set_name][L.KEYS][:].tolist()), json.loads(sets[set_name].attrs["outputs"])


def _stored_input_digest(path: Path, name: str) -> str | None:
    if not path.exists():
        return None
    with open_checked(path) as handle:
        group = handle[L.INPUTS].get(name)
        return None if group is None else str(group.attrs.get("digest", ""))


def _shapes(embedder: Embedder, requested: list[str], known: list[dict] | None) -> list[OutputShape]:
    specs = {o.name: o for o in embedder.output_specs()}
    known_by_name = {o["name"]: o for o in known or []}
    shapes = []
    for name in requested:
        spec = specs[name]
        shape = OutputShape(name, spec.level, spec.dim, spec.per_layer, spec.layers)
        if name in known_by_name and known_by_name[name].get("dim"):
            shape.dim = known_by_name[name]["dim"]
            shape.layers = known_by_name[name].get("layers")
        shapes.append(shape)
    return shapes


def _refresh_shapes(embedder: Embedder, shapes: list[OutputShape]) -> None:
    specs = {o.name: o for o in embedder.output_specs()}
    for shape in shapes:
        spec = specs.get(shape.name)
        if spec is not None:
            shape.dim = shape.dim or spec.dim
            shape.layers = shape.layers or spec.layers


def _load(embedder: Embedder, embedder_id: str, plugin: str) -> None:
    try:
        embedder.load()
    except EmbedxError:
        raise
    except Exception as exc:  # a plugin's own failure, named, instead of its traceback
        raise EmbedderUnavailable(f"embedder {embedder_id!r} (plugin {plugin!r}) could not load: "
                                  f"{type(exc).__name__}: {exc}") from exc


def _call(embedder: Embedder, texts: list[str], where: str, embedder_id: str, plugin: str) -> Any:
    try:
        return embedder.embed_batch(texts)
    except EmbedxError:
        raise
    except Exception as exc:
        raise EmbedderOutputError(f"embedder {embedder_id!r} (plugin {plugin!r}) raised on {where}: "
                                  f"{type(exc).__name__}: {exc}; nothing from this batch was saved") from exc


def _span(lines: list[int]) -> str:
    if len(lines) <= 6:
        return ", ".join(map(str, lines))
    return f"{', '.join(map(str, lines[:5]))}, ... {lines[-1]}"


def _truncated_in_input(path: Path, set_name: str, keys: list[bytes]) -> int:
    if not keys or not path.exists():
        return 0
    with open_checked(path) as handle:
        if set_name not in handle[L.SETS]:
            return 0
        group = handle[L.SETS][set_name]
        truncated = dict(zip(group[L.KEYS][:].tolist(), group[L.TRUNCATED][:].tolist(), strict=False))
    return sum(1 for k in keys if truncated.get(k, 0) > 0)

