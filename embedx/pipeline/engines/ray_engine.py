"""Run an embedder in a pool of Ray actors through Ray Data; results stream back to the driver in order.

Shape of one run::

    driver --(index, texts)--> queue actor --> feed read task --> map_batches(EmbedWorker, actor pool)
    driver <--(index, pickled result)-- iter_batches <-------------------------------------'

* Each actor builds the embedder through the registry (the same plugins as the driver: the
  ``EMBEDX_*`` variables travel in the actors' runtime environment), checks that it computes what
  the driver keys the cache with (same identity, e.g. the model file's content hash, and the same
  library versions), and calls ``load()`` once, for the whole run however many batches follow.
* The driver keeps the batching, ordering, validation and writing: it feeds batches it formed
  itself, reassembles results by index, and hands them back in order. So the output file lives
  where the driver runs, no shared filesystem is needed, and a crash of the driver is recovered
  by the store like any local run.
* Input flows through a small queue with a bounded number of batches in flight, so memory stays
  flat whatever the input size, and one Ray Data execution serves every ``map`` call of the engine.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import queue
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from embedx.contract.embedder import Embeddings, Output, Ragged
from embedx.contract.errors import EmbedderOutputError, EmbedderUnavailable, EmbedxError, OptionError
from embedx.pipeline.engines import import_ray

#: Environment variables that choose plugins and settings; actors must see the driver's values.
FORWARDED_ENV_PREFIX = "EMBEDX_"
#: Batches in flight per worker (queued, computing, or waiting to be reassembled in order).
IN_FLIGHT_PER_WORKER = 3
#: Index of the empty item that pushes the last batch of a ``map`` call through Ray Data.
FILLER = -1
#: Seconds without any result, while batches are in flight, before a filler nudges Ray Data.
NUDGE_SECONDS = 0.25
#: --write-on-workers: a worker writes the batches of its group as one segment, or starts another
#: once it holds this many bytes of checked output (its memory bound).
SEGMENT_BYTES = 64 << 20


def fingerprint(embedder: Any, versioned: Iterable[str]) -> str:
    """What makes two processes compute the same thing: the embedder's identity and library versions."""
    import importlib.metadata

    versions: dict[str, str | None] = {}
    for dist in versioned:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return json.dumps({"identity": embedder.identity(), "versions": versions}, sort_keys=True, default=str)


def portable(result: Any) -> Any:
    """``result`` with tensors turned into numpy arrays the way the checker would, so the driver needs no torch/tf.

    Structure the checker would refuse is left exactly as it is, so the driver refuses it too.
    """
    if isinstance(result, Embeddings):
        return Embeddings(portable(result.outputs), result.truncated)
    if isinstance(result, Mapping):
        return {key: portable(value) for key, value in result.items()}
    if isinstance(result, Ragged) and isinstance(result.arrays, list | tuple):
        return Ragged([_array(a) for a in result.arrays], result.tokens)
    return _array(result)


def _array(value: Any) -> Any:
    if hasattr(value, "numpy") and callable(value.numpy):
        import numpy as np

        try:
            return np.asarray(value.numpy())
        except Exception:  # e.g. a tensor that requires grad: the driver's checker reports it
            return value
    return value


