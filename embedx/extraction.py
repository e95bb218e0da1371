"""The extraction pipeline: dedupe, skip what is cached, batch by length, compute, validate, stage, commit."""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedx.embedder import Embedder
from embedx.engines import check_engine, import_ray
from embedx.errors import EmbedderOutputError, EmbedderUnavailable, EmbedxError, InputError, OptionError, StoreError
from embedx.input_fingerprint import InputFingerprint, input_fingerprint
from embedx.inputs import InputSpec, Record, RecordStream, iter_records
from embedx.keys import KEY_BYTES, config_hash
from embedx.options import option_specs
from embedx.progress import progress_bar
from embedx.registry import Registry, get_registry
from embedx.store import layout as L
from embedx.store.catalog import Catalog, SetState
from embedx.store.commit import commit
from embedx.store.coverage import covered_counts, record_coverage
from embedx.store.faults import resource_error
from embedx.store.input_table import InputTableWriter, is_empty
from embedx.store.keyindex import KEY, KeyIndex, KeySet, binary_to_hex
from embedx.store.lock import WriterLock, resolve_output
from embedx.store.segment import SegmentInfo, now, read_key_index
from embedx.store.upgrade import prepare
from embedx.store.writer import SegmentWriter
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
    notes: list[str] = field(default_factory=list)  # what recovery set aside or upgraded
    input_read: bool = True  # False: a fully cached re-run answered from the index (embedx.store.coverage)

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
    engine: str = "local"  # or "ray": compute on a pool of Ray actors (embedx.engines); checks and writes stay here
    workers: int | None = None  # Ray actors (default: as many as the cluster's CPUs, or GPUs / gpus_per_worker)
    ray_address: str | None = None  # join this Ray cluster ("auto", "ray://host:10001"); default: start a local one
    gpus_per_worker: float = 0.0


def extract_file(spec: InputSpec, settings: ExtractSettings, name: str | None = None,
                 registry: Registry | None = None) -> ExtractReport:
    """Extract features for every text of an input file into ``settings.path``.

    The input is read only once the writer lock is held, and then a chunk at a time.
    """
    def open_records() -> tuple[RecordStream, list[str]]:
        stream = iter_records(spec)
        return stream, stream.columns

    input_name = name or spec.default_name

    def fingerprint() -> InputFingerprint | None:
        return input_fingerprint(spec.path, format=spec.resolved_format, text_field=spec.text_field,
                                 encoding_errors=spec.encoding_errors, empty=settings.empty,
                                 store_text=settings.store_text, input_name=L.safe_name(input_name))

    return run(open_records, settings, input_name, spec.source, registry, fingerprint)


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
    return run(lambda: (records, list(columns)), ExtractSettings(embedder, path, **settings), name, "<python>",
               registry)


CHUNK_ROWS = 8192  # input rows read, deduplicated, embedded and written per step
CHUNK_BYTES = 16 << 20  # ... or fewer, when their text is this long


