"""Helpers for testing a plugin through embedx's public behaviour (part of the plugin API).

A plugin's tests build a registry that holds its embedders (:func:`installed_registry`), run
extractions (:func:`extractor`) or commands (:func:`cli_app`), and read the features back by
text (:class:`Stored`), without touching embedx internals. Plain functions and classes, no
pytest import: a plugin's ``conftest.py`` wraps them in fixtures of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import embedx
from embedx.registry import LOAD_PLUGINS_ENV, Registry, build_registry, get_registry, set_registry

__all__ = ["LOAD_PLUGINS_ENV", "Stored", "add_plugin_commands", "build_registry", "cli_app", "describe_embedders",
           "extractor", "get_registry", "installed_registry", "set_registry"]


class Stored:
    """Read back one feature set of a feature file, by text: document vectors, tokens, truncation.

    ``set_name`` is a set's name (``report.set_name``) or an embedder id; ``config_hash`` (a prefix
    will do) picks among several configurations of one embedder. ``output=None`` means the set's
    only output of that level, and is refused when it has several: a test names what it checks.
    """

    def __init__(self, path: str | os.PathLike[str], set_name: str, config_hash: str | None = None) -> None:
        self.path, self.set_name, self.config_hash = path, set_name, config_hash

    def doc(self, texts: Sequence[str], output: str | None = None) -> np.ndarray:
        """Document vectors ``[len(texts), dim]`` (or ``[len(texts), layers, dim]``), duplicates repeated."""
        with embedx.open_store(self.path) as store:
            fs = store.feature_set(self.set_name, self.config_hash)
            found: np.ndarray = fs.vectors(texts, output=_only(fs, output, "document"))
            return found

    def tokens(self, texts: Sequence[str], output: str | None = None) -> list[tuple[list[str], np.ndarray]]:
        """Per text, its tokens and their vectors."""
        with embedx.open_store(self.path) as store:
            fs = store.feature_set(self.set_name, self.config_hash)
            found: list[tuple[list[str], np.ndarray]] = fs.tokens(texts, output=_only(fs, output, "token"))
            return found

    def truncated(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens cut by ``max_length`` per text."""
        with embedx.open_store(self.path) as store:
            found: np.ndarray = store.feature_set(self.set_name, self.config_hash).truncated(texts)
            return found

    def info(self) -> Any:
        """The set's ``SetInfo``: configuration, outputs, rows."""
        with embedx.open_store(self.path) as store:
            return store.feature_set(self.set_name, self.config_hash).info


def _only(fs: Any, output: str | None, level: str) -> str:
    if output is not None:
        return output
    names = [o["name"] for o in fs.info.outputs if o["level"] == level]
    if len(names) != 1:
        raise ValueError(f"set {fs.info.name} has {len(names)} {level}-level outputs ({', '.join(names) or 'none'}): "
                         "name one with output=")
    return str(names[0])


Extract = Callable[..., tuple[Any, Stored]]


def extractor(registry: Registry, folder: str | os.PathLike[str], *, embedder: str | None = None,
              outputs: Sequence[str] | None = None,
              defaults: Mapping[str, Mapping[str, Any]] | None = None) -> Extract:
    """A function that runs a real ``embedx.extract`` with ``registry`` and returns ``(report, Stored)``.

    The ``extract`` fixture of a plugin's conftest is one line around it::

        @pytest.fixture
        def extract(registry, tmp_path):
            return extractor(registry, tmp_path, embedder="word-vectors", outputs=("doc",))

    and a test calls ``extract(texts, "my-embedder", outputs=("doc", "tokens"), store=path,
    batch_size=8, model=...)``: keywords other than ``outputs``, ``store`` (default
    ``folder/features.h5``) and ``batch_size`` are the embedder's options. ``embedder`` and
    ``outputs`` are the defaults when a test leaves them out (``outputs=None``: the embedder's
    default outputs); ``defaults`` maps an embedder id to option values used unless the test
    gives them (e.g. ``{"minilm-l6": {"normalize": False}}``).
    """

    def run(texts: Sequence[str], embedder: str | None = embedder, *, outputs: Sequence[str] | None = outputs,
            store: str | os.PathLike[str] | None = None, batch_size: int | None = None,
            **options: Any) -> tuple[Any, Stored]:
        if embedder is None:
            raise TypeError("extract() needs an embedder id")
        target = store or os.path.join(folder, "features.h5")
        options = {**(defaults or {}).get(embedder, {}), **options}
        report = embedx.extract(texts, embedder, target, options=options, registry=registry,
                                outputs=list(outputs) if outputs else None, batch_size=batch_size)
        return report, Stored(target, report.set_name)

    return run


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
