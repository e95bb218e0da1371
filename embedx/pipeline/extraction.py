"""The extraction pipeline: dedupe, skip what is cached, batch by length, compute, validate, stage, commit."""

from __future__ import annotations

import importlib.metadata
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedx.contract.embedder import Embedder
from embedx.contract.errors import (
    EmbedderOutputError,
    EmbedderUnavailable,
    EmbedxError,
    InputError,
    OptionError,
    StoreError,
)
from embedx.contract.options import option_specs
from embedx.inputs import InputSpec, Record, RecordStream, iter_records
from embedx.pipeline.engines import check_engine, import_ray
from embedx.pipeline.input_fingerprint import InputFingerprint, input_fingerprint
from embedx.pipeline.keys import config_hash, content_keys
from embedx.pipeline.output_checks import BatchChecker, OutputShape
from embedx.pipeline.progress import progress_bar
from embedx.registry import Registry, get_registry
from embedx.store.transaction import KEY_DTYPE, KeySet, SegmentRefused, Transaction, binary_to_hex, is_empty, safe_name
from embedx.store.transaction import set_name as set_name_of
from embedx.store.transaction import writer as store_writer
from embedx.wording import plural

EmptyPolicy = Literal["keep", "skip", "error"]
DTYPES = ("float32", "float16")
COMPRESSIONS = (None, "gzip", "lzf")
EMPTY_POLICIES = ("keep", "skip", "error")

log = logging.getLogger(__name__)


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
    # or "ray": compute on a pool of Ray actors (embedx.pipeline.engines); checks and writes stay here
    engine: str = "local"
    workers: int | None = None  # Ray actors (default: as many as the cluster's CPUs, or GPUs / gpus_per_worker)
    ray_address: str | None = None  # join this Ray cluster ("auto", "ray://host:10001"); default: start a local one
    gpus_per_worker: float = 0.0
    # --engine ray: the actors write each batch's segment into FILE.h5.segments/ (a folder every worker and the
    # driver share); the driver checks each one and commits only the index (embedx.store.adopt)
    write_on_workers: bool = False

    def validate(self) -> None:
        """The one check of the settings (the CLI and the API both land here), before any input is read."""
        if self.dtype not in DTYPES:
            raise OptionError(f"--dtype {self.dtype!r}: choose {' or '.join(DTYPES)}")
        if self.compression not in COMPRESSIONS:
            raise OptionError(f"--compression {self.compression!r}: choose gzip or lzf")
        if self.empty not in EMPTY_POLICIES:
            raise OptionError(f"--empty {self.empty!r}: choose keep, skip or error")
        check_engine(self.engine, self.workers, self.gpus_per_worker, self.ray_address)
        if self.write_on_workers and self.engine != "ray":
            raise OptionError("--write-on-workers only applies to --engine ray")
        if self.engine == "ray":
            import_ray()  # without Ray: one line with the install command, before any input is read


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
                                 store_text=settings.store_text, input_name=safe_name(input_name))

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
    """The pipeline, in named stages: resolve; open the store's transaction (the lock, then recovery);
    answer a fully covered re-run from the index; per chunk of input: dedupe, look up, compute on the
    engine, check, append; then stage the input table and commit.

    With ``fingerprint`` (a regular input file), a re-run whose input and set the index records
    as fully covered is answered from the index without reading the input.
    """
    started = time.perf_counter()
    settings.validate()
    registry = registry or get_registry()
    resolved = resolve_embedder(registry, settings.embedder, settings.options, settings.outputs,
                                settings.max_length, settings.dtype)
    set_name = set_name_of(settings.embedder, resolved.config_hash)
    stats = _Stats()
    try:
        transaction = store_writer(settings.path)
    except StoreError as exc:
        raise InputError(str(exc)) from None
    with transaction as tx:  # before reading any input: a second writer is refused at once
        identity = fingerprint() if fingerprint is not None and input_name is not None else None
        if identity is not None:
            counts = tx.covered(input_name, set_name, resolved.config_hash, identity.value)  # type: ignore[arg-type]
            if counts is not None:
                return ExtractReport(
                    path=str(tx.path), set_name=set_name, embedder=settings.embedder,
                    config_hash=resolved.config_hash, input_name=input_name, rows=counts["rows"],
                    unique=counts["unique"], cached=counts["unique"], computed=0, empty=counts["empty"],
                    skipped_empty=counts["skipped_empty"], truncated_computed=0,
                    truncated_input=counts["truncated_input"], seconds_total=time.perf_counter() - started,
                    seconds_compute=0.0, seconds_staging=0.0, seconds_commit=0.0, input_read=False)
        pipeline = _Pipeline(tx, settings, resolved, registry, set_name, source, stats)
        failure: BaseException | None = None
        try:
            pipeline.feed(open_records, input_name)
        except BaseException as exc:
            failure = exc
        finally:
            pipeline.close(failure)
        try:
            tx.close_set()
        except BaseException as exc:
            failure = failure or exc
        stats.seconds_staging = tx.seconds_writing
        if failure is None and input_name is not None and identity is not None and identity.unchanged():
            tx.record_coverage(input_name, set_name, identity.value, stats.coverage())
        try:
            # also after a failure: finished batches are kept, not recomputed. Segments workers wrote are
            # few and large (one per group of batches) and are committed as written, not merged again.
            stats.seconds_commit = tx.commit(merge=not settings.write_on_workers)
        except BaseException as exc:
            if failure is None:
                raise
            log.warning("could not commit the finished batches (%s); the next run commits them", exc)
        if failure is not None:
            raise failure
        notes = tx.messages

    return ExtractReport(
        path=str(tx.path), set_name=set_name, embedder=settings.embedder, config_hash=resolved.config_hash,
        input_name=input_name, rows=stats.rows, unique=stats.unique, cached=stats.unique - stats.computed,
        computed=stats.computed, empty=stats.empty, skipped_empty=stats.skipped, truncated_computed=stats.truncated,
        truncated_input=stats.truncated_input, seconds_total=time.perf_counter() - started,
        seconds_compute=stats.seconds_compute, seconds_staging=stats.seconds_staging,
        seconds_commit=stats.seconds_commit, notes=notes)


