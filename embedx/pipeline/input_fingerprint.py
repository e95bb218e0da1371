"""What identifies one extraction's input without reading it: the file's content digest and every reader setting.

A fully cached re-run is answered from the feature file's index when the input table there
was built from an input with the same fingerprint and the set covered all of it (see
:mod:`embedx.store.coverage`). The file's SHA-256 comes from the persistent digest cache
(keyed by path, size, mtime_ns, inode), so an unchanged file is not re-read. The file's own
version (path, size, mtime, ctime, inode) is part of it too: ctime changes with every write
and cannot be set back, so even an edit that keeps size and mtime (``touch -r``, ``rsync -t``)
gives another fingerprint, as does any setting that shapes the table. Only regular files have
one: stdin, pipes and Python lists are read every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass

from embedx.files.digests import cached_file_digest

VERSION = 1  # bump when what the fingerprint covers changes


@dataclass(frozen=True)
class InputFingerprint:
    value: str  # SHA-256 hex
    path: str
    state: tuple[int, ...]  # size, mtime_ns, ctime_ns, inode, device when the digest was taken

    def unchanged(self) -> bool:
        """Whether the file is still the version the digest was taken of (not edited while it was read)."""
        return _state(self.path) == self.state


def _state(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def input_fingerprint(path: str, *, format: str, text_field: str, encoding_errors: str, empty: str,
                      store_text: bool, input_name: str) -> InputFingerprint | None:
    """The fingerprint of extracting regular file ``path`` into input table ``input_name``, or ``None``."""
    if path == "-":
        return None
    real = os.path.realpath(path)
    before = _state(real)
    if before is None:
        return None
    try:
        digest = cached_file_digest(real)
    except OSError:
        return None
    if _state(real) != before:  # rewritten while it was hashed: no fingerprint, the run reads it
        return None
    from embedx import __version__

    settings = {"v": VERSION, "embedx": __version__, "sha256": digest, "file": [real, *before], "format": format,
                "text_field": text_field if format != "txt" else None, "encoding_errors": encoding_errors,
                "empty": empty, "store_text": bool(store_text), "input": input_name}
    value = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return InputFingerprint(value, real, before)
