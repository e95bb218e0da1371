"""A background thread that makes computed batches durable, so disk writes never stall the model."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from embedx.store.staging import Staging


class ShardWriter:
    """Collects validated batches and writes them to staging as shards of ``checkpoint_rows`` rows.

    The queue is bounded, so a slow disk slows the producer instead of filling memory.
    A write error is re-raised in the producer at its next ``put`` or at ``close``.
    """

    def __init__(self, staging: Staging, set_name: str, meta: Callable[[], dict[str, Any]],
                 checkpoint_rows: int = 4096, checkpoint_seconds: float = 10.0):
        self.staging, self.set_name, self.meta = staging, set_name, meta
        self.checkpoint_rows, self.checkpoint_seconds = checkpoint_rows, checkpoint_seconds
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.seconds_writing = 0.0
        self.rows_written = 0
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0
        self._last_flush = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="embedx-writer", daemon=True)
        self._thread.start()

    def put(self, arrays: dict[str, np.ndarray]) -> None:
        self._raise_if_failed()
        self.queue.put(arrays)

    def close(self) -> None:
        """Write what is left and stop; raises the writer's error if it had one."""
        self.queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        finished = False
        try:
            while True:
                try:
                    item = self.queue.get(timeout=0.5)
                except queue.Empty:
                    item = ...
                if item is None:
                    finished = True
                    self._flush()
                    return
                if item is not ...:
                    self._pending.append(item)
                    self._pending_rows += len(item["keys"])
                due = time.monotonic() - self._last_flush >= self.checkpoint_seconds
                if self._pending_rows >= self.checkpoint_rows or (due and self._pending):
                    self._flush()
        except BaseException as exc:  # surfaced in the producer thread
            self.error = exc
            while not finished:  # drain so the producer never blocks on a dead writer
                finished = self.queue.get() is None

    def _flush(self) -> None:
        if not self._pending:
            return
        started = time.perf_counter()
        merged = {key: _concat(key, [p[key] for p in self._pending], self._pending) for key in self._pending[0]}
        self.staging.write_set_meta(self.set_name, self.meta())
        self.staging.write_shard(self.set_name, merged)
        self.rows_written += self._pending_rows
        self._pending, self._pending_rows = [], 0
        self._last_flush = time.monotonic()
        self.seconds_writing += time.perf_counter() - started


def _concat(key: str, parts: list[np.ndarray], batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Concatenate per-batch arrays; offsets are rebased so they index the merged arrays."""
    if not key.endswith("offsets"):
        nonempty = [p for p in parts if len(p)] or parts[:1]
        return np.concatenate(nonempty) if len(nonempty) > 1 else nonempty[0]
    merged, base = [np.zeros(1, dtype=np.int64)], 0
    for part in parts:
        merged.append(part[1:] + base)
        base += int(part[-1])
    return np.concatenate(merged)