class _Pipeline:
    """The stages between reading the input and the commit, over one store transaction."""

    def __init__(self, tx: Transaction, settings: ExtractSettings, resolved: ResolvedEmbedder, registry: Registry,
                 set_name: str, source: str, stats: _Stats):
        self.tx, self.settings, self.resolved, self.registry = tx, settings, resolved, registry
        self.set_name, self.source, self.stats = set_name, source, stats
        self.shapes = _shapes(resolved.embedder, resolved.outputs, tx.outputs(set_name))
        self.stored = tx.lookup(set_name)
        self.seen = KeySet()
        self.truncated_seen = KeySet()  # keys this run computed whose text max_length cut
        self.engine: LocalEngine | RayEngineAdapter | None = None
        self.fallback: LocalEngine | None = None  # --write-on-workers: computes a refused segment's rows here
        self.checker: BatchChecker | None = None
        self.records: Iterable[Record] | None = None
        self.table: Any = None  # the input table's writer, when the input has a name

    def feed(self, open_records: Callable[[], tuple[Iterable[Record], list[str]]], input_name: str | None) -> None:
        settings, stats = self.settings, self.stats
        self.records, columns = open_records()
        if input_name is not None:
            self.table = self.tx.input_table(input_name, self.source, settings.store_text, columns)
        total = len(self.records) if isinstance(self.records, list) else None
        with progress_bar(f"{settings.embedder}", total, settings.progress) as advance:
            for chunk in _chunks(self.records):
                chunk, empty = _apply_empty_policy(chunk, settings.empty, self.source, stats)
                binary = content_keys([r.text for r in chunk])
                hexkeys = binary_to_hex(binary)
                if self.table is not None:
                    self.table.append(chunk, hexkeys, empty)
                stats.rows += len(chunk)
                todo, cut = self._lookup(binary)
                if len(todo):
                    self._compute(chunk, todo, binary, hexkeys)
                stats.truncated_input += int((cut > 0).sum()) + int(self.truncated_seen.contains(binary).sum())
                advance(len(chunk))
        if self.table is not None:
            self.tx.stage_input(self.table)

    def _lookup(self, binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in the chunk of texts neither stored nor met earlier in this input (first occurrences),
        and per text the tokens ``max_length`` cut from its stored row (0 where not stored)."""
        if not len(binary):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        rows, cut = self.stored.find(binary)
        unique, first = np.unique(binary, return_index=True)
        fresh = ~self.seen.contains(unique)
        unique, first = unique[fresh], first[fresh]
        self.seen.add(unique)
        self.stats.unique += len(unique)
        return np.sort(first[rows[first] < 0]), cut

    def _start(self) -> None:
        """The first text to compute: the engine loads the model (never before, and never for a cached run)."""
        settings, resolved = self.settings, self.resolved
        _check_available(resolved.embedder, settings.embedder, resolved.plugin)
        meta = {"embedder": settings.embedder, "plugin": resolved.plugin, "config_hash": resolved.config_hash,
                "config": resolved.config, "dtype": settings.dtype, "compression": settings.compression}
        write = None
        if settings.write_on_workers:  # the actors write segments; the driver checks them and writes the index
            write = {"directory": str(Path(self.tx.segment_folder).absolute()),  # not resolved: a link stays refused
                     "set": self.set_name, "meta": meta, "requested": list(resolved.outputs),
                     "known": self.tx.outputs(self.set_name), "embedder": settings.embedder,
                     "plugin": resolved.plugin, "dtype": settings.dtype, "start": self.tx.tokens(self.set_name)}
        if settings.engine == "ray":
            self.engine = RayEngineAdapter(self.registry, settings, resolved, write)
        else:
            self.engine = LocalEngine(resolved.embedder, settings.embedder, resolved.plugin)
        self.engine.start()
        _refresh_shapes(self.engine, self.shapes)
        self.checker = BatchChecker(settings.embedder, resolved.plugin, self.shapes, np.dtype(settings.dtype))
        shapes = self.shapes
        self.tx.open_set(self.set_name, lambda: meta | {"outputs": [s.as_dict() for s in shapes]},
                         checkpoint_rows=settings.checkpoint_rows)

    def _compute(self, chunk: list[Record], todo: np.ndarray, binary: np.ndarray, hexkeys: np.ndarray) -> None:
        if self.engine is None:
            self._start()
        assert self.engine is not None and self.checker is not None
        batch_size = self.settings.batch_size or type(self.resolved.embedder).batch_size
        order = sorted(todo.tolist(), key=lambda i: -len(chunk[i].text))
        batches = []
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            self.stats.batches += 1
            lines = sorted(chunk[i].line for i in rows)
            where = (f"batch {self.stats.batches} ({plural(len(rows), 'text')}, input lines {_span(lines)} "
                     f"of {self.source})")
            batches.append((rows, [chunk[i].text for i in rows], where))
        if self.settings.write_on_workers:
            self._compute_on_workers(batches, binary, hexkeys)
            return
        results = self.engine.map((texts, where) for _, texts, where in batches)
        t0 = time.perf_counter()
        for (rows, texts, where), result in zip(batches, results, strict=True):
            _refresh_shapes(self.engine, self.shapes)  # dims the loaded model reports
            arrays, truncated = self.checker.check(result, len(texts), where)
            self.stats.seconds_compute += time.perf_counter() - t0
            self.stats.truncated += int((truncated > 0).sum())
            self.stats.computed += len(texts)
            arrays["keys"] = np.asarray(hexkeys[rows], dtype=KEY_DTYPE)
            arrays["truncated"] = truncated
            self.tx.append(arrays)
            self.truncated_seen.add(binary[rows][truncated > 0])
            t0 = time.perf_counter()

    def _compute_on_workers(self, batches: list[tuple[list[int], list[str], str]], binary: np.ndarray,
                            hexkeys: np.ndarray) -> None:
        """--write-on-workers: the chunk's batches go out in groups (dealt round-robin, so long and short
        texts mix), and each group comes back as one segment a worker wrote, or a few when it held
        :data:`~embedx.pipeline.engines.ray_engine.SEGMENT_BYTES`. The store checks each, then stages it;
        one it refuses is set aside and its rows computed here instead (:meth:`_recompute`)."""
        rows_per_group = max(1, self.settings.checkpoint_rows)
        texts_in_chunk = sum(len(texts) for _, texts, _ in batches)
        workers = int(getattr(self.engine, "workers", None) or 1)
        count = min(len(batches), max(workers, -(-texts_in_chunk // rows_per_group)))
        groups = [batches[g::count] for g in range(count)]
        seqs = [[self.tx.reserve_segment()[2] for _ in group] for group in groups]  # each group's in a row
        jobs = [{"parts": [{"texts": texts, "where": where, "seq": seq,
                            "keys": [k.decode("ascii") for k in hexkeys[rows].tolist()]}
                           for (rows, texts, where), seq in zip(group, numbers, strict=True)]}
                for group, numbers in zip(groups, seqs, strict=True)]
        results = self.engine.map(  # type: ignore[union-attr]  # started in _start
            ([], _group_where(group), job) for group, job in zip(groups, jobs, strict=True))
        t0 = time.perf_counter()
        for group, numbers, result in zip(groups, seqs, results, strict=True):
            _refresh_shapes(self.engine, self.shapes)
            at = 0
            for file, n in _written(result, len(group), self.settings.embedder, _group_where(group)):
                rows = np.concatenate([r for r, _, _ in group[at:at + n]]).astype(np.int64)
                lo, hi = numbers[at], numbers[at + n - 1]
                try:
                    truncated = self.tx.adopt(file, lo, hi, hexkeys[rows])
                except SegmentRefused as refused:
                    if not refused.present:  # no shared folder: every segment would be missing
                        raise
                    truncated = self._recompute(group[at:at + n], lo, hi, hexkeys, str(refused))
                self.stats.truncated += int((truncated > 0).sum())
                self.stats.computed += len(rows)
                self.truncated_seen.add(binary[rows][truncated > 0])
                at += n
            self.stats.seconds_compute += time.perf_counter() - t0
            t0 = time.perf_counter()

    def _recompute(self, group: list[tuple[list[int], list[str], str]], lo: int, hi: int, hexkeys: np.ndarray,
                   why: str) -> np.ndarray:
        """The rows of a refused worker segment, computed in this process (the model loads here once) and
        staged under the same reserved numbers at the set's end: the refusal costs time, no rows."""
        assert self.checker is not None
        if self.fallback is None:
            self.fallback = LocalEngine(self.resolved.embedder, self.settings.embedder, self.resolved.plugin)
            self.fallback.start()
        log.warning("%s; computing its %s on the driver", why, plural(sum(len(t) for _, t, _ in group), "text"))
        self.tx.messages.append(f"{why}; its rows were computed again on the driver")
        parts = []
        for (rows, texts, where), result in zip(group, self.fallback.map((t, w) for _, t, w in group), strict=True):
            arrays, truncated = self.checker.check(result, len(texts), where)
            arrays["keys"] = np.asarray(hexkeys[rows], dtype=KEY_DTYPE)
            arrays["truncated"] = truncated
            parts.append(arrays)
        return self.tx.stage_rows(parts, lo, hi)

    def close(self, failure: BaseException | None) -> None:
        if self.records is not None and hasattr(self.records, "close"):
            self.records.close()
        if self.engine is not None:
            self.engine.close(drain=failure is None)


