"""Content keys for texts and configuration hashes for embedders: what the cache is keyed on."""

from __future__ import annotations

import hashlib
import json
from typing import Any

KEY_BYTES = 16  # BLAKE2b-128, written as 32 hex characters


def content_digest(text: str) -> bytes:
    """The key of a text as embedded: BLAKE2b-128 of its UTF-8 bytes (the one definition of the key)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()


def content_key(text: str) -> str:
    """:func:`content_digest` in hex, as the feature file stores it."""
    return content_digest(text).hex()


def content_keys(texts: list[str]) -> Any:
    """The binary keys (numpy ``S16``) of ``texts``, one :func:`content_digest` each."""
    import numpy as np

    digests = b"".join(map(content_digest, texts))
    return np.frombuffer(digests, dtype=f"S{KEY_BYTES}").copy() if texts else np.zeros(0, dtype=f"S{KEY_BYTES}")


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

