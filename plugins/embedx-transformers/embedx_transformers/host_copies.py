"""Results of forward passes on their way back to the host, collected a few passes late.

On CUDA each pass's pooled rows (and, when needed, its token states) are copied into pinned
host buffers without blocking, behind an event; the encoder reads a pass only when later
passes are already queued, so the device never waits for Python to scatter results. On the
CPU the tensors are already on the host and nothing is copied.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import torch

#: Passes queued on the device before the oldest one is read back.
IN_FLIGHT = 2


class HostCopy:
    """Named device tensors (or ``None``) of one pass, copied to pinned host memory behind a CUDA event."""

    def __init__(self, tensors: dict[str, torch.Tensor | None], device: torch.device):
        self.event = None
        if device.type != "cuda":
            self.tensors = tensors
            return
        self.tensors = {name: _pinned_copy(t) if t is not None else None for name, t in tensors.items()}
        self.event = torch.cuda.Event()
        self.event.record()

    def wait(self) -> dict[str, torch.Tensor | None]:
        """The host tensors, once the copies are done."""
        if self.event is not None:
            self.event.synchronize()
        return self.tensors


def _pinned_copy(tensor: torch.Tensor) -> torch.Tensor:
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    return host.copy_(tensor, non_blocking=True)


def lagged(items: Iterator[tuple[Any, HostCopy]], lag: int = IN_FLIGHT) -> Iterator[tuple[Any, dict]]:
    """``(info, host tensors)`` for each ``(info, HostCopy)``, read ``lag`` passes after it was queued."""
    queue: deque[tuple[Any, HostCopy]] = deque()
    for item in items:
        queue.append(item)
        if len(queue) > lag:
            info, copy = queue.popleft()
            yield info, copy.wait()
    while queue:
        info, copy = queue.popleft()
        yield info, copy.wait()
