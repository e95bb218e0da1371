"""The words every embedder plugin shares: pooling names, the layer specification, option names.

One concept, one spelling, whatever library computes it, so ``-O pooling=mean -O layers=-2``
means the same thing for a Hugging Face model, a TF Hub BERT, a Flair transformer or ELMo, and
``embedx bench compare`` can sweep layers and pooling over every plugin that declares them
(:attr:`embedx.contract.embedder.Embedder.pooling_choices`, :attr:`~embedx.contract.embedder.Embedder.layer_options`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Pooling over a text's positions (tokens, word pieces or words), always over real positions only.
POOLING: dict[str, str] = {
    "cls": "the first position's vector ([CLS] for BERT-style models)",
    "mean": "mean over positions",
    "max": "element-wise maximum over positions",
    "min": "element-wise minimum over positions",
    "sum": "sum over positions",
    "sqrtn": "sum divided by the square root of the number of positions",
    "mean_max": "mean and max concatenated (twice the width)",
    "last": "the last real position's vector",
}
#: Old spellings still accepted, mapped to the shared name.
POOLING_ALIASES: dict[str, str] = {"first": "cls"}

#: How several chosen layers become one vector: side by side, or averaged.
LAYER_COMBINE: dict[str, str] = {"concat": "layers side by side (width x layers)", "mean": "average of the layers"}

#: The option naming where the model is (a folder, a file, a hub id or URL), in every plugin.
MODEL_OPTION = "model"

ALL_LAYERS = "all"

LAYERS_HELP = ("which layers: an index (-1 = last, -2 = second to last, 0 = the embedding output where the model "
               "exposes it), a comma list (-1,-2,-3,-4), or 'all' (stored per layer for the layer-mix head)")


def canonical_pooling(value: str) -> str:
    """The shared name for ``value`` (``first`` becomes ``cls``).

    Unknown names pass through for the plugin to refuse.
    """
    cleaned = str(value).strip().lower()
    return POOLING_ALIASES.get(cleaned, cleaned)


def check_pooling(value: str, supported: tuple[str, ...], where: str) -> str:
    """``value`` in its shared spelling, or a ``ValueError`` naming ``where`` and what ``supported`` offers."""
    name = canonical_pooling(value)
    if name not in supported:
        raise ValueError(f"{where}: pooling={value!r} is not supported here; choose {', '.join(supported)}")
    return name


@dataclass(frozen=True)
class LayerSpec:
    """A parsed ``layers`` option: :data:`ALL_LAYERS` (``indices is None``) or indices in the order given."""

    text: str
    indices: tuple[int, ...] | None

    @property
    def is_all(self) -> bool:
        return self.indices is None

    def __len__(self) -> int:
        if self.indices is None:
            raise TypeError("'all' has no length until resolved against a model")
        return len(self.indices)


def parse_layers(text: str) -> LayerSpec:
    """``"-1"``, ``"-1,-2,-3,-4"`` or ``"all"``; spaces and case do not matter; a typo is a ``ValueError``."""
    cleaned = str(text).strip().lower().replace(" ", "")
    if cleaned == ALL_LAYERS:
        return LayerSpec(ALL_LAYERS, None)
    try:
        indices = tuple(int(p) for p in cleaned.split(","))
    except ValueError:
        raise ValueError(f"layers={text!r}: expected an index (-1), a comma list (-1,-2,-3,-4) or 'all'") from None
    if len(set(indices)) != len(indices):
        raise ValueError(f"layers={text!r}: an index appears twice")
    return LayerSpec(cleaned, indices)
