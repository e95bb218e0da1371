"""embedx: compute features from pretrained text models once, cache them in HDF5, reuse them.

Only light modules load here; the extraction API and the HDF5 reader are imported on first use,
so ``embedx --help`` and ``import embedx`` stay instant.
"""

from __future__ import annotations

from typing import Any

from embedx.contract.embedder import DOCUMENT, TOKEN, Embedder, Embeddings, Output, Ragged
from embedx.contract.errors import EmbedxError
from embedx.contract.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["DOCUMENT", "TOKEN", "Embedder", "Embeddings", "EmbedxError", "Output", "Ragged", "hookimpl",
           "extract", "embed", "open_store", "__version__"]

_LAZY = {"extract": ("embedx.pipeline.extraction", "extract"), "open_store": ("embedx.api", "open_store"),
         "embed": ("embedx.api", "embed")}


def __dir__() -> list[str]:
    """Lists the lazily loaded names too, so ``dir(embedx)`` and tab completion show the whole public API."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'embedx' has no attribute {name!r}")