def run(open_records: Callable[[], tuple[Iterable[Record], list[str]]], settings: ExtractSettings,
        input_name: str | None, source: str, registry: Registry | None = None,
        fingerprint: Callable[[], InputFingerprint | None] | None = None) -> ExtractReport:
    """The pipeline: lock, recover, then per chunk of input: dedupe, skip what is cached, embed, stage; commit.

    With ``fingerprint`` (a regular input file), a re-run whose input and set the index records
    as fully covered is answered from the index without reading the input.
    """
    started = time.perf_counter()
    if settings.dtype not in DTYPES:
        raise OptionError(f"--dtype {settings.dtype!r}: choose {' or '.join(DTYPES)}")
    if settings.compression not in COMPRESSIONS:
        raise OptionError(f"--compression {settings.compression!r}: choose gzip or lzf")
    if settings.empty not in ("keep", "skip", "error"):
        raise OptionError(f"--empty {settings.empty!r}: choose keep, skip or error")
    check_engine(settings.engine, settings.workers, settings.gpus_per_worker, settings.ray_address)
    if settings.engine == "ray":
        import_ray()  # without Ray: one line with the install command, before any input is read
    registry = registry or get_registry()
    embedder, config, requested, plugin = _build(registry, settings)
    chash = config_hash(config)
    set_name = L.set_name(settings.embedder, chash)
    try:
        path = resolve_output(settings.path)
    except StoreError as exc:
        raise InputError(str(exc)) from None

    with WriterLock(path):  # before reading any input: a second writer is refused at once
        catalog = prepare(path)
        try:
            catalog.directory.mkdir(exist_ok=True)
        except OSError as exc:
            raise resource_error(exc, catalog.directory) from None
        identity = fingerprint() if fingerprint is not None and input_name is not None else None
        if identity is not None:
            counts = covered_counts(catalog, L.safe_name(input_name), set_name, chash, identity.value)
            if counts is not None:
                return ExtractReport(
                    path=str(path), set_name=set_name, embedder=settings.embedder, config_hash=chash,
                    input_name=input_name, rows=counts["rows"], unique=counts["unique"], cached=counts["unique"],
                    computed=0, empty=counts["empty"], skipped_empty=counts["skipped_empty"], truncated_computed=0,
                    truncated_input=counts["truncated_input"], seconds_total=time.perf_counter() - started,
                    seconds_compute=0.0, seconds_staging=0.0, seconds_commit=0.0, input_read=False)
        state = catalog.sets.get(set_name)
        shapes = _shapes(embedder, requested, state.meta["outputs"] if state else None)
        index, truncated_keys = _key_index(catalog, set_name)
        meta = {"embedder": settings.embedder, "plugin": plugin, "config_hash": chash, "config": config,
                "dtype": settings.dtype, "compression": settings.compression}
        stats = _Stats()
        writer: SegmentWriter | None = None
        table: InputTableWriter | None = None
        failure: BaseException | None = None
        records: Iterable[Record] | None = None
        engine = None
        try:
            records, columns = open_records()
            if input_name is not None:
                table = InputTableWriter(catalog.directory, L.safe_name(input_name), catalog.take_seq(), source,
                                         settings.store_text, columns)
            seen = KeySet()
            checker: BatchChecker | None = None
            batch_size = settings.batch_size or type(embedder).batch_size
            total = len(records) if isinstance(records, list) else None
            with progress_bar(f"{settings.embedder}", total, settings.progress) as advance:
                for chunk in _chunks(records):
                    chunk, empty = _apply_empty_policy(chunk, settings.empty, source, stats)
                    binary, hexkeys = _keys([r.text for r in chunk])
                    if table is not None:
                        table.append(chunk, hexkeys, empty)
                    stats.rows += len(chunk)
                    todo = _new_rows(binary, seen, index, stats)
                    if not len(todo):
                        stats.truncated_input += int(truncated_keys.contains(binary).sum())
                        advance(len(chunk))
                        continue
                    if checker is None:
                        _check_available(embedder, settings.embedder, plugin)
                        if settings.engine == "ray":
                            engine = _ray_engine(registry, settings, requested, plugin, embedder)
                        else:
                            _load(embedder, settings.embedder, plugin)
                        _refresh_shapes(embedder, shapes)
                        checker = BatchChecker(settings.embedder, plugin, shapes, np.dtype(settings.dtype))
                        bases = {s.name: state.tokens(s.name) if state else 0 for s in shapes}
                        writer = SegmentWriter(catalog.directory, set_name,
                                               lambda: meta | {"outputs": [s.as_dict() for s in shapes]},
                                               catalog.take_seq, bases, checkpoint_rows=settings.checkpoint_rows)
                    todo = sorted(todo.tolist(), key=lambda i: -len(chunk[i].text))
                    batches = []
                    for start in range(0, len(todo), batch_size):
                        rows = todo[start:start + batch_size]
                        stats.batches += 1
                        lines = sorted(chunk[i].line for i in rows)
                        where = f"batch {stats.batches} ({len(rows)} texts, input lines {_span(lines)} of {source})"
                        batches.append((rows, [chunk[i].text for i in rows], where))
                    if engine is None:
                        def compute(texts: list[str], where: str) -> Any:
                            return _call(embedder, texts, where, settings.embedder, plugin)
                    else:  # the pool computes ahead; results come back in batch order
                        compute = _remote(engine, ((texts, where) for _, texts, where in batches), shapes)
                    for rows, texts, where in batches:
                        truncated = embed_batch(compute, texts, where, checker, stats, writer, hexkeys[rows])
                        truncated_keys.add(binary[rows][truncated > 0])
                    stats.truncated_input += int(truncated_keys.contains(binary).sum())
                    advance(len(chunk))
            if table is not None:
                finished = table.finish()
                committed = catalog.inputs.get(finished.name)
                if committed is not None and committed.meta.get("digest") == finished.meta["digest"]:
                    for piece in [*finished.pieces, finished.final]:  # the same table: keep the old one
                        (catalog.directory / piece.file).unlink(missing_ok=True)
                else:
                    catalog.pending_inputs[finished.name] = finished
        except BaseException as exc:
            failure = exc
        finally:
            if records is not None and hasattr(records, "close"):
                records.close()
            if engine is not None:
                engine.close(drain=failure is None)
        if writer is not None:
            try:
                writer.close()
            except BaseException as exc:
                failure = failure or exc
            stats.seconds_staging = writer.seconds_writing
            _add_pending(catalog, set_name, meta, shapes, writer.written)
        if failure is None and table is not None and identity is not None and identity.unchanged():
            _record_coverage(catalog, L.safe_name(input_name), set_name, identity.value, stats)
        t_commit = time.perf_counter()
        try:
            commit(catalog)  # also after a failure: finished batches are kept, not recomputed
        except BaseException as exc:
            if failure is None:
                raise
            print(f"embedx: could not commit the finished batches ({exc}); the next run commits them",
                  file=sys.stderr)
        stats.seconds_commit = time.perf_counter() - t_commit
        if failure is not None:
            raise failure

    return ExtractReport(
        path=str(path), set_name=set_name, embedder=settings.embedder, config_hash=chash, input_name=input_name,
        rows=stats.rows, unique=stats.unique, cached=stats.unique - stats.computed, computed=stats.computed,
        empty=stats.empty, skipped_empty=stats.skipped, truncated_computed=stats.truncated,
        truncated_input=stats.truncated_input, seconds_total=time.perf_counter() - started,
        seconds_compute=stats.seconds_compute, seconds_staging=stats.seconds_staging,
        seconds_commit=stats.seconds_commit, notes=catalog.messages)


