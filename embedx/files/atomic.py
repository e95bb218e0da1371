"""Write-then-rename with fsync: a file either appears whole or not at all, even under kill -9.

The one implementation every part of embedx and its plugins uses for files that must never be
seen half-written: feature-store segments and indexes, fetched datasets, converted model files.
:func:`atomic_write_at` writes bytes relative to an open folder, with a fresh temporary that is
created exclusively and never through a link (the feature store's side folders, see
:mod:`embedx.store.sidepaths`); :func:`atomic_write` hands a temporary path to a writer.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's data, or a directory's entries (so a rename survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_sibling(path: Path) -> Path:
    """A hidden name beside ``path``, unique to this process and call, for the not-yet-renamed file."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def atomic_write_at(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``data`` as ``name`` in the folder open as ``dir_fd``: a new temporary (``O_EXCL``,
    ``O_NOFOLLOW``, a random name), fsync, rename over ``name``, fsync the folder. Raises ``OSError``."""
    tmp = f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, _NEW, 0o644, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.fsync(dir_fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)``, make ``tmp`` durable, rename it to ``path`` in one step, then sync the folder."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
