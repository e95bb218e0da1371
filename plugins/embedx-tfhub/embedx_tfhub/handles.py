"""TF Hub handles: a URL or a local folder, resolved to a module folder, with a clear error offline.

A URL is looked up in the TF Hub cache first, exactly where ``tensorflow_hub`` keeps it:
``$TFHUB_CACHE_DIR/<sha1 of the URL>`` (default ``<tmp>/tfhub_modules``). A cached module loads
without touching the network, so a module downloaded once (or unpacked there by hand) works
offline. An uncached URL is handed to ``hub.resolve``; offline that fails within a second with
``URLError``, turned here into :class:`embedx.contract.errors.EmbedderUnavailable` naming the folder to
fill. There is no retry loop: the socket timeout is bounded while resolving, and a download
lock left behind by a dead process on this machine (which would make ``tensorflow_hub`` wait up
to ten minutes) is removed first.

Nothing here imports TensorFlow until a module must actually be resolved or loaded.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from embedx.plugin_api import EmbedderUnavailable, folder_digest

URL_PREFIXES = ("http://", "https://", "gs://")
#: Seconds a stalled socket may wait while resolving a URL (per read, not for the whole download).
NETWORK_TIMEOUT = 30.0
#: Files whose presence makes a folder a module: TF2 SavedModel, or TF1 Hub format.
MODULE_MARKERS = ("saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb")


def is_url(handle: str) -> bool:
    return handle.startswith(URL_PREFIXES)


def cache_dir() -> Path:
    """The TF Hub cache folder, chosen as ``tensorflow_hub`` chooses it (``TFHUB_CACHE_DIR`` or the temp dir)."""
    configured = os.environ.get("TFHUB_CACHE_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "tfhub_modules"


def cached_folder(handle: str) -> Path:
    """Where ``tensorflow_hub`` caches (or would cache) the module at URL ``handle``."""
    return cache_dir() / hashlib.sha1(handle.encode("utf8")).hexdigest()


def is_module_dir(path: str | os.PathLike) -> bool:
    return any((Path(path) / marker).is_file() for marker in MODULE_MARKERS)


def check_handle(handle: str) -> None:
    """Refuse, without TensorFlow, a local handle that is not a module folder (URLs are checked at load)."""
    if not handle:
        raise ValueError("handle is empty: pass a TF Hub URL or a module folder (--option handle=...)")
    if is_url(handle):
        return
    path = Path(handle).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"module folder {handle} does not exist (option handle; a URL must start with "
                                f"{', '.join(URL_PREFIXES)})")
    if not is_module_dir(path):
        raise FileNotFoundError(f"{handle} holds no SavedModel or TF Hub module (none of {', '.join(MODULE_MARKERS)})")


def local_folder(handle: str) -> Path | None:
    """The module folder for ``handle`` if it is on this machine now (a local path, or a cached URL)."""
    if is_url(handle):
        folder = cached_folder(handle)
        return folder if is_module_dir(folder) else None
    path = Path(handle).expanduser()
    return path if is_module_dir(path) else None


def resolve(handle: str, trust_module: bool = False) -> str:
    """A local module folder for ``handle`` whose graph stays inside it (``safe_module``), unless trusted."""
    path = _resolve_folder(handle)
    if not trust_module:
        from embedx_tfhub.safe_module import check_module

        check_module(path)
    return path


def _resolve_folder(handle: str) -> str:
    """A local module folder for ``handle``: the folder itself, the cached copy, or a fresh download."""
    check_handle(handle)
    folder = local_folder(handle)
    if folder is not None:
        return str(folder)
    target = cached_folder(handle)
    _remove_dead_lock(target)
    from embedx_tfhub import _tf

    hub = _tf.hub()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT)
    try:
        return hub.resolve(handle)
    except Exception as exc:  # URLError offline, HTTPError, tf.errors.* for a bad archive
        raise EmbedderUnavailable(
            f"TF Hub module {handle} is not in the TF Hub cache and could not be downloaded "
            f"({type(exc).__name__}: {exc}). Offline, unpack the module into {target} "
            f"(the cache folder comes from TFHUB_CACHE_DIR) or pass a local module folder as model=..."
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)


def load(handle: str, trust_module: bool = False) -> Any:
    """``hub.load`` on the resolved, scanned folder; a folder TensorFlow cannot read becomes ``EmbedderUnavailable``."""
    path = resolve(handle, trust_module)
    from embedx_tfhub import _tf

    hub = _tf.hub()
    try:
        return hub.load(path)
    except Exception as exc:
        raise EmbedderUnavailable(f"could not load TF Hub module {handle} from {path}: "
                                  f"{type(exc).__name__}: {exc}") from exc


def identity(handle: str) -> dict[str, Any]:
    """What pins a module's output: a published URL names an immutable version; a folder is hashed."""
    if is_url(handle):
        return {"handle": handle}
    return {"module_sha256": folder_digest(Path(handle).expanduser())}


def _remove_dead_lock(module_dir: Path) -> None:
    """Drop ``<module_dir>.lock`` if a process of this machine that no longer runs left it behind."""
    lock = Path(str(module_dir) + ".lock")
    try:
        owner = lock.read_text()
    except OSError:
        return
    parts = owner.strip().rsplit(".", 2)  # "<hostname>.<pid>.<task uid>"; hostnames may hold dots
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return
    pid_text = parts[1]
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        lock.unlink(missing_ok=True)
    except PermissionError:  # alive, owned by someone else
        return
