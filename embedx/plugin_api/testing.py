"""Helpers for testing a plugin through embedx's public behaviour (part of the plugin API).

A plugin's tests build a registry that holds its embedders, run extractions or commands, and
read the features back by text, without touching embedx internals.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

import embedx
from embedx.registry import LOAD_PLUGINS_ENV, Registry, build_registry, get_registry, set_registry

__all__ = ["LOAD_PLUGINS_ENV", "Stored", "add_plugin_commands", "build_registry", "cli_app", "describe_embedders",
           "get_registry", "installed_registry", "set_registry"]


class Stored:
    """Read back one feature set of a feature file, by text: document vectors, tokens, truncation."""

    def __init__(self, path: str | os.PathLike[str], set_name: str) -> None:
        self.path, self.set_name = path, set_name

    def doc(self, texts: Sequence[str]) -> np.ndarray:
        with embedx.open_store(self.path) as store:
            found: np.ndarray = store.feature_set(self.set_name).vectors(texts, output="doc")
            return found

    def tokens(self, texts: Sequence[str]) -> list[tuple[list[str], np.ndarray]]:
        with embedx.open_store(self.path) as store:
            found: list[tuple[list[str], np.ndarray]] = store.feature_set(self.set_name).tokens(texts, output="tokens")
            return found

    def truncated(self, texts: Sequence[str]) -> np.ndarray:
        with embedx.open_store(self.path) as store:
            found: np.ndarray = store.feature_set(self.set_name).truncated(texts)
            return found

    def info(self) -> Any:
        with embedx.open_store(self.path) as store:
            return store.feature_set(self.set_name).info


def installed_registry(required: set[str], install_hint: str) -> Registry:
    """The registry with every installed plugin, whatever EMBEDX_LOAD_PLUGINS says; checks ``required`` ids exist."""
    saved = os.environ.pop(LOAD_PLUGINS_ENV, None)
    try:
        registry = build_registry()
    finally:
        if saved is not None:
            os.environ[LOAD_PLUGINS_ENV] = saved
    missing = required - set(registry.embedders)
    assert not missing, f"embedders {sorted(missing)} are not registered: {install_hint}"
    return registry


def cli_app() -> Any:
    """The ``embedx`` typer app with every plugin's commands added, for ``typer.testing.CliRunner``."""
    from embedx.cli import add_plugin_commands, app

    add_plugin_commands(app)
    return app


def add_plugin_commands(cli: Any) -> None:
    """Add every installed plugin's commands to ``cli`` (a ``typer.Typer``), as ``embedx`` does at start-up."""
    from embedx.cli import add_plugin_commands as add

    add(cli)


def describe_embedders(registry: Registry | None = None) -> Any:
    """What ``embedx embedders --json`` prints, as Python objects."""
    from embedx.listing import describe_embedders as describe

    return describe(registry)
