"""Swivel's errors: embedx errors, so the CLI prints them as one line without a traceback."""

from __future__ import annotations

from embedx.plugin_api import EmbedxError, InputError, OptionError


class SwivelError(EmbedxError):
    """Training or exporting cannot go on (e.g. nothing co-occurs)."""


class CorpusError(InputError):
    """A corpus source is missing, unreadable, or holds no usable text."""


class SwivelOptionError(OptionError):
    """An option value is out of range or inconsistent with the others."""
