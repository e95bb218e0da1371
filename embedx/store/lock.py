"""One writer per feature file: an advisory lock the kernel drops if the writer dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from embedx.errors import StoreError


class WriterLock:
    """Held for the whole of an extraction. A second writer fails at once instead of waiting."""

    def __init__(self, path: Path):
        self.path = Path(str(path) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            target = str(self.path)[: -len(".lock")]
            raise StoreError(
                f"{target} is being written by another embedx process (pid {holder}); "
                "wait for it to finish, or write to another file"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            # The lock file stays: unlinking it would let a waiter lock a dead inode.

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
