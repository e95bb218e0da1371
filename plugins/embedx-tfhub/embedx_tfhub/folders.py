"""Replace an output folder (an exported module) in one step: readers see the old folder or the new one.

Shared by every exporter built on this runtime (the Swivel and ELMo exporters, the BERT converter):
build the new folder inside :func:`staging_folder` (a temporary sibling of the target, so the final
rename never crosses a file system), then :func:`replace_folder` swaps it in.

- Linux: ``renameat2(..., RENAME_EXCHANGE)`` swaps the two folders atomically; at no moment is
  there no folder at the target path.
- Elsewhere (or on a file system without ``RENAME_EXCHANGE``): the old folder is renamed to
  ``.<name>.replaced`` beside it, the new one into place, then the old one is deleted. A crash
  between the two renames leaves the old folder at ``.<name>.replaced``; the next call (or
  :func:`recover_folder`) puts it back before doing anything else.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["backup_path", "recover_folder", "replace_folder", "staging_folder"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 1 << 1
_renameat2 = None  # resolved on first use; False when the C library lacks it


def backup_path(target: str | os.PathLike[str]) -> Path:
    """Where the fallback parks the old folder while the new one is renamed in."""
    target = Path(target)
    return target.with_name(f".{target.name}.replaced")


def recover_folder(target: str | os.PathLike[str]) -> None:
    """Undo an interrupted fallback replacement: restore the parked old folder, or drop a leftover one."""
    target, backup = Path(target), backup_path(target)
    if not os.path.lexists(backup):
        return
    if os.path.lexists(target):
        _remove(backup)
    else:
        os.rename(backup, target)


def _exchange_function():
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                function = libc.renameat2
            except (OSError, AttributeError):
                pass
            else:
                function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                function.restype = ctypes.c_int
                _renameat2 = function
    return _renameat2 or None


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically; ``False`` when this system cannot."""
    function = _exchange_function()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # the kernel or the file system has no RENAME_EXCHANGE
    raise OSError(code, os.strerror(code), str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_folder(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Move the complete folder ``staging`` to ``target``, replacing what is there, without a moment of no ``target``.

    ``staging`` must be on the same file system as ``target`` (use :func:`staging_folder`). The old
    content of ``target`` is deleted afterwards.
    """
    staging, target = Path(staging), Path(target)
    recover_folder(target)
    if not os.path.lexists(target):
        os.rename(staging, target)
    elif _exchange(staging, target):
        _remove(staging)  # now the old folder
    else:
        backup = backup_path(target)
        os.rename(target, backup)
        os.rename(staging, target)
        _remove(backup)
    _sync_dir(target.parent)


@contextlib.contextmanager
def staging_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """An empty temporary folder beside ``target`` (same file system), removed with whatever is left in it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
