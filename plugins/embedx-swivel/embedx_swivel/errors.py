"""Swivel's errors: embedx errors, so the CLI prints them as one line without a traceback."""

from __future__ import annotations

from embedx.plugin_api import EmbedxError, OptionError
from embedx_tfhub.corpus import CorpusError

__all__ = ["CorpusError", "SwivelError", "SwivelOptionError"]  # CorpusError: the shared corpus reader's


class SwivelError(EmbedxError):
    """Training or exporting cannot go on (e.g. nothing co-occurs)."""


class SwivelOptionError(OptionError):
    """An option value is out of range or inconsistent with the others."""
