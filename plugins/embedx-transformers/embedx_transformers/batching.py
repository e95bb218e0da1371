"""Split one incoming batch into forward passes of similar length under a padded-token budget.

A forward pass costs about (sequences x longest sequence) padded tokens plus a fixed
per-call overhead. Sorted by length, the best split into contiguous groups is a small dynamic
programme; it keeps padding waste low without shattering a batch into many tiny calls, and
never exceeds ``budget`` padded tokens (a single sequence always runs, whatever its length).
"""

from __future__ import annotations

import numpy as np

#: Fixed cost of one forward call, in padded-token equivalents (measured on CPU for MiniLM).
CALL_OVERHEAD = 64


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
