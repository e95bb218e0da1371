"""The plugin API: everything a plugin package may import from embedx, in one versioned module.

Plugins (the built-in families under ``plugins/`` too) import from here and from
:mod:`embedx.plugin_api.testing` in their tests, nothing else of embedx, so the core can move
its internals without breaking them. A test in the core suite enforces this. ``API_VERSION``
changes its major number only when a name here is removed or changes meaning.

Names that pull in a larger part of embedx (the command helpers, heads, datasets) load on
first use, so importing this module stays as cheap as importing :mod:`embedx`.
"""

from __future__ import annotations

import importlib
from typing import Any

from embedx.contract.embedder import DOCUMENT, TOKEN, Embedder, Embeddings, Output, Ragged
from embedx.contract.errors import (
    EmbedderOutputError,
    EmbedderUnavailable,
    EmbedxError,
    InputError,
    OptionError,
    RegistryError,
    StoreError,
)
from embedx.contract.hookspecs import hookimpl
from embedx.contract.options import option_specs
from embedx.contract.vocabulary import (
    LAYER_COMBINE,
    LAYERS_HELP,
    MODEL_OPTION,
    POOLING,
    LayerSpec,
    canonical_pooling,
    check_pooling,
    parse_layers,
)
from embedx.files.atomic import atomic_write, fsync_path
from embedx.files.digests import cache_root, cached_file_digest, file_digest, folder_digest
from embedx.files.vector_files import FORMATS as VECTOR_FORMATS
from embedx.files.vector_files import check_vector_sizes, open_maybe_compressed, split_suffix
from embedx.files.vector_files import detect_format as detect_vector_format

API_VERSION = "1.4"

_LAZY = {
    # command line: one-line errors for plugin commands, shared choices
    "guarded_with": ("embedx.commands", "guarded_with"),
    "fail": ("embedx.commands", "fail"),
    "EncodingErrors": ("embedx.commands", "EncodingErrors"),
    "progress_bar": ("embedx.pipeline.progress", "progress_bar"),
    # fine-tuning baselines and heads registered by plugins
    "FineTuner": ("embedx.finetune", "FineTuner"),
    "FineTuneResult": ("embedx.finetune", "FineTuneResult"),
    "Head": ("embedx.heads.base", "Head"),
    # labelled datasets fetched from package registries (for fine-tuners and trainers)
    "load_dataset": ("embedx.datasets", "load"),
    "split_dataset": ("embedx.datasets", "split"),
    "DATASETS": ("embedx.datasets", "DATASETS"),
    "DatasetError": ("embedx.datasets", "DatasetError"),
}

__all__ = [
    "API_VERSION",
    "DOCUMENT",
    "TOKEN",
    "Embedder",
    "Embeddings",
    "Output",
    "Ragged",
    "hookimpl",
    "EmbedxError",
    "EmbedderUnavailable",
    "EmbedderOutputError",
    "InputError",
    "OptionError",
    "RegistryError",
    "StoreError",
    "option_specs",
    "file_digest",
    "cached_file_digest",
    "folder_digest",
    "cache_root",
    "atomic_write",
    "fsync_path",
    "VECTOR_FORMATS",
    "detect_vector_format",
    "open_maybe_compressed",
    "split_suffix",
    "check_vector_sizes",
    "POOLING",
    "LAYER_COMBINE",
    "LAYERS_HELP",
    "MODEL_OPTION",
    "LayerSpec",
    "canonical_pooling",
    "check_pooling",
    "parse_layers",
    *_LAZY,
]


def __dir__() -> list[str]:
    """Lists the lazily loaded names too."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'embedx.plugin_api' has no attribute {name!r}")
