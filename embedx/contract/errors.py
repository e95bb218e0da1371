"""Exceptions with messages meant for the person at the terminal, not for a debugger."""

from __future__ import annotations


class EmbedxError(Exception):
    """Base class: the CLI prints these as one clear message, without a traceback."""


class InputError(EmbedxError):
    """Bad user input: names the file and line (or field) at fault."""


class RegistryError(EmbedxError):
    """A plugin or embedder cannot be registered, found or built."""


class OptionError(EmbedxError):
    """An embedder option is unknown, missing or has a bad value."""


class EmbedderOutputError(EmbedxError):
    """An embedder returned something that breaks the contract (shape, dtype, NaN)."""


class EmbedderUnavailable(EmbedxError):
    """An embedder cannot run here: missing dependency, offline model hub, missing file."""


class StoreError(EmbedxError):
    """A feature file is missing, corrupt, foreign, locked, or lacks what was asked for."""
