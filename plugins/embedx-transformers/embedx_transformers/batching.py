"""Split one incoming batch into forward passes under a padded-token budget: exact or bucketed shapes.

A forward pass costs about (sequences x longest sequence) padded tokens plus a fixed
per-call overhead. ``plan_exact`` sorts by length and picks the best split into contiguous
groups with a small dynamic programme: least padding, never a pass over ``budget`` padded
tokens (a single sequence always runs, whatever its length). That is what a CPU wants.

An accelerator wants few distinct shapes instead: kernels and attention plans are built per
input shape (cuDNN's attention builds an execution plan for every new (batch, length)), and the
exact plan gives nearly every pass a new one. ``plan_bucketed`` pads lengths up to a few
steps (multiples of 8 up to 64, of 16 up to 128, of 32 up to 512, then of 64) and rows up to
``budget // length`` or a power of two below it, so a whole corpus runs in a few dozen shapes.
Padding rows and positions are masked, so they change no real position's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fixed cost of one forward call, in padded-token equivalents (measured on CPU for MiniLM).
CALL_OVERHEAD = 64
#: (up to this length, pad to a multiple of this step), in order; longer lengths use the last step.
LENGTH_STEPS = ((64, 8), (128, 16), (512, 32), (1 << 62, 64))


@dataclass(frozen=True)
class Pass:
    """One forward pass: which sequences run (longest first), padded to ``rows`` x ``length``."""

    members: np.ndarray  # indices into the sequences, len(members) <= rows
    rows: int
    length: int


def plan_exact(lengths: list[int] | np.ndarray, budget: int, overhead: int = CALL_OVERHEAD) -> list[Pass]:
    """Passes of contiguous length-sorted groups, minimising padded tokens + overhead per call."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return [Pass(group, len(group), int(lengths[group].max())) for group in plan_batches(lengths, budget, overhead)]


def plan_batches(lengths: list[int] | np.ndarray, budget: int, overhead: int = CALL_OVERHEAD) -> list[np.ndarray]:
    """Groups of indices into ``lengths``, longest first, minimising padded tokens + overhead per call."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    sorted_len = lengths[order]
    m = len(order)
    best = np.zeros(m + 1)
    cut = np.zeros(m + 1, dtype=np.int64)
    for end in range(1, m + 1):
        widest = max(1, budget // max(int(sorted_len[end - 1]), 1))  # the group's longest is >= this length
        starts = np.arange(max(0, end - widest), end)
        padded = (end - starts) * sorted_len[starts]
        cost = best[starts] + padded + overhead
        cost[(padded > budget) & (starts != end - 1)] = np.inf
        pick = int(np.argmin(cost))
        best[end], cut[end] = cost[pick], starts[pick]
    groups = []
    end = m
    while end > 0:
        groups.append(order[cut[end]:end])
        end = int(cut[end])
    return groups[::-1]


def bucket_length(n: int, limit: int | None = None) -> int:
    """``n`` rounded up to its length step, but never beyond ``limit`` (the model's positions) nor below ``n``."""
    for upto, step in LENGTH_STEPS:
        if n <= upto:
            padded = -(-n // step) * step
            return max(n, min(padded, limit)) if limit else padded
    raise AssertionError("unreachable")


def bucket_rows(n: int, most: int) -> int:
    """Rows for a pass of ``n`` sequences: ``most`` when full, else the next power of two (at most ``most``)."""
    return most if n >= most else min(most, 1 << max(0, (n - 1).bit_length()))


def plan_bucketed(lengths: list[int] | np.ndarray, budget: int, limit: int | None = None) -> list[Pass]:
    """Longest first, each pass filled up to ``budget // bucketed length`` rows (a multiple of 8 when >= 8)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    passes, start = [], 0
    while start < len(order):
        length = bucket_length(int(lengths[order[start]]), limit)
        most = max(1, budget // length)
        most = most - most % 8 if most >= 8 else most
        members = order[start:start + most]
        passes.append(Pass(members, bucket_rows(len(members), most), length))
        start += len(members)
    return passes
