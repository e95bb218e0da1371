"""Content keys for texts and configuration hashes for embedders: what the cache is keyed on."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

KEY_BYTES = 16  # BLAKE2b-128, written as 32 hex characters


def content_key(text: str) -> str:
    """The key of a text as embedded: BLAKE2b-128 of its UTF-8 bytes, in hex."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces, so equal configurations hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the canonical configuration: everything that changes an embedder's output.

    ``unkeyed_options`` are recorded in the file for people but not hashed: the identity
    (e.g. a file's content hash) already pins what they point at.
    """
    keyed = {k: v for k, v in config.items() if k != "unkeyed_options"}
    return hashlib.sha256(canonical_json(keyed).encode("utf-8")).hexdigest()


def file_digest(path: str, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's content, so a model file's identity survives renames and copies."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def cached_file_digest(path: str) -> str:
    """:func:`file_digest`, computed once per process while the file's size and mtime stay the same."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(real)
    return _DIGESTS[key]
