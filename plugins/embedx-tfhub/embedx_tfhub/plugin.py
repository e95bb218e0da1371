"""Registers the TF Hub embedders and the ``embedx tfhub`` commands (the ``tfhub`` entry point).

Importing this module must stay cheap and quiet: it imports neither TensorFlow nor absl and
touches no environment variable. TensorFlow is imported when an embedder loads or a command
that needs it runs (see :mod:`embedx_tfhub._tf`).
"""

from __future__ import annotations

from embedx.plugin_api import hookimpl
from embedx_tfhub.bert import TfHubBert
from embedx_tfhub.elmo import Elmo
from embedx_tfhub.elmo_trained import TrainedElmo
from embedx_tfhub.text_embedding import PRESETS, TextEmbedding


@hookimpl
def register_embedders(register):
    register(TextEmbedding)
    for embedder_id, (url, description) in PRESETS.items():
        register(TextEmbedding, id=embedder_id, defaults={"model": url}, description=description)
    register(Elmo)
    register(TrainedElmo)
    register(TfHubBert)


@hookimpl
def register_commands(cli):
    from embedx_tfhub.commands import app

    cli.add_typer(app, name="tfhub")


@hookimpl
def register_finetuners(register):
    from embedx_tfhub.elmo_trained import TrainedElmoFineTuner
    from embedx_tfhub.finetune import KerasHubFineTuner

    register(KerasHubFineTuner)
    register(TrainedElmoFineTuner)
