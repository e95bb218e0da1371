"""Which sets fully cover an input table as built from one input fingerprint, and what that run counted.

Recorded in the index, on the input table (attributes ``fingerprint`` and ``covered``, JSON
``{set name: counts}``), after a run that finished: the table was built from that input and
every one of its texts has a row in the set. A set's rows are never deleted, so the record
stays true while the table is the same and the set is the same set (its full configuration
hash, creation time and first segment number match, and it has at least the rows it had). A table replaced by
another input drops the records; anything that does not match exactly means the input is
read as usual. The attributes come from an untrusted file, so they are checked field by field.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeGuard

from embedx.store.catalog import Catalog, InputState
from embedx.store.segment import SegmentInfo

COUNTS = ("rows", "unique", "empty", "skipped_empty", "truncated_input")


def covered_counts(catalog: Catalog, input_name: str, set_name: str, config_hash: str,
                   fingerprint: str) -> dict[str, int] | None:
    """The counts of the run that covered this input, if a re-run would compute nothing; else ``None``."""
    if catalog.rewrite or catalog.pending_inputs or catalog.messages or any(s.pending for s in catalog.sets.values()):
        return None  # a killed run's leftovers or a recovery: the normal path commits or reports them
    table, state = catalog.inputs.get(input_name), catalog.sets.get(set_name)
    if table is None or state is None or not state.segments or table.meta.get("fingerprint") != fingerprint:
        return None
    covered = table.meta.get("covered")
    record = covered.get(set_name) if isinstance(covered, dict) else None
    if not isinstance(record, dict):
        return None
    if (record.get("config_hash") != config_hash or state.meta.get("config_hash") != config_hash
            or record.get("set_created") != state.created or not state.created):
        return None
    set_rows = record.get("set_rows")
    if not _count(set_rows) or state.rows < set_rows or record.get("set_first") != _first(state.segments):
        return None
    counts: dict[str, Any] = {k: record.get(k) for k in COUNTS}
    if not all(_count(v) for v in counts.values()):
        return None
    if counts["unique"] > counts["rows"] or counts["rows"] != table.final.rows:
        return None
    return counts


def record_coverage(catalog: Catalog, table: InputState, set_name: str, fingerprint: str | None,
                    counts: dict[str, int]) -> InputState:
    """``table`` with this run's coverage recorded (a new state; the same one when there is nothing to add)."""
    if fingerprint is None:
        return table
    state = catalog.sets.get(set_name)
    if state is None or not state.created:
        return table
    old = table.meta.get("covered") if table.meta.get("fingerprint") == fingerprint else None
    covered = dict(old) if isinstance(old, dict) else {}
    covered[set_name] = {"config_hash": state.meta.get("config_hash"), "set_created": state.created,
                         "set_rows": state.rows, "set_first": _first(state.all), **{k: int(counts[k]) for k in COUNTS}}
    meta = table.meta | {"fingerprint": fingerprint, "covered": covered}
    return table if meta == table.meta else replace(table, meta=meta)


def _first(segments: list[SegmentInfo]) -> int:
    """The set's first sequence number: merges and compaction keep it, a set made anew gets another."""
    return min((s.lo for s in segments), default=-1)


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
