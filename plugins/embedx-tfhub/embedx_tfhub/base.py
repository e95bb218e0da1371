"""What every TF Hub embedder shares: the ``handle`` option, its identity, requirements, and loading.

Subclasses stay importable without TensorFlow (``embedx --help`` imports them through the
plugin module); TensorFlow arrives in ``load()`` through :mod:`embedx_tfhub._tf`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from embedx.plugin_api import Embedder
from embedx_tfhub import handles

REQUIRES = {
    "tensorflow": "pip install tensorflow==2.21.0",
    "tensorflow_hub": "pip install tensorflow-hub==0.16.1 'setuptools<82'",
}


class TfHubEmbedder(Embedder):
    """Base of the TF Hub embedders: ``self.handle`` is a URL or a module folder."""

    requires: ClassVar[dict[str, str]] = REQUIRES
    versioned: ClassVar[tuple[str, ...]] = ("tensorflow", "tensorflow-hub")
    # identity() pins the module: a URL names an immutable published version, a folder is
    # hashed, so where a folder lives does not change the cache key.
    # trust_module decides whether a module may load, not what it computes
    unkeyed_options: ClassVar[tuple[str, ...]] = ("model", "trust_module")
    option_aliases: ClassVar[dict[str, str]] = {"handle": "model"}  # the name before the shared vocabulary

    handle: str
    _identity: dict[str, Any] | None = None

    trust_module: bool = False

    def _init_handle(self, handle: str, trust_module: bool = False) -> None:
        handles.check_handle(handle)
        self.handle, self.trust_module = handle, trust_module
        self.module: Any = None

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = handles.identity(self.handle)
        return dict(self._identity)

    def unavailable_reason(self) -> str | None:
        """A URL runs only once its module is in the TF Hub cache (nothing can be downloaded offline)."""
        if handles.local_folder(self.handle) is None:
            return (f"TF Hub module {self.handle} is not in the TF Hub cache: offline, unpack it into "
                    f"{handles.cached_folder(self.handle)} (TFHUB_CACHE_DIR) or pass a module folder as -O model=...")
        return None

    def _load_module(self) -> Any:
        self.module = handles.load(self.handle, self.trust_module)
        return self.module

    def _ensure_loaded(self) -> None:
        if self.module is None:
            self.load()
