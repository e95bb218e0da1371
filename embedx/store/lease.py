"""Readers hold a lease; replaced segments are deleted only when no reader holds one.

``FILE.h5.segments/readers.lease`` is an empty file. :class:`~embedx.store.reader.FeatureStore`
takes a shared ``flock`` on it *before* it opens the index and holds it until it is closed, so
every segment the index it opened maps stays on disk for as long as it reads. A writer deletes
retired segments (:func:`~embedx.store.catalog.expire_retired`) only while it holds the exclusive
lock, taken without waiting: one open reader, in any process, keeps every retired segment. The
kernel drops the lock of a reader that dies, so a crashed reader holds nothing. Where no lease
can be taken (a folder that lacks the file and cannot be written, a file system without
``flock``), the old rule stands: a replaced segment is deleted ``GRACE_SECONDS`` after it was retired.

The lease is opened relative to the folder's descriptor, without following a link, read-only,
and only if it is a plain file; embedx never writes to it and never deletes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from embedx.store import layout as L
from embedx.store.sidepaths import LEASE, SideFolder

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NEW = os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _open(dir_fd: int) -> int | None:
    try:
        fd = os.open(LEASE, _READ, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def ensure(folder: SideFolder) -> None:
    """Create the lease file in the writer's segment folder (never through a link, never over anything)."""
    try:
        os.close(os.open(LEASE, _NEW, 0o644, dir_fd=folder.fd))
    except OSError:
        pass


def take(index: Path) -> int | None:
    """A reader's lease on ``index``'s segments: a descriptor holding ``LOCK_SH`` (``None``: none to take)."""
    try:
        dir_fd = os.open(
            L.segment_dir(index), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        )
    except OSError:
        return None
    try:
        fd = _open(dir_fd)
    finally:
        os.close(dir_fd)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a writer holds LOCK_EX only while it deletes
    except OSError:
        os.close(fd)
        return None
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextlib.contextmanager
def no_readers(folder: SideFolder) -> Iterator[bool | None]:
    """``True`` while no reader holds a lease (held exclusively until the block ends), ``False`` while one
    does, ``None`` when there is no lease file to go by (then only time tells)."""
    fd = _open(folder.fd)
    if fd is None:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError:
            yield None
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