class EmbedWorker:
    """The Ray Data actor: builds and loads the embedder once, then embeds one batch per row."""

    def __init__(self, embedder_id: str, options: dict[str, Any], outputs: list[str], expected: str | None,
                 write: dict[str, Any] | None = None):
        self.embedder: Any = None  # the Embedder, once loaded
        self.error, self.specs = None, None
        self.write, self.checker = write, None  # --write-on-workers: where and how this actor writes segments
        self.node = _node()
        try:
            from embedx.registry import get_registry

            registry = get_registry()
            entry = registry.entry(embedder_id)
            embedder, _ = registry.create(embedder_id, options)
            embedder.requested_outputs = tuple(outputs)
            found = fingerprint(embedder, entry.cls.versioned)
            if expected is not None and found != expected:
                raise EmbedderUnavailable(
                    f"it would compute something else than on the driver (model files or library versions differ): "
                    f"driver {expected}, worker {found}; install the same plugins and model files on every node")
            embedder.load()
            self.embedder, self.specs = embedder, tuple(embedder.output_specs())
            if write is not None:
                self.checker = _worker_checker(embedder, write)
        except BaseException as exc:  # reported with the first batch, where the driver can name it
            self.error = exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        payloads = []
        for blob in batch["texts"]:
            if not blob:  # the driver's filler
                payloads.append(b"")
                continue
            texts = json.loads(bytes(blob).decode("utf-8"))  # texts travel as plain JSON, never as pickles
            job = texts if isinstance(texts, dict) else None  # --write-on-workers: a group of batches (parts)
            if self.error is not None:
                self._release(job)
                payloads.append(_pack("load", self.error, None, self.node))
                continue
            try:
                if job is not None:
                    result = self._write(job)
                else:
                    result = portable(self.embedder.embed_batch(texts))
            except BaseException as exc:
                self._release(job)
                payloads.append(_pack("raise", exc, self.specs, self.node))
                continue
            payloads.append(_pack("ok", result, tuple(self.embedder.output_specs()), self.node))
        return {"index": batch["index"], "payload": payloads}

    def _write(self, job: dict[str, Any]) -> dict[str, Any]:
        """Embed a group of batches, check each like the driver, and write them as few segments of the set
        (the store's own code): one at the end of the group, or earlier when ``segment_bytes`` are held.

        Each segment's range is the reserved sequence numbers of the batches it holds, so segments never
        overlap. Returns ``{"segments": [{"file": name, "parts": batches in it}, ...]}`` in row order."""
        import numpy as np

        from embedx.store.layout import KEY_DTYPE

        write = self.write
        assert write is not None and self.checker is not None
        pending: list[tuple[int, dict[str, np.ndarray]]] = []
        held, written = 0, []
        for part in job["parts"]:
            texts = part["texts"]
            result = self.embedder.embed_batch(texts)
            arrays, truncated = self.checker.check(portable(result), len(texts), part["where"])
            arrays["keys"], arrays["truncated"] = np.asarray(part["keys"], dtype=KEY_DTYPE), truncated
            pending.append((int(part["seq"]), arrays))
            held += sum(a.nbytes for a in arrays.values())
            if held >= int(write.get("segment_bytes") or SEGMENT_BYTES) and part is not job["parts"][-1]:
                written.append(self._flush(job, pending, last=False))
                pending, held = [], 0
        written.append(self._flush(job, pending, last=True))
        return {"segments": written}

    def _flush(self, job: dict[str, Any], pending: list[tuple[int, Any]], last: bool) -> dict[str, Any]:
        from embedx.store.segment import write_set_segment
        from embedx.store.writer import concat_batches

        write = self.write
        assert write is not None and self.checker is not None
        arrays = concat_batches([a for _, a in pending])
        counts = {s.name: int(arrays[f"{s.name}.offsets"][-1]) for s in self.checker.shapes if s.level == "token"}
        bases = self._claim(job, counts, last)
        meta = write["meta"] | {"outputs": [s.as_dict() for s in self.checker.shapes]}
        info = write_set_segment(Path(write["directory"]), write["set"], meta, pending[0][0], pending[-1][0], arrays,
                                 bases)
        return {"file": info.file, "parts": len(pending)}

    def _claim(self, job: dict[str, Any], counts: dict[str, int], last: bool = True) -> dict[str, int]:
        import ray

        assert self.write is not None
        return ray.get(self.write["bases"].claim.remote(job["index"], counts, last))

    def _release(self, job: dict[str, Any] | None) -> None:
        """A group that wrote nothing (more) still ends its turn, so the groups after it are not held up."""
        if job is not None and self.write is not None:
            try:
                self._claim(job, {})
            except BaseException:
                pass


def _worker_checker(embedder: Any, write: dict[str, Any]) -> Any:
    """The driver's checker, rebuilt here from the set's outputs and the loaded model's dimensions."""
    import numpy as np

    from embedx.pipeline.extraction import _refresh_shapes, _shapes
    from embedx.pipeline.output_checks import BatchChecker

    shapes = _shapes(embedder, write["requested"], write["known"])
    _refresh_shapes(embedder, shapes)
    return BatchChecker(write["embedder"], write["plugin"], shapes, np.dtype(write["dtype"]))


