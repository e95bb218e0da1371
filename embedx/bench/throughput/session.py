"""One throughput run: every embedder spec at every dtype it declares, measured and alternated with its peer.

Per subject (one embedder spec at one dtype), in this order:

1. build it from the registry, load it (timed, in this process), warm it up; build and load the peer;
2. the GEMM peak, measured now (torch may have arrived with the embedder); untimed warm-up passes;
3. ``repeats`` rounds, each: at the defaults the embedder alone, the peer, the extract path and the
   pipeline ceiling; then every batch size and every length, embedder then peer. Rounds alternate,
   so a load change on the machine hits both sides alike;
4. the layers and pooling sweeps (model only), one freshly loaded instance per setting the plugin
   declares;
5. one profiled call (torch models), the agreement between embedder and peer;
6. fresh-process start-up: time to first vector and end to end, embedder and peer alternately.

Nothing is thrown away: every measurement is a record in the result, and :mod:`.summary`
derives each reported figure from records of this same run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embedx.bench.specs import parse_spec
from embedx.bench.throughput import cold, hardware, measure
from embedx.bench.throughput.families import family_of, peer_for, tokens
from embedx.bench.throughput.profile import profile_call
from embedx.bench.throughput.proxies import NOOP_ID, SUBJECT_ID, extract_registry
from embedx.bench.throughput.schema import COLD, MEASUREMENT, SUBJECT
from embedx.bench.throughput.settings import LAYER_POINTS, Resolved, Settings, with_defaults
from embedx.bench.throughput.summary import summarize
from embedx.bench.throughput.texts import read_source, texts_of_length, unique_texts
from embedx.contract.errors import EmbedxError
from embedx.contract.options import option_specs
from embedx.registry import Registry, get_registry

SCHEMA = "embedx-throughput/1"
WARM_TEXTS = 16
MIN_POINT_TEXTS = 32


def run(request: Settings, registry: Registry | None = None, progress: bool = False,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every subject of ``request``; the result is what ``throughput.json`` holds."""
    settings = with_defaults(request)
    registry = registry or get_registry()
    log = log or (lambda message: None)
    source, pieces = read_source(settings.texts)
    base = unique_texts(pieces, settings.max_texts)
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": list(sys.argv),
        "settings": settings.as_dict(),
        "machine": hardware.machine(),
        "texts": {
            "source": source,
            "count": len(base),
            "mean_words": round(float(np.mean([len(t.split()) for t in base])), 2),
        },
        "hardware": {"gemm": []},
        "subjects": [],
    }
    plans = [(spec, dtype) for spec in settings.embedders for dtype in _dtypes(registry, spec, settings)]
    bar = _Progress(progress, len(plans))
    reference: dict[str, np.ndarray] = {}  # float32 vectors per spec, for half precision's agreement
    with bar, tempfile.TemporaryDirectory(prefix="embedx-throughput-") as workdir:
        for spec_text, dtype in plans:
            subject = Subject(spec_text, dtype, settings, registry, Path(workdir), bar, results["hardware"]["gemm"])
            try:
                record = subject.run(base, pieces)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # one subject failing must not lose the others
                record = subject.record | {"error": f"{type(exc).__name__}: {exc}"}
                if not isinstance(exc, EmbedxError):
                    import traceback

                    record["traceback"] = traceback.format_exc()[-4000:]
            finally:
                subject.close()
            record["agreement_vs_float32"] = None
            if subject.vectors is not None and dtype == "float32":
                reference[spec_text] = subject.vectors
            elif subject.vectors is not None and spec_text in reference:
                record["agreement_vs_float32"] = agreement(subject.vectors, reference[spec_text])
            failed = record.get("error") or record.get("unavailable")
            label = record["label"]  # the peak measured just before and after this subject
            own = [g for g in results["hardware"]["gemm"] if g["when"] in (f"before {label}", f"after {label}")]
            record["summary"] = None if failed else summarize(record, own)
            results["subjects"].append(record)
            log(one_line(record))
            bar.subject_done()
    results["machine_after"] = hardware.snapshot()
    return results


def _dtypes(registry: Registry, spec_text: str, settings: Resolved) -> list[str | None]:
    """The dtypes to run: those asked for, when the embedder declares a ``dtype`` option; else one run."""
    entry = registry.entry(parse_spec(spec_text).id)
    if "dtype" not in option_specs(entry.cls):
        return [None]
    return sorted(dict.fromkeys(settings.dtypes), key=lambda d: d != "float32")  # float32 first: the reference


def one_line(record: dict[str, Any]) -> str:
    """The terminal summary of one subject."""
    if record.get("error") or record.get("unavailable"):
        return f"{record['label']}: {record.get('unavailable') or record.get('error')}"
    from embedx.bench.throughput.report import summary_line

    return summary_line(record)


