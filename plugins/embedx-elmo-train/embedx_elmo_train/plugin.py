"""Registers ``embedx elmo train`` and ``embedx elmo export`` (the ``elmo`` entry point).

Importing this module imports only embedx's plugin API; the command module (typer) loads when
embedx builds its command line, TensorFlow when a command runs.
"""

from __future__ import annotations

from embedx.plugin_api import hookimpl


@hookimpl
def register_commands(cli):
    from embedx_elmo_train import cli as elmo_cli

    elmo_cli.register(cli)