class TokenBases:
    """A small actor handing each segment, in order, the token rows the set holds before it.

    Token offsets are absolute in the set, so a worker's segment needs the token counts of every
    group before it; groups compute in parallel and only this count is passed along in order. A
    group that writes several segments claims once per segment; its ``last`` claim ends its turn."""

    def __init__(self, start: dict[str, int], first: int):
        self.bases, self.next = dict(start), first
        self.turn: Any = None

    async def claim(self, index: int, counts: dict[str, int], last: bool = True) -> dict[str, int]:
        import asyncio

        if self.turn is None:
            self.turn = asyncio.Condition()
        async with self.turn:
            await asyncio.wait_for(self.turn.wait_for(lambda: self.next >= index), timeout=3600)
            bases = dict(self.bases)
            if self.next == index:
                for name, count in counts.items():
                    self.bases[name] = self.bases.get(name, 0) + count
                self.next += 1 if last else 0
            self.turn.notify_all()
            return bases


def _pack(status: str, value: Any, specs: Any, node: str) -> bytes:
    try:
        return pickle.dumps((status, value, specs, node), protocol=5)
    except Exception as exc:  # an unpicklable result or exception: described instead
        text = f"{type(value).__name__}: {value}" if status != "ok" else f"result cannot be sent to the driver: {exc}"
        return pickle.dumps(("raise" if status == "ok" else status, RuntimeError(text), specs, node), protocol=5)


def _node() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:
        return "?"