class Subject:
    """One embedder spec at one dtype, measured."""

    def __init__(self, spec_text: str, dtype: str | None, settings: Resolved, registry: Registry, workdir: Path,
                 bar: _Progress, gemm: list[dict[str, Any]]):
        self.spec = parse_spec(spec_text)
        self.settings, self.registry, self.workdir, self.bar, self.gemm = settings, registry, workdir, bar, gemm
        self.device = settings.device
        entry = registry.entry(self.spec.id)
        declared = option_specs(entry.cls)
        self.options: dict[str, Any] = {**self.spec.options, **settings.options}
        if dtype is not None:
            self.options["dtype"] = dtype
        if "device" in declared:
            self.options["device"] = settings.device
        label = self.spec.label + (f" {dtype}" if dtype else "")
        self.record: dict[str, Any] = dict.fromkeys(SUBJECT) | {
            "label": label, "embedder": self.spec.id, "spec": spec_text, "options": dict(self.options),
            "plugin": entry.plugin, "dtype": dtype or "declared none", "device": settings.device,
            "device_declared": "device" in declared, "measurements": [], "cold": [], "sweeps_skipped": {}}
        self.embedder: Any = None
        self.peer: Any = None
        self.extract_registry: Registry | None = None
        self.vectors: np.ndarray | None = None  # the defaults texts' document vectors (first round)

    # -- the run ----------------------------------------------------------------------------------
    def run(self, base: list[str], pieces: list[str]) -> dict[str, Any]:
        rec, settings = self.record, self.settings
        rec["machine_before"] = hardware.snapshot()
        self.bar.status(f"{rec['label']}: loading")
        embedder, self.family = self._build(self.options)
        if embedder is None:
            return rec
        self.embedder = embedder
        rec.update(family=self.family.name, token_unit=self.family.token_unit,
                   default_batch_size=type(embedder).batch_size, outputs=list(embedder.requested_outputs))
        self.doc = measure.doc_output(embedder)
        rec["doc_output"] = self.doc
        self._peer_setup()
        self.gemm.extend(hardware.gemm(self.device, [self.options.get("dtype", "float32")], settings.gemm_size,
                                       when=f"before {rec['label']}"))
        base_tokens = tokens(self.family, embedder, base)
        rec["texts"], rec["mean_tokens"] = len(base), round(float(np.mean(base_tokens)), 3)
        flops = self.family.flops_per_token(embedder, rec["mean_tokens"]) if self.family.flops_per_token else None
        rec["flops_per_token"] = flops
        self.extract_registry = extract_registry(embedder)
        self._warm(base, base_tokens)
        default = type(embedder).batch_size
        self.bar.plan(4 * settings.repeats)
        vectors: dict[str, np.ndarray] = {}
        points: list[tuple[str, Any, list[str], list[int], int, int | None]] | None = None
        for repeat in range(settings.repeats):
            vectors = self._defaults(base, base_tokens, default, repeat, keep=repeat == 0) or vectors
            if points is None:
                points = self._points(base, base_tokens, pieces, default)
                self.bar.plan(2 * len(points) * settings.repeats)
            for sweep, point, texts, counts, batch, peer_batch in points:
                self._pair(sweep, point, repeat, texts, counts, batch, peer_batch)
        self.gemm.extend(hardware.gemm(self.device, [self.options.get("dtype", "float32")], settings.gemm_size,
                                       when=f"after {rec['label']}"))
        self._option_sweeps(base, base_tokens, default)
        if settings.profile:
            self.bar.status(f"{rec['label']}: profiling one call")
            rec["profile"] = profile_call(embedder, base[:default], self.device)
        rec["agreement"] = agreement(vectors.get("model"), vectors.get("peer"))
        self.vectors = vectors.get("model")
        if settings.cold:
            self._cold(pieces)
        rec["machine_after"] = hardware.snapshot()
        return rec

    def _build(self, options: dict[str, Any]) -> tuple[Any, Any]:
        embedder, _ = self.registry.create(self.spec.id, options)
        entry = self.registry.entry(self.spec.id)
        embedder.requested_outputs = tuple(entry.cls.default_outputs or [o.name for o in entry.cls.outputs])
        reason = embedder.unavailable_reason()
        if reason:
            self.record["unavailable"] = reason
            return None, None
        started = time.perf_counter()
        embedder.load()
        embedder.embed_batch(["warm-up text number one", "a second, slightly longer warm-up text"])
        hardware.sync(self.device)
        if self.record["load_s"] is None:  # the first instance; sweeps load others
            self.record["load_s"] = round(time.perf_counter() - started, 4)
        return embedder, family_of(embedder)

    def _peer_setup(self) -> None:
        info: dict[str, Any] = {"available": False}
        self.record["peer"] = info
        if self.settings.peer == "none":
            info["reason"] = "--peer none"
            return
        runner, reason = peer_for(self.family, self.embedder)
        if runner is None:
            info["reason"] = reason
            return
        info["name"] = runner.name
        started = time.perf_counter()
        try:
            runner.load()
            runner.encode(["warm-up text number one", "a second, slightly longer warm-up text"],
                          runner.default_batch_size)
        except Exception as exc:  # a peer that cannot run here: reported, the embedder is still measured
            info["reason"] = f"could not load: {type(exc).__name__}: {exc}"[:500]
            return
        hardware.sync(self.device)
        info.update(available=True, load_s=round(time.perf_counter() - started, 4),
                    default_batch_size=runner.default_batch_size)
        self.peer = runner

    def _warm(self, base: list[str], base_tokens: list[int]) -> None:
        """Untimed first passes: the model and the peer over up to two default batches of the texts (kernels and
        their plans for these shapes are made once), and one small extract of each kind (h5py, the store and the
        writer thread start once)."""
        self.bar.status(f"{self.record['label']}: warming up")
        n = min(len(base), 2 * type(self.embedder).batch_size)
        measure.model(self.embedder, base[:n], base_tokens[:n], type(self.embedder).batch_size, self.device)
        if self.peer is not None:
            measure.peer(self.peer, base[:n], base_tokens[:n], self.peer.default_batch_size, self.device)
        counts = [1] * WARM_TEXTS
        for kind, embedder_id in (("extract", SUBJECT_ID), ("ceiling", NOOP_ID)):
            warm = [f"{t} (warm-up {kind})" for t in base[:WARM_TEXTS]]
            measure.extract(self.extract_registry, embedder_id, warm, counts, WARM_TEXTS, self.device, self.workdir,
                            kind)

    def _add(self, record: dict[str, Any], sweep: str, point: Any, repeat: int, side: str) -> dict[str, Any]:
        record.update(id=len(self.record["measurements"]), sweep=sweep, point=point, repeat=repeat, side=side)
        record = {key: record.get(key) for key in MEASUREMENT}  # every documented field, None where it does not apply
        self.record["measurements"].append(record)
        self.bar.advance()
        return record

    def _defaults(self, texts: list[str], counts: list[int], batch: int, repeat: int,
                  keep: bool) -> dict[str, np.ndarray]:
        label = self.record["label"]
        self.bar.status(f"{label}: defaults, round {repeat + 1}")
        kept: dict[str, np.ndarray] = {}
        record, vectors = measure.model(self.embedder, texts, counts, batch, self.device, self.doc if keep else None)
        self._add(record, "defaults", batch, repeat, "embedder")
        if vectors is not None:
            kept["model"] = vectors
        if self.peer is not None:
            record, vectors = measure.peer(self.peer, texts, counts, self.peer.default_batch_size, self.device, keep)
            self._add(record, "defaults", self.peer.default_batch_size, repeat, "peer")
            if vectors is not None:
                kept["peer"] = vectors
        else:
            self.bar.advance()
        for kind, embedder_id in (("extract", SUBJECT_ID), ("ceiling", NOOP_ID)):
            record = measure.extract(self.extract_registry, embedder_id, texts, counts, batch, self.device,
                                     self.workdir, kind)
            self._add(record, "defaults", batch, repeat, "embedder")
        return kept

    def _points(self, base: list[str], counts: list[int], pieces: list[str],
                default: int) -> list[tuple[str, Any, list[str], list[int], int, int | None]]:
        """The sweep points, each with texts sized from the defaults' rate to last about ``seconds``."""
        settings = self.settings
        first = next(m for m in self.record["measurements"] if m["side"] == "embedder" and m["kind"] == "model")
        rate, token_rate = first["texts_s"] or 1.0, first["tokens_s"] or 1.0
        points: list[tuple[str, Any, list[str], list[int], int, int | None]] = []
        if "batch" in settings.sweeps:
            n = int(min(len(base), max(MIN_POINT_TEXTS, rate * settings.seconds)))
            for batch in sorted(set(settings.batch_sizes) | {default}):
                points.append(("batch", batch, base[:n], counts[:n], batch, batch))
        if "length" in settings.sweeps:
            per_word = (sum(counts) / max(1, sum(len(t.split()) for t in base))) or 1.0
            for words in settings.lengths:
                n = int(
                    min(
                        settings.max_texts,
                        max(MIN_POINT_TEXTS // 2, token_rate * settings.seconds / (words * per_word)),
                    )
                )
                texts = texts_of_length(pieces, words, n)
                points.append(("length", words, texts, tokens(self.family, self.embedder, texts), default,
                               self.peer.default_batch_size if self.peer is not None else None))
        return points

    def _pair(self, sweep: str, point: Any, repeat: int, texts: list[str], counts: list[int], batch: int,
              peer_batch: int | None) -> None:
        self.bar.status(f"{self.record['label']}: {sweep} {point}, round {repeat + 1}")
        record, _ = measure.model(self.embedder, texts, counts, batch, self.device)
        self._add(record, sweep, point, repeat, "embedder")
        if self.peer is None or (sweep == "batch" and self.peer.default_batch_size is None):
            self.bar.advance()  # a peer that does not batch is measured at the defaults only
            return
        record, _ = measure.peer(self.peer, texts, counts, peer_batch, self.device)
        self._add(record, sweep, point, repeat, "peer")

    def _option_sweeps(self, base: list[str], counts: list[int], default: int) -> None:
        """Layers and pooling, with the values the plugin declares; one loaded instance per value."""
        cls = type(self.embedder)
        declared = option_specs(cls)
        first = next(m for m in self.record["measurements"] if m["kind"] == "model")
        n = int(min(len(base), max(MIN_POINT_TEXTS, (first["texts_s"] or 1.0) * self.settings.seconds)))
        sweeps = {}
        if "layers" in self.settings.sweeps:
            if getattr(cls, "layer_options", False) and "layers" in declared:
                sweeps["layers"] = list(LAYER_POINTS)
            else:
                self.record["sweeps_skipped"]["layers"] = "the embedder declares no layers option (layer_options)"
        if "pooling" in self.settings.sweeps:
            if getattr(cls, "pooling_choices", ()) and "pooling" in declared:
                sweeps["pooling"] = list(cls.pooling_choices)
            else:
                self.record["sweeps_skipped"]["pooling"] = "the embedder declares no pooling choices"
        for option, values in sweeps.items():
            for value in values:
                self.bar.status(f"{self.record['label']}: {option}={value}")
                try:
                    other, _ = self._build({**self.options, option: value})
                except (EmbedxError, ValueError) as exc:
                    self.record["sweeps_skipped"][f"{option}={value}"] = str(exc)
                    continue
                if other is None:
                    continue
                self.bar.plan(self.settings.repeats)
                for repeat in range(self.settings.repeats):
                    record, _ = measure.model(other, base[:n], counts[:n], default, self.device)
                    record["options"] = {option: value}
                    self._add(record, option, value, repeat, "embedder")
                del other

    def _cold(self, pieces: list[str]) -> None:
        settings, rec = self.settings, self.record
        texts = unique_texts(pieces, settings.end_to_end_texts)
        path = self.workdir / f"end-to-end-{len(rec['cold'])}-{time.perf_counter_ns()}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        options = {k: str(v) for k, v in self.options.items()}
        sides = ["embedder"] + (["peer"] if self.peer is not None else [])
        base = {"id": self.spec.id, "options": options, "outputs": list(self.embedder.requested_outputs),
                "text": texts[0], "texts_file": str(path)}
        self.bar.plan(2 * len(sides) * settings.repeats)
        for repeat in range(settings.repeats):
            for task in ("first-vector", "end-to-end"):
                for side in sides:
                    self.bar.status(f"{rec['label']}: {task} in a fresh process ({side}), round {repeat + 1}")
                    result = cold.run_child({**base, "task": task, "side": side})
                    result.update(task=task, side=side, repeat=repeat)
                    if task == "end-to-end":
                        result.setdefault("texts", len(texts))
                    rec["cold"].append({key: result.get(key) for key in COLD})
                    self.bar.advance()
        path.unlink(missing_ok=True)

    def close(self) -> None:
        self.embedder = self.peer = self.extract_registry = None


def agreement(ours: np.ndarray | None, theirs: np.ndarray | None) -> dict[str, Any] | None:
    """Largest absolute difference and smallest cosine between embedder and peer vectors of the same texts."""
    if ours is None or theirs is None:
        return None
    if ours.shape != theirs.shape:
        return {"comparable": False, "reason": f"shapes differ: {list(ours.shape)} vs {list(theirs.shape)}"}
    a, b = ours.reshape(len(ours), -1).astype(np.float64), theirs.reshape(len(theirs), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    live = norms > 0
    cosine = (a[live] * b[live]).sum(1) / norms[live]
    return {"comparable": True, "texts": len(a), "max_abs_diff": float(np.abs(a - b).max()) if a.size else 0.0,
            "min_cosine": float(cosine.min()) if live.any() else None}


class _Progress:
    """A rich progress bar over the planned measurements (or nothing)."""

    def __init__(self, enabled: bool, subjects: int):
        self.enabled, self.subjects = enabled, subjects
        self._progress: Any = None
        self._task: Any = None
        self._done = 0

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task("throughput", total=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def plan(self, measurements: int) -> None:
        if self._progress is not None:
            total = self._progress.tasks[0].total or 0
            self._progress.update(self._task, total=total + measurements)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def status(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text[:70])

    def subject_done(self) -> None:
        self._done += 1
