"""Content digests of model and vector files, remembered across processes.

A model file's SHA-256 is part of every cache key that uses it, so a cached re-run would
otherwise re-read gigabytes just to learn that nothing changed. The digest is remembered in
a small SQLite table in the user's cache folder, keyed by the file's resolved path, size,
mtime (ns), inode, device and ctime (ns): any change to the file makes a new key, so a stale digest
is never served. ctime cannot be set from user space, so a file made to look like one hashed before
(same inode reused, mtime and size forged) still gets a new key. SQLite serialises concurrent
writers, and a cache that cannot be opened or written (read-only home, corrupt file) only costs the
re-hash, never a failure.

The cache is a file embedx reads back, so it is not trusted either: each row carries an HMAC under
this user's local key (:mod:`embedx.trust`) over its key and digest, and a row that fails it (a
table copied from elsewhere or edited) is ignored and the file hashed again. The folder is created
0700 and the table 0600.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat as stat_module
import threading
from pathlib import Path

from embedx.contract.errors import InputError

ENV = "EMBEDX_CACHE_DIR"
DB_NAME = "digests-v2.sqlite3"  # v2: ctime in the key, a MAC per row
PURPOSE = "embedx digest cache v2"

_Key = tuple[str, int, int, int, int, int]
_memory: dict[_Key, str] = {}
_lock = threading.Lock()


def cache_root() -> Path:
    """The user's embedx cache folder.

    ``$EMBEDX_CACHE_DIR``, else ``$XDG_CACHE_HOME/embedx``, else ``~/.cache/embedx``.
    """
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "embedx"


def file_digest(path: str | os.PathLike[str], follow: bool = True) -> str:
    """SHA-256 of a regular file's content, so a model file's identity survives renames and copies.

    Opened without blocking and checked to be a regular file before a byte is read (a FIFO would
    hang); ``follow=False`` also refuses a symbolic link (files found inside a model folder)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    with open(fd, "rb") as handle:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: not a regular file (a FIFO, device or folder); embedx reads model files only")
        return hashlib.file_digest(handle, "sha256").hexdigest()


def cached_file_digest(path: str | os.PathLike[str]) -> str:
    """:func:`file_digest`, hashed once per file version on this machine (see the module docstring)."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    if not stat_module.S_ISREG(stat.st_mode):
        raise InputError(f"{path}: not a regular file (a FIFO, device or folder); embedx reads model files only")
    key = (real, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev, stat.st_ctime_ns)
    with _lock:
        if key in _memory:
            return _memory[key]
    digest = _lookup(key)
    if digest is None:
        digest = file_digest(real)
        after = os.stat(real)
        if (after.st_mtime_ns, after.st_ctime_ns) == (stat.st_mtime_ns, stat.st_ctime_ns):  # not rewritten meanwhile
            _remember(key, digest)
    with _lock:
        _memory[key] = digest
    return digest


def _connect() -> sqlite3.Connection:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = root / DB_NAME
    if not path.exists():  # created private: a digest cache others can write is one they could poison
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600))
    connection = sqlite3.connect(path, timeout=10.0)
    connection.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT, size INTEGER, mtime_ns INTEGER, "
                       "inode INTEGER, device INTEGER, ctime_ns INTEGER, sha256 TEXT NOT NULL, mac TEXT NOT NULL, "
                       "PRIMARY KEY (path, size, mtime_ns, inode, device, ctime_ns))")
    return connection


def _row_mac(key: _Key, digest: str) -> str:
    from embedx.trust import mac

    return mac(PURPOSE, "\0".join(map(str, (*key, digest))).encode("utf-8", "surrogatepass"))


def _lookup(key: _Key) -> str | None:
    from embedx.contract.errors import EmbedxError
    from embedx.trust import mac_ok

    try:
        with _connect() as connection:
            row = connection.execute("SELECT sha256, mac FROM digests WHERE path=? AND size=? AND mtime_ns=? "
                                     "AND inode=? AND device=? AND ctime_ns=?", key).fetchone()
        if row is None or not _is_sha256(row[0]):
            return None
        data = "\0".join(map(str, (*key, row[0]))).encode("utf-8", "surrogatepass")
        return row[0] if mac_ok(PURPOSE, data, row[1]) else None  # a row this user's embedx did not write
    except (sqlite3.Error, OSError, EmbedxError):
        return None


def _remember(key: _Key, digest: str) -> None:
    from embedx.contract.errors import EmbedxError

    try:
        tag = _row_mac(key, digest)
        with _connect() as connection:
            connection.execute("DELETE FROM digests WHERE path=?", key[:1])  # older versions of this file
            connection.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*key, digest, tag))
    except (sqlite3.Error, OSError, EmbedxError):
        pass  # a read-only or broken cache (or key) costs a re-hash next time, nothing more


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
    for path, kind in _entries(folder):
        name = path.relative_to(folder).as_posix()
        if kind == "file":
            total.update(f"{name}\0{cached_file_digest(str(path))}\n".encode())
        elif kind == "link":  # the link itself, never what it points to: a folder's identity stays inside it
            total.update(f"{name}\0link\0{os.readlink(path)}\n".encode())
        else:  # a FIFO, socket or device is named, never opened
            total.update(f"{name}\0{kind}\n".encode())
    return total.hexdigest()


def _entries(folder: Path) -> list[tuple[Path, str]]:
    """Every entry under ``folder`` without following links, sorted, with what it is."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            if stat_module.S_ISDIR(mode):
                continue
            if stat_module.S_ISREG(mode):
                if not _savedmodel_fingerprint(path):
                    found.append((path, "file"))
            else:
                found.append((path, "link" if stat_module.S_ISLNK(mode) else stat_module.filemode(mode)[0]))
    return sorted(found)


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
