"""Trust comes from the person running embedx, never from a file: trust options and the local key.

Two rules of the trust policy live here:

* **Trust options.** An option that lets an embedder load something that can run code (a pickle, an
  unscanned TensorFlow graph, remote code) is a *trust option*: every option whose name starts with
  ``trust_``, plus any an embedder lists in its ``trust_options`` class attribute. embedx takes them
  only from the command line or an API call, never from a file it reads back (a saved head records
  the embedder's options; :func:`granted_trust` finds the trust those records would grant).
* **The local key.** Files embedx writes for itself and reads back later (a bench journal, the digest
  cache) are authenticated with an HMAC under a per-user secret key, ``local.key`` in embedx's cache
  folder (:func:`embedx.files.digests.cache_root`), created with mode 0600 on first use. A line or row that
  fails its MAC was not written by this user's embedx (or was changed since): it is ignored and
  recomputed. A file copied from another machine is therefore simply recomputed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
from pathlib import Path
from typing import Any

from embedx.contract.errors import StoreError

TRUST_PREFIX = "trust_"
KEY_FILE = "local.key"
KEY_BYTES = 32

_key_lock = threading.Lock()
_keys: dict[str, bytes] = {}


def trust_option_names(cls: type) -> set[str]:
    """The trust options of an embedder class: ``trust_*`` by name, plus its declared ``trust_options``."""
    from embedx.contract.options import option_specs

    declared = getattr(cls, "trust_options", ()) or ()
    names = {str(n) for n in declared}
    names |= {name for name in option_specs(cls) if name.startswith(TRUST_PREFIX)}
    return names


#: options that choose where embedx writes (a cache or output folder), by name; embedders add theirs
#: in a ``write_options`` class attribute. Like trust, they come only from the caller: a saved head's
#: recorded value is dropped, so no file chooses where embedx writes.
WRITE_OPTION_PATTERN = re.compile(r"(?:.*_)?cache_dir|out(?:put)?(?:_dir|_path)?|save(?:_dir|_path)?")


def is_write_option(name: str, cls: type | None = None) -> bool:
    """Whether option ``name`` names a place embedx writes (for ``cls`` when given)."""
    declared = {str(n) for n in (getattr(cls, "write_options", ()) or ())} if cls is not None else set()
    return name in declared or WRITE_OPTION_PATTERN.fullmatch(str(name)) is not None


def is_trust_option(name: str, cls: type | None = None) -> bool:
    """Whether ``name`` is a trust option (for ``cls`` when given; by name alone otherwise)."""
    if str(name).startswith(TRUST_PREFIX):
        return True
    return cls is not None and name in trust_option_names(cls)


def granted_trust(options: dict[str, Any], cls: type | None, presets: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trust options among ``options`` whose value grants trust (differs from the option's default).

    The default is the registered id's preset (``presets``, from installed code) or else the class's.
    An option recorded at its default (``trust_pickle: false``) grants nothing; any other value does,
    whatever it is (``true``, ``"yes"``, a list), so an unknown spelling is never let through.
    """
    from embedx.contract.errors import EmbedxError
    from embedx.contract.options import option_specs, parse_value

    specs = option_specs(cls) if cls is not None else {}
    presets = presets or {}
    granted = {}
    for name, value in options.items():
        if not is_trust_option(name, cls):
            continue
        spec = specs.get(name)
        default = spec.default if spec is not None and not spec.required else False
        if name in presets:
            default = presets[name]
            if spec is not None:
                try:
                    default = parse_value("preset", spec, default)
                except EmbedxError:
                    pass
        if value is None or value == default or (value is False and default in (None, False)):
            continue
        granted[name] = value
    return granted


def key_path() -> Path:
    from embedx.files.digests import cache_root

    return cache_root() / KEY_FILE


def local_key() -> bytes:
    """This user's secret key, created (0600, in a 0700 folder) on first use; cached per process."""
    path = key_path()
    with _key_lock:
        if str(path) in _keys:
            return _keys[str(path)]
        key = _read_or_create(path)
        _keys[str(path)] = key
        return key


def forget_keys() -> None:
    """Drop the in-process copy of the key (tests that switch cache folders use it)."""
    with _key_lock:
        _keys.clear()


def _read_or_create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for _ in range(3):
        key = _read(path)
        if key is not None:
            return key
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(KEY_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)  # atomic, and never over a key another process made meanwhile
            except FileExistsError:
                pass
            except OSError:  # no hard links here: a rename, which may replace a racing writer's key
                if not path.exists():
                    os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    raise StoreError(f"{path}: could not create embedx's local key")


def _read(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: embedx's local key cannot be read ({exc.strerror}); delete it to make a new "
                         "one (bench journals and the digest cache are then recomputed)") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        data = handle.read(KEY_BYTES + 1)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "not a regular file"
    elif hasattr(os, "getuid") and info.st_uid != os.getuid():
        problem = "owned by another user"
    elif hasattr(os, "getuid") and info.st_mode & 0o077:
        problem = f"readable or writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    elif len(data) != KEY_BYTES:
        problem = f"{len(data)} bytes, not {KEY_BYTES}"
    if problem:
        raise StoreError(f"{path}: embedx's local key is {problem}; delete it to make a new one (bench journals "
                         "and the digest cache are then recomputed)")
    return data


def mac(purpose: str, data: bytes) -> str:
    """HMAC-SHA256 of ``data`` under the local key, for one ``purpose`` (a journal line, a digest row)."""
    return hmac.new(local_key(), purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def mac_ok(purpose: str, data: bytes, tag: object) -> bool:
    return isinstance(tag, str) and hmac.compare_digest(mac(purpose, data), tag)
