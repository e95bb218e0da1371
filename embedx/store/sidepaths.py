"""Every path embedx creates, opens, moves or deletes beside a feature file goes through here.

A feature file comes from someone else, and so may everything beside it: ``FILE.h5.lock``, the
segment folder ``FILE.h5.segments/`` with its segments, ``retired.json``, ``store.json`` and
temporaries, ``FILE.h5.quarantine/`` and an old ``FILE.h5.staging/``. A sender can ship any of
them as a symbolic link into the user's other files, as a hard link to one of them, as a FIFO,
or as the folder of another store. So, by construction:

- side folders are opened as directory descriptors with ``O_NOFOLLOW``: a link is refused, never
  followed, and a folder embedx writes in must be a real directory of the current user;
- files in them are read, created, renamed and deleted relative to that descriptor, never
  through a link (``O_NOFOLLOW``, ``O_EXCL`` for new files, ``lstat`` before HDF5 opens one by
  name), and a file read must be a regular file (a FIFO would block);
- only files named like the store's own files (:data:`SEGMENT_NAME`, :data:`TEMPORARY`) are
  deleted or moved, and only regular files of the current user with one link (``st_nlink == 1``);
  anything else is left alone, and the caller says so.

The one path followed is the one the user named: ``l.h5 -> f.h5`` reads and writes ``f.h5``, and
the side paths are those beside the real ``f.h5``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from embedx.contract.errors import StoreError
from embedx.files.atomic import atomic_write_at
from embedx.store.faults import resource_error

#: the names of segment files: ``set@<set>@<lo>-<hi>@<id>.h5``, ``input@<name>@<gen>-<part>@<id>.h5``,
#: ``input-final@<name>@<gen>-final@<id>.h5`` (see :func:`embedx.store.segment.segment_name`)
SEGMENT_NAME = re.compile(r"(?:set|input|input-final)@[A-Za-z0-9_.@+-]{1,100}@[0-9]{8,}-(?:[0-9]{6,}|final)"
                          r"@[0-9a-f]{8}\.h5")
RETIRED = "retired.json"
MARKER = "store.json"
LEASE = "readers.lease"  # readers hold a shared flock on it (embedx.store.lease); never written, never deleted
#: temporaries embedx writes before a rename (``.NAME.tmp-PID`` or ``.NAME.tmp-PID-HEX``)
TEMPORARY = re.compile(
    rf"\.(?:{SEGMENT_NAME.pattern}|{re.escape(RETIRED)}|{re.escape(MARKER)})\.tmp-[0-9]+(?:-[0-9a-f]+)?"
)
MAX_SMALL_FILE = 64 << 20  # retired.json, store.json

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def is_segment_name(name: str) -> bool:
    return SEGMENT_NAME.fullmatch(name) is not None


def is_own_name(name: str) -> bool:
    """Whether ``name`` is one embedx gives files in a segment folder (the only ones it ever deletes)."""
    return (
        SEGMENT_NAME.fullmatch(name) is not None or TEMPORARY.fullmatch(name) is not None or name in (RETIRED, MARKER)
    )


def kind_of(st: os.stat_result) -> str:
    """What a file-system entry is, in words, for messages."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def refusal(path: Path | str, what: str, why: str) -> StoreError:
    return StoreError(f"{path} is {why}, not {what} that embedx made; embedx never follows links or uses other files "
                      "beside a feature file (they could point at your other files), so it left it alone: "
                      "move it aside and run the command again")


def plain_problem(st: os.stat_result) -> str | None:
    """Why a file-system entry is not one embedx may delete or move (``None``: it may)."""
    if not stat.S_ISREG(st.st_mode):
        return kind_of(st)
    if st.st_nlink != 1:
        return f"a file with {st.st_nlink} hard links (it is also elsewhere)"
    if st.st_uid != os.geteuid():
        return "a file of another user"
    return None


def check_plain_file(path: Path, what: str = "a segment file") -> os.stat_result:
    """Before HDF5 opens ``path`` by name: it must be a regular file, and neither it nor its folder a link."""
    try:
        folder = os.lstat(path.parent)
    except OSError:
        folder = None
    if folder is not None and stat.S_ISLNK(folder.st_mode):
        raise refusal(path.parent, "the segment folder", "a symbolic link")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise StoreError(f"{path} does not exist") from None
    except OSError as exc:
        raise StoreError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise refusal(path, what, kind_of(st))
    return st


