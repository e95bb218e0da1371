"""Turn the operating system's write failures into one message a user can act on.

A full disk (ENOSPC), a file-size limit (EFBIG, ``ulimit -f``), a quota (EDQUOT), a read-only
folder (EROFS, EACCES) or a missing folder are conditions of the machine, not bugs: the user
needs to know which folder, how much room was needed, and that nothing committed was lost.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from embedx.contract.errors import StoreError

FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
DENIED = {errno.EROFS, errno.EACCES, errno.EPERM}
KEPT = "nothing committed was lost; free space or choose another folder, then re-run the same command"


def free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _mb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1e6:,.1f} MB"


def resource_error(exc: OSError, path: Path, needed: int | None = None) -> StoreError:
    """A :class:`StoreError` saying what went wrong writing ``path``; other errors keep their text."""
    code = exc.errno
    where = path.parent
    if code == errno.EFBIG:
        return StoreError(f"cannot write {path}: the file-size limit was reached (ulimit -f) with "
                          f"{_mb(needed)} to write; {KEPT}")
    if code in FULL:
        return StoreError(f"cannot write {path}: no space left on the device of {where} ({_mb(needed)} to write, "
                          f"{_mb(free_bytes(where))} free); {KEPT}")
    if code in DENIED:
        return StoreError(f"cannot write in {where}: {exc.strerror or 'permission denied'} (a read-only folder?); "
                          "choose an output in a writable folder")
    if code == errno.ENOENT:
        return StoreError(f"cannot write {path}: the folder {where} does not exist")
    return StoreError(f"cannot write {path}: {exc.strerror or exc}; {KEPT}")


def check_free_space(folder: Path, needed: int, what: str) -> bool:
    """Whether ``folder`` has room for ``needed`` bytes (plus a margin) before starting ``what``."""
    free = free_bytes(folder)
    return free is None or free >= needed + (16 << 20)


def needs_space_message(folder: Path, needed: int, what: str) -> str:
    return (f"{what} needs about {_mb(needed)} in {folder}, but only {_mb(free_bytes(folder))} is free; {KEPT}")
