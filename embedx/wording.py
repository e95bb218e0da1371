"""Counts in messages: ``plural(1, "text")`` is "1 text", ``plural(2, "text")`` "2 texts", never "1 texts"."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` with thousands separators and ``noun`` in the right number (``many`` for irregular plurals)."""
    word = noun if count == 1 else (many or (noun + "es" if noun.endswith(("s", "x", "ch", "sh")) else noun + "s"))
    return f"{count:,} {word}"
