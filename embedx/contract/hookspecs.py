"""The hooks a plugin may implement. Built-in embedder families use exactly these."""

from __future__ import annotations

import pluggy

PROJECT = "embedx"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_embedders(register):
    """Register embedder classes: call ``register(EmbedderClass, ...)`` once per embedder id.

    ``register(cls, id=None, defaults=None, description="", requires=None)``: ``id`` defaults to
    ``cls.id``; ``defaults`` preset option values, so one class can serve several ids
    (``word-vectors`` for any file, ``glove-6b-50d`` for a packaged one); ``requires`` adds
    ``{module: install command}`` needed by this id only.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``embedx`` command line: ``cli`` is the root ``typer.Typer``.

    Keep the module that implements this light: it is imported for every command, even
    ``--help``. Import heavy libraries inside the command functions.
    """


@hookspec
def register_heads(register):
    """Register classifier heads trained on cached features: ``register(HeadClass, id=None, defaults=None, ...)``.

    Same ``register`` signature as ``register_embedders``; a head subclasses ``embedx.heads.Head``.
    """


@hookspec
def register_finetuners(register):
    """Register fine-tuning baselines (a model trained end to end on texts) for ``embedx bench compare``.

    Same ``register`` signature as ``register_embedders``; a fine-tuner subclasses ``embedx.finetune.FineTuner``.
    """
