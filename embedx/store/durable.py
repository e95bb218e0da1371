"""Write-then-rename with fsync: a file either appears whole or not at all, even under kill -9."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a directory's entries (so a rename survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_file = fsync_dir = fsync_path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)``, make it durable, then rename it to ``path`` in one step."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
