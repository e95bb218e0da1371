"""The store's write transaction: the one way anything adds to a feature file.

::

    with writer(path) as w:                     # the lock, then recovery (before any input is read)
        counts = w.covered(input, set, config_hash, fingerprint)   # a fully cached re-run: nothing to do
        keys = w.lookup(set)                    # which keys the set holds (embedx.store.lookup)
        w.open_set(set, meta); w.append(arrays); w.close_set()     # new rows, as durable segments
        table = w.input_table(name, ...); table.append(...); w.stage_input(table)
        w.commit()                              # one new index, renamed into place

Recovery, quarantine, retirement, merging, automatic compaction and the verification record of
the index it writes are the transaction's business; its caller sees none of them, only
:attr:`Transaction.messages` (what recovery set aside or upgraded, for the report).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedx.contract.errors import StoreError
from embedx.store import layout as L
from embedx.store.adopt import SegmentRefused, adopt_segment, stage_rows
from embedx.store.catalog import Catalog, SetState
from embedx.store.commit import commit, compact_tiers
from embedx.store.coverage import covered_counts, record_coverage
from embedx.store.faults import resource_error
from embedx.store.input_table import InputTableWriter, is_empty
from embedx.store.keyindex import KeySet, binary_to_hex
from embedx.store.layout import KEY_DTYPE, safe_name, set_name
from embedx.store.lock import WriterLock, resolve_output
from embedx.store.lookup import StoredKeys
from embedx.store.segment import now
from embedx.store.upgrade import prepare
from embedx.store.writer import SegmentWriter, concat_batches

__all__ = ["KEY_DTYPE", "KeySet", "SegmentRefused", "Transaction", "binary_to_hex", "is_empty", "safe_name",
           "set_name", "writer"]


def writer(path: str | Path) -> contextlib.AbstractContextManager[Transaction]:
    """Hold ``path``'s writer lock (a second writer is refused at once) and recover it; yield the transaction.

    A path that cannot be written (its folder does not exist) is refused here, before anything is locked."""
    return _writer(resolve_output(path))


@contextlib.contextmanager
def _writer(target: Path) -> Iterator[Transaction]:
    with WriterLock(target):
        catalog = prepare(target)
        try:
            catalog.directory.mkdir(exist_ok=True)
        except OSError as exc:
            raise resource_error(exc, catalog.directory) from None
        tx = Transaction(catalog)
        try:
            yield tx
        finally:
            tx._abandon()


class Transaction:
    """One writer's changes to a feature file, made durable by :meth:`commit`."""

    def __init__(self, catalog: Catalog):
        self._catalog = catalog
        self._writer: SegmentWriter | None = None
        self._set: tuple[str, Callable[[], dict[str, Any]]] | None = None
        self.seconds_writing = 0.0

    @property
    def path(self) -> Path:
        return self._catalog.path

    @property
    def segment_folder(self) -> Path:
        """``FILE.h5.segments/``: where ``--write-on-workers`` writers put the segments :meth:`adopt` stages."""
        return self._catalog.directory

    @property
    def messages(self) -> list[str]:
        return self._catalog.messages

    # reading ----------------------------------------------------------------------------------
    def covered(self, input_name: str, set_name: str, config_hash: str, fingerprint: str) -> dict[str, int] | None:
        """The counts of the run that covered this input with this set, if nothing would be computed."""
        return covered_counts(self._catalog, L.safe_name(input_name), set_name, config_hash, fingerprint)

    def outputs(self, set_name: str) -> list[dict[str, Any]] | None:
        """The outputs (with their dimensions) the set records, or ``None`` for a new set."""
        state = self._catalog.sets.get(set_name)
        return state.meta["outputs"] if state else None

    def tokens(self, set_name: str) -> dict[str, int]:
        """Per token output, the token rows the set holds (committed, recovered and staged)."""
        state = self._catalog.sets.get(set_name)
        if state is None:
            return {}
        return {o["name"]: state.tokens(o["name"]) for o in state.meta["outputs"] if o["level"] == "token"}

    def lookup(self, set_name: str) -> StoredKeys:
        """The set's stored keys (committed and recovered), searched on disk: ``find(binary keys)``."""
        state = self._catalog.sets.get(set_name)
        if state is None:
            return StoredKeys()
        return StoredKeys.open(self._catalog.directory, state.all, checked=len(state.segments))

    def missing(self, set_name: str, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` (binary ``S16``) the set does not hold."""
        return self.lookup(set_name).find(keys)[0] < 0

    # writing ----------------------------------------------------------------------------------
    def open_set(self, set_name: str, meta: Callable[[], dict[str, Any]], checkpoint_rows: int = 4096) -> None:
        """Start appending rows to ``set_name``; ``meta()`` is the set's metadata (read when a segment is written)."""
        if self._writer is not None:
            raise RuntimeError("a set is already open in this transaction")
        state = self._catalog.sets.get(set_name)
        outputs = meta()["outputs"]
        bases = {o["name"]: state.tokens(o["name"]) if state else 0 for o in outputs}
        self._set = (set_name, meta)
        self._writer = SegmentWriter(self._catalog.directory, set_name, meta, self._catalog.take_seq, bases,
                                     checkpoint_rows=checkpoint_rows)

    def append(self, arrays: dict[str, np.ndarray]) -> None:
        """Checked rows of the open set, in the batch layout of :class:`embedx.pipeline.output_checks.BatchChecker`."""
        assert self._writer is not None, "open_set() first"
        self._writer.put(arrays)

    def close_set(self) -> None:
        """Make every appended row durable; they are committed by :meth:`commit` (also after an error here)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        finally:
            self.seconds_writing += writer.seconds_writing
            self._stage_rows(writer)

    def reserve_segment(self) -> tuple[Path, str, int]:
        """Where another process may write one segment of the open set: (folder, set name, sequence number).

        A writer holding several batches names its segment by the range of their numbers (reserved in a
        row). It hands the file's name to :meth:`adopt` (``--engine ray --write-on-workers``)."""
        assert self._set is not None, "open_set() first"
        return self._catalog.directory, self._set[0], self._catalog.take_seq()

    def adopt(self, file: str, lo: int, hi: int, keys: np.ndarray) -> np.ndarray:
        """Stage the segment ``file`` another process wrote for the reserved numbers ``lo``..``hi``, after checking
        it holds exactly ``keys`` (in order) as the open set stores them; return its ``truncated`` column.

        A segment that fails is quarantined and :class:`~embedx.store.adopt.SegmentRefused` says why; the
        caller may then compute the rows itself and :meth:`stage_rows` them under the same numbers."""
        assert self._set is not None, "open_set() first"
        set_name, meta = self._set
        return adopt_segment(self._catalog, set_name, meta(), file, lo, hi, keys)

    def stage_rows(self, batches: list[dict[str, np.ndarray]], lo: int, hi: int) -> np.ndarray:
        """Write checked batches (in :meth:`append`'s layout) as one segment at the open set's end under the
        reserved numbers ``lo``..``hi`` (those of a refused segment), and stage it; return its ``truncated``."""
        assert self._set is not None, "open_set() first"
        set_name, meta = self._set
        arrays = concat_batches(batches)
        stage_rows(self._catalog, set_name, meta(), lo, hi, arrays)
        return arrays["truncated"]

    def _stage_rows(self, writer: SegmentWriter) -> None:
        if not writer.written or self._set is None:
            return
        set_name, meta = self._set
        state = self._catalog.sets.get(set_name)
        if state is None:
            state = self._catalog.sets[set_name] = SetState(set_name, meta(), created=now())
        state.pending.extend(writer.written)

    def input_table(self, name: str, source: str, store_text: bool, columns: Sequence[str]) -> InputTableWriter:
        """A writer for the input table ``name`` (rows in input order); hand it to :meth:`stage_input` when done."""
        return InputTableWriter(self._catalog.directory, L.safe_name(name), self._catalog.take_seq(), source,
                                store_text, columns)

    def stage_input(self, table: InputTableWriter) -> None:
        """Finish ``table`` and stage it; the same table as the committed one is dropped, the old one kept."""
        finished = table.finish()
        committed = self._catalog.inputs.get(finished.name)
        if committed is not None and committed.meta.get("digest") == finished.meta["digest"]:
            from embedx.store.sidepaths import segment_folder

            folder = segment_folder(self._catalog.path)
            if folder is not None:
                with folder:
                    for piece in [*finished.pieces, finished.final]:
                        folder.remove(piece.file)
        else:
            self._catalog.pending_inputs[finished.name] = finished

    def record_coverage(self, input_name: str, set_name: str, fingerprint: str, counts: dict[str, int]) -> None:
        """Note that the input (as fingerprinted) is fully covered by the set: the next run reads nothing."""
        name = L.safe_name(input_name)
        table = self._catalog.pending_inputs.get(name) or self._catalog.inputs.get(name)
        if table is None:
            return
        updated = record_coverage(self._catalog, table, set_name, fingerprint, counts)
        if updated is not table:
            self._catalog.pending_inputs[name] = updated

    def commit(self, merge: bool = True) -> float:
        """Map everything staged in a new index (small staged segments merged first, then the tiers; unless
        ``merge`` is false: segments other processes wrote large are kept as written); return the seconds."""
        started = time.perf_counter()
        self.close_set()
        wrote = commit(self._catalog, merge=merge) or self._catalog.path.exists()
        if wrote:
            if merge:
                compact_tiers(self._catalog)
            self._record()
        return time.perf_counter() - started

    def _record(self) -> None:
        """The index this writer wrote from checked parts needs no re-verification by the next process."""
        from embedx.store.verify import record_verified

        path = self._catalog.path
        if not path.exists():
            return
        try:
            for renamed_ok in (False, True):
                record_verified(path, self._catalog.directory, renamed_ok)
        except (OSError, StoreError):
            pass

    def _abandon(self) -> None:
        """Leaving without commit (an error): stop the writer thread; its segments are recovered next run."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except BaseException:
                pass
