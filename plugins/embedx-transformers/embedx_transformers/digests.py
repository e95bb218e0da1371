"""SHA-256 of model files, for the cache key of a local model.

The digests come from the core's persistent digest cache (``cached_file_digest`` in the plugin
API), keyed by path, size, mtime and inode, so a cached re-run of a 1.3 GB BERT-large never
re-reads its weights, and every plugin shares one implementation.
"""

from __future__ import annotations

from embedx.plugin_api import cached_file_digest


def file_digests(paths: list[str]) -> dict[str, str]:
    """``{path: sha256}`` for ``paths``, hashing only files not seen unchanged before."""
    return {p: cached_file_digest(p) for p in paths}
