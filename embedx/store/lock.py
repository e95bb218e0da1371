"""One writer per feature file: an advisory lock the kernel drops if the writer dies."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from embedx.contract.errors import StoreError
from embedx.store.faults import resource_error
from embedx.store.sidepaths import kind_of, plain_problem, refusal


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
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                holder = holder if holder.isdigit() else "unknown"
                raise StoreError(
                    f"{self.target} is being written by another embedx process (pid {holder}); "
                    "wait for it to finish, or write to another file"
                ) from None
            try:
                now = os.lstat(self.path)
                mine = os.fstat(fd)
                same = (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed this lock file as we locked it
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        """The lock file, opened without following a link, and only if it is a plain file of this user.

        A sender can ship ``FILE.h5.lock`` as a link to another file (or a hard link, or a FIFO):
        embedx would truncate that file and write a pid into it. It is refused before any write."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            try:
                st = os.lstat(self.path)
            except OSError:
                st = None
            if st is not None and (exc.errno in (errno.ELOOP, errno.EMLINK) or not stat.S_ISREG(st.st_mode)):
                raise refusal(self.path, "the lock file", kind_of(st)) from None
            raise resource_error(exc, self.path) from None
        try:
            why = plain_problem(os.fstat(fd))
        except OSError as exc:
            why = str(exc)
        if why:
            os.close(fd)
            raise refusal(self.path, "the lock file", why)
        return fd

    def release(self) -> None:
        if self._fd is not None:
            try:  # while still locked: a waiter then sees a new inode; only the file this writer locked
                now, mine = os.lstat(self.path), os.fstat(self._fd)
                if (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
                    os.unlink(self.path)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
