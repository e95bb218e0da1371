"""Open a feature file read-only, turning h5py's internal errors into messages a user can act on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py

from embedx.contract.errors import StoreError
from embedx.store import layout as L
from embedx.store.sidepaths import kind_of, refuse_link
from embedx.store.verify import is_verified, verify_isolated, verify_structure

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def open_checked(path: Path | str, renamed_ok: bool = False) -> h5py.File:
    """Open ``path`` as an embedx feature file, or raise :class:`StoreError` saying what is wrong.

    ``renamed_ok``: for the writer only (see :func:`~embedx.store.verify.verify_structure`)."""
    path = Path(path)
    head = read_signature(path)
    if head != _HDF5_SIGNATURE:
        what = "empty" if not head else "not an HDF5 file"
        raise StoreError(f"{path} is {what}; embedx feature files are HDF5 (refusing to read or overwrite it)")
    # libhdf5 can hang or crash on damaged metadata: look at the file in a child process first.
    real = Path(os.path.realpath(path))  # a symlinked index still maps only its real segment folder
    segments = real.with_name(real.name + ".segments")
    refuse_link(segments, "the segment folder")  # never followed: it could lead to another store or your files
    verify_isolated(path, allowed_dir=segments, renamed_ok=renamed_ok)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path} is a corrupt or truncated HDF5 file ({_short(exc)}); "
                         "move it aside and re-run the extraction") from None
    try:
        fmt = handle.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != L.FORMAT_NAME:
            top = ", ".join(list(handle.keys())[:5]) or "nothing"
            raise StoreError(f"{path} is an HDF5 file but not an embedx feature file "
                             f"(no format={L.FORMAT_NAME!r} attribute; it holds {top}); refusing to use it")
        version = int(handle.attrs.get("format_version", 0))
        if version > L.FORMAT_VERSION:
            raise StoreError(f"{path} uses embedx format version {version}; this embedx reads up to "
                             f"{L.FORMAT_VERSION}: upgrade embedx")
        if L.SETS not in handle or L.INPUTS not in handle:
            raise StoreError(f"{path} is missing its '{L.SETS}' or '{L.INPUTS}' group; the file is damaged")
        # Touch every group's metadata now, so damage shows here rather than mid-read.
        for group in (handle[L.SETS], handle[L.INPUTS]):
            for name in group:
                dict(group[name].attrs)
        # The file is untrusted: no links out of it, virtual data only from its own segment folder
        # (FILE.h5.segments/), sane dtypes and shapes.
        if not is_verified(path, segments, renamed_ok):  # the child checked this very version already
            verify_structure(handle, path, allowed_dir=segments, renamed_ok=renamed_ok)
    except StoreError:
        handle.close()
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        handle.close()
        raise StoreError(f"{path} is damaged ({_short(exc)}); move it aside and re-run the extraction") from None
    return handle


def read_signature(path: Path) -> bytes:
    """The first 8 bytes of ``path``, read only if it is a regular file (a FIFO would block forever).

    ``path`` itself is followed if it is a link: that is the name the user gave."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise StoreError(f"{path}: no such feature file") from None
    except OSError as exc:
        raise StoreError(f"{path} cannot be opened as a feature file ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise StoreError(f"{path} is a directory, not a feature file")
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is {kind_of(st)}, not a regular file; embedx reads feature files only from "
                             "regular files (refusing to read or overwrite it)")
        return os.pread(fd, 8, 0)
    finally:
        os.close(fd)


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