def refuse_link(path: Path, what: str) -> None:
    """Refuse ``path`` if it is a symbolic link (a reader's check of a side folder it reads through HDF5)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise refusal(path, what, "a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise refusal(path, what, kind_of(st))


class SideFolder:
    """A folder beside a feature file, held open as a directory descriptor; every operation is relative to it."""

    def __init__(self, path: Path, fd: int, what: str):
        self.path, self.fd, self.what = path, fd, what

    @classmethod
    def open(cls, path: Path, what: str, *, create: bool = False, write: bool = True) -> SideFolder | None:
        """The folder at ``path`` (``None`` if there is none and ``create`` is false).

        A link, or anything but a directory, is refused; so is a folder of another user when ``write``."""
        path = Path(path)
        if create:
            try:
                os.mkdir(path, 0o777)
            except FileExistsError:
                pass
            except OSError as exc:
                raise resource_error(exc, path) from None
        try:
            fd = os.open(path, _DIR_FLAGS)
        except FileNotFoundError:
            if create:
                raise StoreError(f"{path} disappeared while embedx created it; run the command again") from None
            return None
        except OSError as exc:
            try:
                st = os.lstat(path)
            except OSError:
                raise StoreError(f"{path} cannot be opened ({exc.strerror or exc})") from None
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK) or not stat.S_ISDIR(st.st_mode):
                raise refusal(path, what, kind_of(st)) from None
            raise StoreError(f"{path} cannot be opened ({exc.strerror or exc})") from None
        folder = cls(path, fd, what)
        try:
            st = os.fstat(fd)
            if not stat.S_ISDIR(st.st_mode):
                raise refusal(path, what, kind_of(st))
            if write and st.st_uid != os.geteuid():
                raise StoreError(f"{path} belongs to another user, so embedx will not add to, move or delete "
                                 "anything in it; copy the feature file with its folder to write to it")
        except BaseException:
            folder.close()
            raise
        return folder

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SideFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # looking -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not a plain file of the store that embedx may use, move or delete (``None``: it is)."""
        st = self.lstat(name)
        return "gone" if st is None else plain_problem(st)

    def read_small(self, name: str, what: str) -> bytes | None:
        """The bytes of a small file of the store (``None`` if absent); a link, FIFO or folder is refused."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            st = self.lstat(name)
            if st is not None and (exc.errno in (errno.ELOOP, errno.EMLINK) or not stat.S_ISREG(st.st_mode)):
                raise refusal(self.path / name, what, kind_of(st)) from None
            raise StoreError(f"{self.path / name} cannot be read ({exc.strerror or exc})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise refusal(self.path / name, what, kind_of(st))
            if st.st_size > MAX_SMALL_FILE:
                raise StoreError(f"{self.path / name} holds {st.st_size:,} bytes, far more than embedx writes "
                                 "there; move it aside")
            chunks, left = [], st.st_size + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    # changing --------------------------------------------------------------------------------
    def write_atomic(self, name: str, data: bytes) -> None:
        """Write ``name`` whole or not at all: a new temporary (``O_EXCL``), fsync, rename, fsync the folder."""
        write_new(self.fd, self.path, name, data)

    def remove(self, name: str) -> str | None:
        """Delete one of the store's own files; return why it was left alone instead (``None``: deleted or gone)."""
        if not is_own_name(name):
            return "not named like a file of the store"
        st = self.lstat(name)
        if st is None:
            return None
        why = plain_problem(st)
        if why:
            return why
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        return None

    def move_to(self, name: str, destination: SideFolder, new_name: str | None = None,
                folder: bool = False) -> Path:
        """Move ``name`` into ``destination`` (never over an existing entry); both folders are synced.

        Only a segment file of the store (``folder``: a folder embedx made, such as old staging) is moved."""
        st = self.lstat(name)
        if st is None:
            raise StoreError(f"{self.path / name} disappeared")
        if folder:
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                raise refusal(self.path / name, "a folder", kind_of(st))
        else:
            if SEGMENT_NAME.fullmatch(name) is None:
                raise refusal(self.path / name, "a segment file", "not named like a segment file")
            why = plain_problem(st)
            if why:
                raise refusal(self.path / name, "a segment file", why)
        base = new_name or name
        target, n = base, 1
        while destination.lstat(target) is not None:
            n += 1
            target = f"{base}~{n}"
        try:
            os.rename(name, target, src_dir_fd=self.fd, dst_dir_fd=destination.fd)
            os.fsync(destination.fd)
            os.fsync(self.fd)
        except OSError as exc:
            raise resource_error(exc, destination.path / target) from None
        return destination.path / target


def write_new(dir_fd: int, folder: Path, name: str, data: bytes) -> None:
    """``name`` in the folder ``dir_fd``, written whole under a fresh temporary name and renamed into place."""
    try:
        atomic_write_at(dir_fd, name, data)
    except OSError as exc:
        raise resource_error(exc, folder / name, len(data)) from None


def replace_file(path: Path, data: bytes) -> None:
    """Write ``path`` (the index, in the user's own folder, which is followed as named) atomically."""
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise resource_error(exc, path, len(data)) from None
    try:
        write_new(dir_fd, path.parent, path.name, data)
    finally:
        os.close(dir_fd)


def segment_folder(index: Path, *, create: bool = False, write: bool = True) -> SideFolder | None:
    from embedx.store import layout as L

    return SideFolder.open(L.segment_dir(index), "the segment folder", create=create, write=write)


def quarantine_folder(index: Path) -> SideFolder:
    from embedx.store import layout as L

    folder = SideFolder.open(L.quarantine_dir(index), "the quarantine folder", create=True)
    assert folder is not None
    return folder


def parent_folder(index: Path) -> SideFolder:
    """The folder the (real) feature file is in: the user's own, opened as named."""
    fd = os.open(index.parent, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    return SideFolder(index.parent, fd, "the folder of the feature file")


def index_temporary(index: Path) -> re.Pattern[str]:
    """The names of the temporaries a commit writes beside ``index`` before renaming one over it."""
    return re.compile(rf"\.{re.escape(index.name)}\.tmp-[0-9]+(?:-[0-9a-f]+)?")


def remove_index_temporaries(index: Path) -> list[str]:
    """Delete index temporaries a killed writer left beside ``index`` (call only holding its writer lock).

    Only plain files of this user with one link, named exactly like the temporaries of this index."""
    pattern, removed = index_temporary(index), []
    with parent_folder(index) as parent:
        for name in parent.names():
            if not pattern.fullmatch(name):
                continue
            st = parent.lstat(name)
            if st is None or plain_problem(st):
                continue  # not ours to delete
            try:
                os.unlink(name, dir_fd=parent.fd)
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed
