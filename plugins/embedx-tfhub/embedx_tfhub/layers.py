"""The BERT ``layers`` option: which entries of the encoder's ``encoder_outputs`` to read.

Indices count transformer blocks as Hugging Face's ``hidden_states`` does, so the same
``layers`` value means the same layer in ``tfhub-bert`` and in the transformers plugin:
``1`` is the first block, ``L`` (or ``-1``) the last, negatives count from the top. TF Hub BERT
encoders do not expose the embedding output, so ``0`` is refused and ``all`` means blocks 1..L
(L layers, not L+1).
"""

from __future__ import annotations

ALL = "all"


def parse_layers(text: str) -> tuple[int, ...] | None:
    """``"-1"``, ``"-1,-2"``, ``"1,6"`` or ``"all"`` (``None``); a typo is a ``ValueError`` naming the option."""
    cleaned = str(text).strip().lower().replace(" ", "")
    if cleaned == ALL:
        return None
    try:
        indices = tuple(int(p) for p in cleaned.split(","))
    except ValueError:
        raise ValueError(f"layers={text!r}: expected an index (-1), a comma list (-1,-2,-3,-4) or 'all'") from None
    if 0 in indices:
        raise ValueError(f"layers={text!r}: TF Hub BERT encoders do not expose the embedding output (layer 0); "
                         "use 1..L or negative indices")
    if len(set(indices)) != len(indices):
        raise ValueError(f"layers={text!r}: an index appears twice")
    return indices


def resolve_layers(indices: tuple[int, ...] | None, num_layers: int) -> tuple[int, ...]:
    """Positions in ``encoder_outputs`` (0-based) for a model with ``num_layers`` blocks."""
    if indices is None:
        return tuple(range(num_layers))
    out = []
    for index in indices:
        if not (1 <= index <= num_layers or -num_layers <= index <= -1):
            raise ValueError(f"layers: this encoder has blocks 1..{num_layers} (or -{num_layers}..-1), not {index}")
        out.append(index - 1 if index > 0 else num_layers + index)
    if len(set(out)) != len(out):
        raise ValueError("layers: two indices name the same block")
    return tuple(out)
