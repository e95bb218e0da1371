"""Shape buckets, so a ``tf.function`` sees a bounded set of input shapes and traces a bounded number of times.

A ``tf.function`` without an input signature traces (builds and optimises a graph: tens to
hundreds of milliseconds for a BERT) for every new input shape. Batches of texts have every
possible ``(batch, length)``; padding the length up to a power of two (at least
``MIN_LENGTH``, at most the length cap) and the batch up to a power of two (at most the
largest batch seen) leaves ``O(log(max_length) * log(batch_size))`` shapes. The padding costs at
most 2x compute on the padded axis, and nothing in the results: padded positions and rows are
masked and dropped.
"""

from __future__ import annotations

MIN_LENGTH = 8


def bucket(n: int, cap: int | None = None, minimum: int = 1) -> int:
    """The smallest power of two >= ``max(n, minimum)``, but never above ``cap`` (then ``cap``)."""
    size = max(minimum, 1)
    while size < n:
        size *= 2
    return min(size, cap) if cap is not None else size


def length_buckets(cap: int) -> list[int]:
    """Every padded length ``bucket`` can produce for lengths 1..``cap``."""
    sizes = {bucket(n, cap, MIN_LENGTH) for n in (1, cap)}
    size = MIN_LENGTH
    while size < cap:
        sizes.add(size)
        size *= 2
    return sorted(sizes)
