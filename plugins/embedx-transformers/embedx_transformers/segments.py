"""How one text's word pieces become model inputs: kept whole, cut to ``max_length``, or windowed.

``capacity`` is the number of content pieces one sequence holds (``max_length`` minus the
special tokens). A longer text is either cut (right or left; the cut is counted) or, with
``window_stride``, covered by overlapping windows that advance ``stride`` pieces each and
whose last window ends exactly at the text's end. Every piece is then taken from the window
in which it sits most centrally (the window whose centre is nearest), so each piece sees as
much context on both sides as the windows allow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TextPlan:
    """The content spans ``[start, end)`` to run for one text, and how many pieces were cut."""

    spans: tuple[tuple[int, int], ...]
    truncated: int

    @property
    def windowed(self) -> bool:
        return len(self.spans) > 1

    @property
    def kept(self) -> tuple[int, int]:
        """The content pieces the outputs stand for: the first span's start to the last span's end."""
        return self.spans[0][0], self.spans[-1][1]


def plan_text(n: int, capacity: int, side: str = "right", stride: int | None = None) -> TextPlan:
    """One span if ``n`` fits; else a cut (``side``) or, with ``stride``, overlapping windows."""
    if n <= capacity:
        return TextPlan(((0, n),), 0)
    if stride is not None:
        return TextPlan(tuple((s, s + capacity) for s in window_starts(n, capacity, stride)), 0)
    if side == "left":
        return TextPlan(((n - capacity, n),), n - capacity)
    return TextPlan(((0, capacity),), n - capacity)


def window_starts(n: int, capacity: int, stride: int) -> list[int]:
    """Starts 0, stride, 2*stride, ... while a window ends before ``n``, then one window flush with the end."""
    starts = list(range(0, n - capacity, stride))
    return starts + [n - capacity]


def owners(spans: tuple[tuple[int, int], ...], n: int) -> np.ndarray:
    """For each of ``n`` pieces, the window whose centre is nearest (ties: the earlier window).

    Windows have equal length, so the nearest centre is the window where the piece is farthest
    from both edges; it always contains the piece when the windows cover the text.
    """
    centres = np.array([(s + e - 1) / 2 for s, e in spans])
    positions = np.arange(n)
    right = np.clip(np.searchsorted(centres, positions), 0, len(centres) - 1)
    left = np.clip(right - 1, 0, len(centres) - 1)
    take_left = np.abs(positions - centres[left]) <= np.abs(centres[right] - positions)
    return np.where(take_left, left, right)
