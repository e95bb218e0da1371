"""Embedder specs on the command line: ``id`` or ``id:key=value:key=value`` (options, as with -O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedx.contract.errors import OptionError


@dataclass(frozen=True)
class EmbedderSpec:
    id: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.id}[{extra}]" if extra else self.id


def parse_spec(text: str) -> EmbedderSpec:
    head, *pairs = text.split(":")
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"embedder spec {text!r}: {pair!r} is not key=value (use id:key=value:key=value)")
        options[key] = value
    if not head:
        raise OptionError(f"embedder spec {text!r} has no embedder id")
    return EmbedderSpec(head, options)