def _group_where(group: list[tuple[list[int], list[str], str]]) -> str:
    """A group's batches, for error messages."""
    return group[0][2] if len(group) == 1 else f"{group[0][2]} and {plural(len(group) - 1, 'more batch')}"


def _written(result: Any, parts: int, embedder: str, where: str) -> list[tuple[str, int]]:
    """The (segment file, batches in it) a worker reports for a group of ``parts`` batches, checked for shape."""
    segments = result.get("segments") if isinstance(result, dict) else None
    ok = isinstance(segments, list) and all(
        isinstance(s, dict) and isinstance(s.get("file"), str) and type(s.get("parts")) is int and s["parts"] > 0
        for s in segments) and sum(s["parts"] for s in segments) == parts
    if not ok:
        raise EmbedderOutputError(f"embedder {embedder!r}: the worker answered {where} with "
                                  f"{type(result).__name__}, not the segments it wrote for its {parts} batches")
    return [(s["file"], s["parts"]) for s in segments]  # type: ignore[union-attr]  # checked above


class LocalEngine:
    """Computes in this process. The same interface as the Ray pool: ``start()``, ``map(batches)``, ``close()``."""

    def __init__(self, embedder: Embedder, embedder_id: str, plugin: str):
        self.embedder, self.embedder_id, self.plugin = embedder, embedder_id, plugin

    def start(self) -> None:
        _load(self.embedder, self.embedder_id, self.plugin)

    def output_specs(self) -> Any:
        return self.embedder.output_specs()

    def map(self, batches: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
        """Embed each ``(texts, where)`` batch; yield the raw results in order (``where`` names it in errors)."""
        for texts, where in batches:
            yield _call(self.embedder, texts, where, self.embedder_id, self.plugin)

    def close(self, drain: bool = True) -> None:
        pass


class RayEngineAdapter:
    """The Ray pool (:class:`embedx.pipeline.engines.ray_engine.RayEngine`) behind the engine interface."""

    def __init__(self, registry: Registry, settings: ExtractSettings, resolved: ResolvedEmbedder,
                 write: dict[str, Any] | None = None):
        self.registry, self.settings, self.resolved, self.write = registry, settings, resolved, write
        self.engine: Any = None

    def start(self) -> None:
        from embedx.pipeline.engines.ray_engine import RayEngine, fingerprint

        settings, resolved = self.settings, self.resolved
        options = dict(settings.options or {})
        if settings.max_length is not None:
            options["max_length"] = settings.max_length
        self.engine = RayEngine(settings.embedder, options, resolved.outputs, plugin=resolved.plugin,
                                workers=settings.workers, address=settings.ray_address,
                                gpus_per_worker=settings.gpus_per_worker,
                                expected=fingerprint(resolved.embedder,
                                                     self.registry.entry(settings.embedder).cls.versioned),
                                write=self.write)
        self.engine.start()

    def output_specs(self) -> Any:
        return self.engine.output_specs() if self.engine is not None else ()

    @property
    def workers(self) -> int | None:
        """The pool's size once started."""
        return self.engine.workers if self.engine is not None else None

    def map(self, batches: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
        return self.engine.map(batches)  # the pool computes ahead; results come back in batch order

    def close(self, drain: bool = True) -> None:
        if self.engine is not None:
            self.engine.close(drain=drain)


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

    def coverage(self) -> dict[str, int]:
        return {"rows": self.rows, "unique": self.unique, "empty": self.empty, "skipped_empty": self.skipped,
                "truncated_input": self.truncated_input}


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
        return [r for r, e in zip(records, empty, strict=True) if not e], np.zeros(
            len(records) - int(empty.sum()), bool
        )
    stats.empty += int(empty.sum())
    return records, empty


@dataclass
class ResolvedEmbedder:
    """An embedder built from its id and options, with the configuration the cache is keyed on."""

    embedder: Embedder
    config: dict[str, Any]
    outputs: list[str]
    plugin: str

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def resolve_embedder(registry: Registry | None, embedder: str, options: dict[str, Any] | None = None,
                     outputs: Sequence[str] | None = None, max_length: int | None = None,
                     dtype: str = "float32") -> ResolvedEmbedder:
    """The one public way to build an embedder and its configuration (extraction, training and
    prediction all use it, so they key the cache alike). Loads nothing."""
    registry = registry or get_registry()
    entry = registry.entry(embedder)
    options = dict(options or {})
    if max_length is not None:
        if "max_length" not in option_specs(entry.cls):
            raise OptionError(f"embedder {embedder!r} has no max_length option; drop --max-length")
        options["max_length"] = max_length
    built, resolved = registry.create(embedder, options)
    names = [o.name for o in entry.cls.outputs]
    requested = list(outputs or entry.cls.default_outputs or names)
    for name in requested:
        if name not in names:
            raise OptionError(f"embedder {embedder!r} has no output {name!r} (outputs: {', '.join(names)})")
    built.requested_outputs = tuple(requested)
    versions: dict[str, str | None] = {}
    for dist in entry.cls.versioned:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    keyed = {k: v for k, v in resolved.items() if k not in entry.cls.unkeyed_options}
    config = {"embedder": embedder, "options": keyed, "identity": built.identity(),
              "versions": versions, "outputs": requested, "dtype": dtype}
    unkeyed = {k: v for k, v in resolved.items() if k in entry.cls.unkeyed_options}
    if unkeyed:  # recorded for people, left out of the hash (see Embedder.unkeyed_options)
        config["unkeyed_options"] = unkeyed
    return ResolvedEmbedder(built, config, requested, entry.plugin)


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


def _refresh_shapes(embedder: Any, shapes: list[OutputShape]) -> None:
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
