"""Which hidden states to read: the ``layers`` option parsed, resolved against a model, and sized.

Indices address ``output_hidden_states``: 0 is the embedding output, 1..L the encoder layers,
negative counts from the top (-1 = last layer). Parsing needs no model, so a typo fails when
the embedder is built; resolving against the layer count happens once the config is known.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL = "all"


@dataclass(frozen=True)
class LayerSpec:
    """The parsed ``layers`` option: ``ALL`` or a tuple of (possibly negative) indices in the order given."""

    text: str
    indices: tuple[int, ...] | None  # None means every hidden state

    @property
    def is_all(self) -> bool:
        return self.indices is None

    def resolve(self, num_layers: int) -> tuple[int, ...]:
        """Non-negative hidden-state indices for a model with ``num_layers`` encoder layers (L+1 states)."""
        states = num_layers + 1
        if self.indices is None:
            return tuple(range(states))
        out = []
        for index in self.indices:
            if not -states <= index < states:
                raise ValueError(f"layers={self.text}: this model has hidden states 0..{num_layers} "
                                 f"(or -{states}..-1; 0 is the embedding output)")
            out.append(index % states)
        if len(set(out)) != len(out):
            raise ValueError(f"layers={self.text}: two indices name the same hidden state")
        return tuple(out)


def parse_layers(text: str) -> LayerSpec:
    """``"-1"``, ``"-1,-2,-3,-4"`` or ``"all"``; anything else is a ``ValueError`` naming the option."""
    cleaned = str(text).strip().lower()
    if cleaned == ALL:
        return LayerSpec(ALL, None)
    parts = [p.strip() for p in cleaned.split(",")]
    try:
        indices = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"layers={text!r}: expected an index (-1), a comma list (-1,-2,-3,-4) or 'all'") from None
    if len(set(indices)) != len(indices):
        raise ValueError(f"layers={text!r}: an index appears twice")
    return LayerSpec(cleaned.replace(" ", ""), indices)


def output_width(hidden: int, n_layers: int, combine: str, per_layer: bool) -> int:
    """Width of one token row after layers are combined: per layer, concatenated, or averaged."""
    if per_layer or combine == "mean":
        return hidden
    return hidden * n_layers
