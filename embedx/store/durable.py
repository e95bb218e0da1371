"""The store's durable writes: the one write-then-rename implementation, from :mod:`embedx.atomic`."""

from __future__ import annotations

from embedx.atomic import atomic_write, fsync_path

fsync_file = fsync_dir = fsync_path

__all__ = ["atomic_write", "fsync_dir", "fsync_file", "fsync_path"]