@dataclass
class _Stats:
    rows: int = 0
    unique: int = 0
    computed: int = 0
    empty: int = 0
    skipped: int = 0
    truncated: int = 0
    truncated_input: int = 0
    batches: int = 0
    seconds_compute: float = 0.0
    seconds_staging: float = 0.0
    seconds_commit: float = 0.0


def embed_batch(compute: Callable[[list[str], str], Any], texts: list[str], where: str, checker: BatchChecker,
                stats: _Stats, writer: SegmentWriter, keys: np.ndarray) -> np.ndarray:
    """Turn one batch of texts into checked arrays and hand them to the writer (the one place that embeds).

    Returns the tokens ``max_length`` cut from each text."""
    t0 = time.perf_counter()
    result = compute(texts, where)  # this process, or the Ray pool's result for this batch: checked the same way
    arrays, truncated = checker.check(result, len(texts), where)
    stats.seconds_compute += time.perf_counter() - t0
    stats.truncated += int((truncated > 0).sum())
    stats.computed += len(texts)
    arrays["keys"] = np.asarray(keys, dtype=L.KEY_DTYPE)
    arrays["truncated"] = truncated
    writer.put(arrays)
    return truncated


def _ray_engine(registry: Registry, settings: ExtractSettings, requested: list[str], plugin: str,
               embedder: Embedder) -> Any:
    """Start the Ray pool; its workers must compute what this process keys the cache with."""
    from embedx.engines.ray_engine import RayEngine, fingerprint

    options = dict(settings.options or {})
    if settings.max_length is not None:
        options["max_length"] = settings.max_length
    engine = RayEngine(settings.embedder, options, requested, plugin=plugin, workers=settings.workers,
                       address=settings.ray_address, gpus_per_worker=settings.gpus_per_worker,
                       expected=fingerprint(embedder, registry.entry(settings.embedder).cls.versioned))
    engine.start()
    return engine


def _remote(engine: Any, batches: Iterator[tuple[list[str], str]],
            shapes: list[OutputShape]) -> Callable[[list[str], str], Any]:
    results = engine.map(batches)

    def compute(texts: list[str], where: str) -> Any:
        result = next(results)
        _refresh_shapes(engine, shapes)  # dims the loaded model reports, as after a local load()
        return result

    return compute