def _feed_datasource(queue: Any) -> Any:
    """A Ray Data source whose single read task yields one block per batch taken from ``queue`` until None."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class QueueFeed(Datasource):
        def __init__(self, queue: Any):
            super().__init__()
            self.queue = queue

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            source = self.queue

            def read() -> Iterator[Any]:
                import pyarrow as pa

                while True:
                    item = source.get()
                    if item is None:
                        return
                    index, blob = item
                    yield pa.table({"index": pa.array([index], pa.int64()), "texts": pa.array([blob], pa.binary())})

            meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
            return [ReadTask(read, meta)]

    return QueueFeed(queue)


class RayEngine:
    """A pool of Ray actors running one embedder; use as a context manager, then :meth:`map` batches.

    ``address`` joins a running cluster (``"auto"``, ``"ray://host:10001"``); without it a
    local Ray instance is started for the engine's lifetime, unless this process already has one.
    """

    def __init__(self, embedder_id: str, options: dict[str, Any] | None = None, outputs: list[str] | None = None, *,
                 plugin: str = "?", workers: int | None = None, address: str | None = None,
                 gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0, expected: str | None = None,
                 write: dict[str, Any] | None = None):
        self.embedder_id, self.plugin = embedder_id, plugin
        self.options, self.outputs = dict(options or {}), list(outputs or [])
        self.workers, self.address = workers, address
        self.gpus_per_worker, self.cpus_per_worker = float(gpus_per_worker), float(cpus_per_worker)
        self.expected = expected
        # --write-on-workers: the actors write each group of batches as few segments of the set (see
        # EmbedWorker._write); map() items are then (texts, where, {"parts": [{"texts", "keys", "seq", "where"}]})
        # and results {"segments": [{"file": name, "parts": batches in it}]}
        self.write = dict(write) if write is not None else None
        self._ray: Any = None
        self._started_ray = False
        self._queue: Any = None
        self._dataset: Any = None
        self._pump: threading.Thread | None = None  # moves Ray Data's results into _inbox
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._next_index = 0
        self._specs: tuple[Output, ...] = ()
        self._saved_context: tuple[Any, ...] | None = None
        self._saved_log_level = logging.NOTSET

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> RayEngine:
        self.start()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(drain=exc_type is None)

    def start(self) -> None:
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            self._init(ray)
            self._started_ray = True
        try:
            self.workers = self.workers or self._default_workers(ray)
            self._check_resources(ray)
            from ray.util.queue import Queue

            self._queue = Queue(actor_options={"num_cpus": 0})
            if self.write is not None:
                bases = ray.remote(num_cpus=0, max_concurrency=1000)(TokenBases)
                self.write["bases"] = bases.remote(self.write.pop("start", {}), self._next_index)
            self._dataset = self._build_dataset(ray)
        except BaseException:
            self.close(drain=False)
            raise

    def close(self, drain: bool = True) -> None:
        """Stop the pool; ``drain`` waits for Ray Data to finish cleanly (nothing is in flight after a full ``map``)."""
        try:
            if self._pump is not None:
                self._queue.put(None)  # the feed ends; Ray Data then finishes what is in flight
                if drain:
                    while self._inbox.get()[0] == "batch":
                        pass
                    self._pump.join()
            if self._queue is not None:
                self._queue.shutdown()
        finally:
            self._pump, self._queue = None, None
            self._restore_context()
            if self._started_ray and self._ray is not None:
                self._ray.shutdown()
                self._started_ray = False

    def _init(self, ray: Any) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                                  "runtime_env": {"env_vars": env} if env else None}
        if self.address:
            kwargs["address"] = self.address
        else:  # room for the requested pool even on a small machine; Ray then never waits for CPUs
            need = (self.workers or 1) * self.cpus_per_worker
            kwargs.update(num_cpus=max(os.cpu_count() or 1, int(need + 0.999)), include_dashboard=False)
            # Ray runs workers at nice 15; here they do the run's main work, at the driver's priority
            os.environ.setdefault("RAY_worker_niceness", "0")
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at {self.address!r}" if self.address else "a local Ray instance"
            raise EmbedderUnavailable(f"--engine ray could not start or join {where}: {exc}") from None

    def _default_workers(self, ray: Any) -> int:
        resources = ray.cluster_resources()
        if self.gpus_per_worker > 0:
            return max(1, int(resources.get("GPU", 0) // self.gpus_per_worker))
        return max(1, int(resources.get("CPU", 1) // self.cpus_per_worker))

    def _check_resources(self, ray: Any) -> None:
        """Refuse a pool the cluster cannot hold now, instead of waiting for it forever."""
        resources = ray.cluster_resources()
        for name, per_worker in (("CPU", self.cpus_per_worker), ("GPU", self.gpus_per_worker)):
            need, have = per_worker * self.workers, resources.get(name, 0)  # type: ignore[operator]  # set by now
            if need > have:
                flag = "--gpus-per-worker" if name == "GPU" else "--workers"
                raise OptionError(f"--engine ray: {self.workers} workers need {need:g} {name}s, the Ray cluster has "
                                  f"{have:g}; lower {flag} (or start more nodes first)")

    def _build_dataset(self, ray: Any) -> Any:
        from ray.data import ActorPoolStrategy, DataContext

        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
        context = DataContext.get_current()
        self._saved_context = (context.target_max_block_size, context.enable_progress_bars,
                               context.print_on_execution_start)
        # One block per batch: Ray Data would otherwise merge the feed's small blocks into one
        # (up to 128 MiB) and hand them all to one actor. Ray Data reads this when the execution
        # starts, so it stays set until close().
        context.target_max_block_size, context.enable_progress_bars, context.print_on_execution_start = 1, False, False
        logger = logging.getLogger("ray.data")  # its notices would interleave with embedx's own progress bar
        self._saved_log_level = logger.level
        logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            feed = ray.data.read_datasource(_feed_datasource(self._queue), num_cpus=0, override_num_blocks=1)
            return feed.map_batches(
                EmbedWorker, batch_size=1, batch_format="numpy", compute=ActorPoolStrategy(size=self.workers),
                fn_constructor_args=(self.embedder_id, self.options, self.outputs, self.expected, self.write),
                num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker or None,
                runtime_env={"env_vars": env} if env else None)

    def _restore_context(self) -> None:
        if self._saved_context is not None:
            from ray.data import DataContext

            context = DataContext.get_current()
            context.target_max_block_size, context.enable_progress_bars, context.print_on_execution_start = \
                self._saved_context
            self._saved_context = None
            logging.getLogger("ray.data").setLevel(self._saved_log_level)

    # -- computing -------------------------------------------------------------------------------
    def output_specs(self) -> tuple[Output, ...]:
        """The loaded embedder's outputs as the workers report them (empty before the first result)."""
        return self._specs

    def map(self, batches: Iterable[tuple[list[str], str]]) -> Iterator[Any]:
        """Embed each ``(texts, where)`` batch on the pool; yield the raw results in input order.

        ``where`` names the batch in error messages (which input lines). A failing batch raises
        the same errors a local run raises; results before it have been yielded.
        """
        if self._dataset is None:
            raise RuntimeError("RayEngine.map() outside `with RayEngine(...)`")
        if self._pump is None:
            self._pump = threading.Thread(target=self._collect, name="embedx-ray-results", daemon=True)
            self._pump.start()
        window = max(2, IN_FLIGHT_PER_WORKER * int(self.workers))  # type: ignore[arg-type]  # set by start()
        source = iter(batches)
        where: dict[int, str] = {}
        arrived: dict[int, bytes] = {}
        following, exhausted = self._next_index, False
        job: list[Any]
        while True:
            while not exhausted and len(where) < window:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    self._queue.put((FILLER, b""))  # pushes the last batch through at once (see _receive)
                    break
                texts, label, *job = item
                where[self._next_index] = label
                sent: Any = list(texts)
                if job and job[0] is not None:  # --write-on-workers: the job carries its batches' texts
                    sent = {**job[0], "where": label, "index": self._next_index}
                self._queue.put((self._next_index, json.dumps(sent).encode("utf-8")))
                self._next_index += 1
            if following in arrived:
                label = where.pop(following)
                result = self._unpack(arrived.pop(following), label)
                following += 1
                yield result
            elif where:
                self._receive(arrived)
            else:
                return

    def _collect(self) -> None:
        """The pump thread: Ray Data's output blocks, in the order they finish, into the inbox."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for batch in self._dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
                    self._inbox.put(("batch", batch))
            self._inbox.put(("end", None))
        except BaseException as exc:
            self._inbox.put(("error", exc))

    def _receive(self, arrived: dict[int, bytes]) -> None:
        wait = NUDGE_SECONDS
        while True:
            try:
                kind, value = self._inbox.get(timeout=wait)
                break
            except queue.Empty:
                # Ray Data may hold a finished block until the next one arrives; when results stall,
                # an empty filler item pushes it through (the actors answer it without computing).
                self._queue.put((FILLER, b""))
                wait = min(2 * wait, 8.0)  # slow batches: a few fillers, not a flood
        if kind == "end":
            raise EmbedderUnavailable("the Ray Data pipeline ended before every batch came back")
        if kind == "error":
            if isinstance(value, EmbedxError):
                raise value
            first = str(value).splitlines()[0] if str(value) else ""
            raise EmbedderUnavailable(f"--engine ray: the Ray pool failed: {type(value).__name__}: {first}")
        batch = value
        for index, payload in zip(batch["index"], batch["payload"], strict=True):
            if index != FILLER:
                arrived[int(index)] = payload

    def _unpack(self, payload: bytes, where: str) -> Any:
        status, value, specs, node = pickle.loads(payload)  # from our own actors, like all Ray traffic
        if specs:
            self._specs = specs
        if status == "ok":
            return value
        if status == "load":  # on a worker it is also a hint that the node lacks a plugin or model file
            why = str(value) if isinstance(value, EmbedxError) else f"{type(value).__name__}: {value}"
            raise EmbedderUnavailable(f"embedder {self.embedder_id!r} (plugin {self.plugin!r}) could not load on Ray "
                                      f"node {node}: {why}")
        if isinstance(value, EmbedxError):
            raise value
        raise EmbedderOutputError(f"embedder {self.embedder_id!r} (plugin {self.plugin!r}) raised on {where} "
                                  f"(Ray node {node}): {type(value).__name__}: {value}; "
                                  "nothing from this batch was saved")
