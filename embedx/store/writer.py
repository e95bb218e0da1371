"""A background thread that makes computed batches durable, so disk writes never stall the model."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embedx.store.segment import SegmentInfo, write_set_segment

CHECKPOINT_BYTES = 32 << 20


class SegmentWriter:
    """Collects validated batches and writes them as segment files of ``checkpoint_rows`` rows
    (or ``CHECKPOINT_BYTES``), each durable before the next starts.

    The queue is bounded, so a slow disk slows the producer instead of filling memory.
    A write error is re-raised in the producer at its next ``put`` or at ``close``.
    """

    def __init__(self, directory: Path, set_name: str, meta: Callable[[], dict[str, Any]],
                 next_seq: Callable[[], int], token_bases: dict[str, int],
                 checkpoint_rows: int = 4096, checkpoint_seconds: float = 10.0):
        self.directory, self.set_name, self.meta, self.next_seq = directory, set_name, meta, next_seq
        self.bases = dict(token_bases)
        self.checkpoint_rows, self.checkpoint_seconds = checkpoint_rows, checkpoint_seconds
        self.queue: queue.Queue[dict[str, np.ndarray] | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.seconds_writing = 0.0
        self.rows_written = 0
        self.written: list[SegmentInfo] = []
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0
        self._pending_bytes = 0
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
                idle = False
                try:
                    item = self.queue.get(timeout=0.5)
                except queue.Empty:
                    item, idle = None, True
                if item is None and not idle:
                    finished = True
                    self._flush()
                    return
                if item is not None:
                    self._pending.append(item)
                    self._pending_rows += len(item["keys"])
                    self._pending_bytes += sum(a.nbytes for a in item.values())
                due = time.monotonic() - self._last_flush >= self.checkpoint_seconds
                if (self._pending_rows >= self.checkpoint_rows or self._pending_bytes >= CHECKPOINT_BYTES
                        or (due and self._pending)):
                    self._flush()
        except BaseException as exc:  # surfaced in the producer thread
            self.error = exc
            while not finished:  # drain so the producer never blocks on a dead writer
                finished = self.queue.get() is None

    def _flush(self) -> None:
        if not self._pending:
            return
        started = time.perf_counter()
        merged = concat_batches(self._pending)
        meta = self.meta()
        seq = self.next_seq()
        info = write_set_segment(self.directory, self.set_name, meta, seq, seq, merged, self.bases)
        for name, count in info.tokens.items():
            self.bases[name] = self.bases.get(name, 0) + count
        self.written.append(info)
        self.rows_written += self._pending_rows
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._last_flush = time.monotonic()
        self.seconds_writing += time.perf_counter() - started


def concat_batches(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Batches in the layout of :class:`embedx.pipeline.output_checks.BatchChecker` as one; offsets rebased."""
    return {key: _concat(key, [b[key] for b in batches]) for key in batches[0]}


def _concat(key: str, parts: list[np.ndarray]) -> np.ndarray:
    if not key.endswith("offsets"):
        nonempty = [p for p in parts if len(p)] or parts[:1]
        return np.concatenate(nonempty) if len(nonempty) > 1 else nonempty[0]
    merged, base = [np.zeros(1, dtype=np.int64)], 0
    for part in parts:
        merged.append(part[1:] + base)
        base += int(part[-1])
    return np.concatenate(merged)