def _chunks(records: Iterable[Record]) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    size = 0
    for record in records:
        chunk.append(record)
        size += len(record.text)
        if len(chunk) >= CHUNK_ROWS or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _keys(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Binary (``S16``) and hex (``S32``) content keys of ``texts``."""
    digests = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest() for t in texts]
    binary = np.frombuffer(b"".join(digests), dtype=KEY).copy() if digests else np.zeros(0, dtype=KEY)
    return binary, binary_to_hex(binary)


def _new_rows(binary: np.ndarray, seen: KeySet, index: KeyIndex, stats: _Stats) -> np.ndarray:
    """Positions in the chunk of texts neither stored nor met earlier in this input (first occurrence)."""
    if not len(binary):
        return np.zeros(0, dtype=np.int64)
    unique, first = np.unique(binary, return_index=True)
    fresh = ~seen.contains(unique)
    unique, first = unique[fresh], first[fresh]
    seen.add(unique)
    stats.unique += len(unique)
    return np.sort(first[~index.contains(unique)])


def _key_index(catalog: Catalog, set_name: str) -> tuple[KeyIndex, KeySet]:
    """Lookup of the set's stored keys, and the set of those whose text ``max_length`` cut."""
    index, truncated = KeyIndex(), KeySet()
    state = catalog.sets.get(set_name)
    base = 0
    for info in state.all if state else []:
        keys, rows, cut_tokens = read_key_index(catalog.directory / info.file, info.rows)
        index.add(keys, rows, base)
        cut = cut_tokens[rows] > 0
        if cut.any():
            truncated.add(np.ascontiguousarray(keys[cut]).view(KEY).reshape(-1))
        base += info.rows
    return index, truncated


def _record_coverage(catalog: Catalog, name: str, set_name: str, fingerprint: str, stats: _Stats) -> None:
    """Note in the index that this input, as fingerprinted, is fully covered by the set (the next run reads nothing)."""
    table = catalog.pending_inputs.get(name) or catalog.inputs.get(name)
    if table is None:
        return
    counts = {"rows": stats.rows, "unique": stats.unique, "empty": stats.empty, "skipped_empty": stats.skipped,
              "truncated_input": stats.truncated_input}
    updated = record_coverage(catalog, table, set_name, fingerprint, counts)
    if updated is not table:
        catalog.pending_inputs[name] = updated


def _add_pending(catalog: Catalog, set_name: str, meta: dict[str, Any], shapes: list[OutputShape],
                 written: list[SegmentInfo]) -> None:
    if not written:
        return
    state = catalog.sets.get(set_name)
    if state is None:
        state = catalog.sets[set_name] = SetState(set_name, meta | {"outputs": [s.as_dict() for s in shapes]},
                                                  created=now())
    state.pending.extend(written)


def _apply_empty_policy(records: list[Record], policy: str, source: str,
                        stats: _Stats) -> tuple[list[Record], np.ndarray]:
    """The chunk's records as the policy keeps them, and which of those are empty."""
    empty = np.array([is_empty(r) for r in records], dtype=bool)
    if not empty.any():
        return records, empty
    if policy == "error":
        first = records[int(np.flatnonzero(empty)[0])]
        raise InputError(f"{source}, line {first.line}: empty or whitespace-only text; "
                         "pass --empty keep or --empty skip")
    if policy == "skip":
        stats.skipped += int(empty.sum())
        return [r for r, e in zip(records, empty, strict=True) if not e], np.zeros(len(records) - int(empty.sum()), bool)
    stats.empty += int(empty.sum())
    return records, empty


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


def _check_available(embedder: Embedder, embedder_id: str, plugin: str) -> None:
    """Refuse at once, before any import or load, when the embedder says it cannot run here."""
    try:
        reason = embedder.unavailable_reason()
    except EmbedxError:
        raise
    except Exception as exc:  # a broken check is the plugin's failure, named like a failed load
        raise EmbedderUnavailable(f"embedder {embedder_id!r} (plugin {plugin!r}) could not check whether it can "
                                  f"run here: {type(exc).__name__}: {exc}") from exc
    if reason:
        raise EmbedderUnavailable(f"embedder {embedder_id!r} (plugin {plugin!r}) cannot run here: {reason}")


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
