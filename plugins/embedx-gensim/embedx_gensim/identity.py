"""Content hashes of vector files, computed once per process per file version.

embedx calls ``identity()`` on every run; hashing a multi-gigabyte vector file each time would
dominate a cached run. The digest is remembered per (real path, size, mtime), so an edited
file is hashed again and an untouched one is not.
"""

from __future__ import annotations

import glob

from embedx.plugin_api import cached_file_digest

cached_digest = cached_file_digest  # one per-process digest cache, in the core


def side_files(path: str) -> list[str]:
    """Arrays gensim's ``save()`` wrote next to a pickle: ``<path>.<attribute>.npy`` (``.npz`` when compressed)."""
    prefix = glob.escape(path) + "."
    return sorted(glob.glob(prefix + "*.npy") + glob.glob(prefix + "*.npz"))


def file_identity(path: str) -> dict[str, object]:
    """The digest of a vector file and of its side arrays (keyed by suffix, so a rename keeps the identity)."""
    return {"sha256": cached_digest(path),
            "side_files": {side[len(path):]: cached_digest(side) for side in side_files(path)}}
