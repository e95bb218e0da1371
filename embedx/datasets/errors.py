"""Dataset errors: each names the dataset and says what to do next, so the CLI can print it as is."""

from __future__ import annotations

from embedx.contract.errors import EmbedxError


class DatasetError(EmbedxError):
    """A dataset is unknown, not fetched, corrupt in the cache, or asked for with bad split settings."""


class NotFetched(DatasetError):
    """The dataset has not been downloaded into the cache yet."""


class FetchError(DatasetError):
    """Downloading or unpacking a dataset's source package failed (no pip/npm, registry unreachable, ...)."""
