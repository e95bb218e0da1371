"""The embedder contract: a batch of texts in, named float arrays out.

A plugin author subclasses :class:`Embedder`, declares its outputs, writes ``embed_batch``
and, when loading is expensive, ``load``. Options are the keyword parameters of ``__init__``;
embedx reads their names, types and defaults from the signature, so there is no separate
schema to keep in sync, and every option value enters the cache key.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

DOCUMENT = "document"
TOKEN = "token"
LEVELS = (DOCUMENT, TOKEN)


@dataclass(frozen=True)
class Output:
    """One named output an embedder can produce.

    Document outputs are ``[batch, dim]``; token outputs are ragged, ``[n_tokens, dim]`` per
    text. With ``per_layer`` a layer axis comes before ``dim`` (``[batch, layers, dim]``,
    ``[n_tokens, layers, dim]``), so a head can learn the layer mix later. ``dim`` and
    ``layers`` may be ``None`` when only the loaded model knows them.
    """

    name: str
    level: str
    dim: int | None = None
    per_layer: bool = False
    layers: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"output {self.name!r}: level must be one of {LEVELS}, not {self.level!r}")


@dataclass
class Ragged:
    """A token-level output for one batch: an array per text, and the tokens those rows stand for."""

    arrays: list[Any]
    tokens: list[list[str]]


@dataclass
class Embeddings:
    """What ``embed_batch`` may return when it has more to say than the arrays.

    ``truncated[i]`` is how many tokens of text ``i`` were cut by ``max_length`` (0 if none);
    embedx counts and stores it so a user can see what was lost.
    """

    outputs: Mapping[str, Any]
    truncated: list[int] | None = None


class Embedder(abc.ABC):
    """Base class of every embedder, built-in or third-party.

    Subclasses set the class attributes, take their options as keyword arguments of
    ``__init__`` (with type hints and defaults), keep ``__init__`` cheap, and do heavy work
    (imports, model loading) in :meth:`load`, which embedx calls once before the first batch.
    """

    #: Default id; ``register(cls, id=...)`` may register the class under other ids too.
    id: ClassVar[str] = ""
    #: One line shown by ``embedx embedders``.
    description: ClassVar[str] = ""
    #: Every output this embedder can produce.
    outputs: ClassVar[tuple[Output, ...]] = ()
    #: Outputs computed when the user does not choose.
    default_outputs: ClassVar[tuple[str, ...]] = ()
    #: Modules that must be importable to run, mapped to the command that installs them.
    requires: ClassVar[Mapping[str, str]] = {}
    #: Distributions whose versions change the output; they enter the cache key.
    versioned: ClassVar[tuple[str, ...]] = ()
    #: Options left out of the cache key because ``identity()`` already pins what they point
    #: at (a file path whose content hash is in the identity): moving a file keeps its cache.
    unkeyed_options: ClassVar[tuple[str, ...]] = ()
    #: Batch size used when the user gives none.
    batch_size: ClassVar[int] = 64
    #: The shared pooling names (:data:`embedx.contract.vocabulary.POOLING`) its ``pooling`` option accepts.
    pooling_choices: ClassVar[tuple[str, ...]] = ()
    #: True when it takes the shared ``layers`` option (and ``layer_combine``), so layer sweeps include it.
    layer_options: ClassVar[bool] = False
    #: Old option names still accepted, ``{old: shared name}`` (e.g. ``{"handle": "model"}``), or
    #: ``{old: (shared name, {old value: new value})}`` when the values change too; a warning says so.
    option_aliases: ClassVar[Mapping[str, str | tuple[str, Mapping[str, Any]]]] = {}

    def load(self) -> None:
        """Import heavy libraries and load the model. Called once, before the first batch."""

    @abc.abstractmethod
    def embed_batch(self, texts: list[str]) -> Mapping[str, Any] | Embeddings:
        """Embed ``texts``; return ``{output_name: array}`` for every requested output.

        ``self.requested_outputs`` says which outputs to compute. Document outputs are float
        arrays ``[len(texts), dim]``; token outputs are :class:`Ragged`.
        """

    def identity(self) -> dict[str, Any]:
        """Facts beyond the options that change the output, e.g. a model file's content hash.

        Called after construction, before ``load``; keep it cheap or cache it.
        """
        return {}

    def output_specs(self) -> tuple[Output, ...]:
        """The outputs with dimensions as known now; subclasses refine this after ``load``."""
        return self.outputs

    def unavailable_reason(self) -> str | None:
        """Why this embedder cannot run here as configured, in a few words, or ``None`` if it can.

        ``embedx embedders`` shows it and ``embedx extract`` refuses at once with it, instead of
        failing in ``load()`` after the imports. Keep it cheap: look for files (a model folder, a
        cached hub module, a device), never load a model. Missing Python packages are already
        covered by ``requires``.
        """
        return None

    # Set by embedx before load(); plugins read it, they do not set it.
    requested_outputs: tuple[str, ...] = ()

    @classmethod
    def output(cls, name: str) -> Output:
        for out in cls.outputs:
            if out.name == name:
                return out
        raise KeyError(name)
