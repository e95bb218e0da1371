"""Content digests of model and vector files, remembered across processes.

A model file's SHA-256 is part of every cache key that uses it, so a cached re-run would
otherwise re-read gigabytes just to learn that nothing changed. The digest is remembered in
a small SQLite table in the user's cache folder, keyed by the file's resolved path, size,
mtime (ns), inode and device: any change to the file makes a new key, so a stale digest is
never served. SQLite serialises concurrent writers, and a cache that cannot be opened or
written (read-only home, corrupt file) only costs the re-hash, never a failure.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

ENV = "EMBEDX_CACHE_DIR"
DB_NAME = "digests.sqlite3"

_memory: dict[tuple[str, int, int, int, int], str] = {}
_lock = threading.Lock()


def cache_root() -> Path:
    """The user's embedx cache folder: ``$EMBEDX_CACHE_DIR``, else ``$XDG_CACHE_HOME/embedx``, else ``~/.cache/embedx``."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "embedx"


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content, so a model file's identity survives renames and copies."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def cached_file_digest(path: str | os.PathLike[str]) -> str:
    """:func:`file_digest`, hashed once per file version on this machine (see the module docstring)."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
    with _lock:
        if key in _memory:
            return _memory[key]
    digest = _lookup(key)
    if digest is None:
        digest = file_digest(real)
        if os.stat(real).st_mtime_ns == stat.st_mtime_ns:  # not rewritten while we read it
            _remember(key, digest)
    with _lock:
        _memory[key] = digest
    return digest


def _connect() -> sqlite3.Connection:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(root / DB_NAME, timeout=10.0)
    connection.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT, size INTEGER, mtime_ns INTEGER, "
                       "inode INTEGER, device INTEGER, sha256 TEXT NOT NULL, "
                       "PRIMARY KEY (path, size, mtime_ns, inode, device))")
    return connection


def _lookup(key: tuple[str, int, int, int, int]) -> str | None:
    try:
        with _connect() as connection:
            row = connection.execute("SELECT sha256 FROM digests WHERE path=? AND size=? AND mtime_ns=? "
                                     "AND inode=? AND device=?", key).fetchone()
    except (sqlite3.Error, OSError):
        return None
    if row is None or not _is_sha256(row[0]):
        return None
    return row[0]


def _remember(key: tuple[str, int, int, int, int], digest: str) -> None:
    try:
        with _connect() as connection:
            connection.execute("DELETE FROM digests WHERE path=?", key[:1])  # older versions of this file
            connection.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", (*key, digest))
    except (sqlite3.Error, OSError):
        pass  # a read-only or broken cache costs a re-hash next time, nothing more


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def forget_in_memory() -> None:
    """Drop this process's copy (tests use it to prove the on-disk cache is read)."""
    with _lock:
        _memory.clear()


def folder_digest(folder: str | os.PathLike[str]) -> str:
    """SHA-256 over every file under a folder (relative names and contents), each file's digest cached.

    A TensorFlow SavedModel's ``fingerprint.pb`` (beside its ``saved_model.pb``) is left out: TensorFlow
    writes a fresh random UUID into it on every save, and its other fields are hashes of files that are
    digested here anyway. With it, a module retrained bit for bit would look new to every cache key.
    """
    folder = Path(folder)
    total = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not _savedmodel_fingerprint(p)):
        total.update(f"{path.relative_to(folder).as_posix()}\0{cached_file_digest(str(path))}\n".encode())
    return total.hexdigest()


def _savedmodel_fingerprint(path: Path) -> bool:
    return path.name == "fingerprint.pb" and (path.parent / "saved_model.pb").is_file()


def path_digests(options: dict[str, object]) -> dict[str, str]:
    """Content digests of the option values that name an existing file or folder (a model path).

    What a result depends on is the model's content, not its path: a key built from these changes when
    a model is retrained in place.
    """
    digests = {}
    for name, value in sorted(options.items()):
        if not isinstance(value, str) or not value or len(value) > 4096:
            continue
        path = Path(value).expanduser()
        if path.is_file():
            digests[name] = cached_file_digest(path)
        elif path.is_dir():
            digests[name] = folder_digest(path)
    return digests
