"""One writer per feature file: an advisory lock the kernel drops if the writer dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from embedx.errors import StoreError
from embedx.store.faults import resource_error


def resolve_output(path: Path | str) -> Path:
    """The file a write to ``path`` must reach: symlinks followed, so ``l.h5 -> f.h5`` locks and writes ``f.h5``."""
    path = Path(path)
    if not path.parent.exists():
        raise StoreError(f"cannot write {path}: the folder {path.parent} does not exist")
    return Path(os.path.realpath(path))


class WriterLock:
    """Held for the whole of an extraction. A second writer fails at once instead of waiting.

    ``FILE.h5.lock`` is removed when the writer releases it. A writer that locked the file just
    before it was removed notices (the path no longer names the inode it locked) and locks anew.
    """

    def __init__(self, path: Path):
        self.target = resolve_output(path)
        self.path = self.target.with_name(self.target.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise resource_error(exc, self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise StoreError(
                    f"{self.target} is being written by another embedx process (pid {holder}); "
                    "wait for it to finish, or write to another file"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed this lock file as we locked it
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked: a waiter then sees a new inode
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
