"""SHA-256 of model files, remembered across runs while a file stays unchanged.

The cache key of a local model is the content hash of its weights and tokenizer files, and
embedx asks for it on every run, cached or not. Hashing a 1.3 GB BERT-large costs seconds, so
digests are kept in memory and in a small JSON file, keyed by (real path, size, mtime, inode):
an edited or replaced file is hashed again, an untouched one is not. The file lives at
``$EMBEDX_DIGEST_CACHE`` or ``~/.cache/embedx/file-digests.json``; if it cannot be written, the
digests are simply recomputed next time.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from embedx.plugin_api import file_digest

ENV = "EMBEDX_DIGEST_CACHE"
_MEMORY: dict[str, str] = {}
_MAX_ENTRIES = 2000


def cache_path() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "embedx" / "file-digests.json"


def _stamp(path: str) -> tuple[str, str]:
    real = os.path.realpath(path)
    st = os.stat(real)
    return real, f"{real}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


def file_digests(paths: list[str]) -> dict[str, str]:
    """``{path: sha256}`` for ``paths``, hashing only files not seen unchanged before."""
    stamps = {p: _stamp(p)[1] for p in paths}
    missing = [p for p in paths if stamps[p] not in _MEMORY]
    if missing:
        _MEMORY.update(_read_disk())
        missing = [p for p in paths if stamps[p] not in _MEMORY]
    if missing:
        for p in missing:
            _MEMORY[stamps[p]] = file_digest(p)
        _write_disk()
    return {p: _MEMORY[stamps[p]] for p in paths}


def _read_disk() -> dict[str, str]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_disk() -> None:
    """Merge with what other processes wrote, then replace the file atomically; never fail a run."""
    target = cache_path()
    try:
        merged = _read_disk() | _MEMORY
        if len(merged) > _MAX_ENTRIES:  # keep the newest entries (dicts keep insertion order)
            merged = dict(list(merged.items())[-_MAX_ENTRIES:])
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".digests-", dir=target.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(merged, handle)
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
