"""The on-disk layout of fetched datasets, and writes that never leave a half-written file behind.

``<root>/<name>/data.jsonl`` holds one ``{"id", "label", "text"}`` object per line; ``meta.json`` beside it
says where the rows came from. ``meta.json`` is written last, so its presence marks a complete fetch.
Downloaded archives are kept in ``<root>/_downloads/`` so datasets sharing a package download it once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from embedx.files.atomic import atomic_write

ENV = "EMBEDX_DATA"
FORMAT = 1  # bump when data.jsonl or meta.json change shape; older caches then count as not fetched
DATA = "data.jsonl"
META = "meta.json"


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The datasets root: ``override``, else ``$EMBEDX_DATA``, else ``~/.cache/embedx/datasets``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "embedx" / "datasets"


def data_path(root: Path, name: str) -> Path:
    return root / name / DATA


def meta_path(root: Path, name: str) -> Path:
    return root / name / META


def downloads_dir(root: Path) -> Path:
    return root / "_downloads"


def read_meta(root: Path, name: str) -> dict[str, Any] | None:
    """The dataset's meta.json, or None when it is absent, unreadable or from another format version."""
    try:
        meta = json.loads(meta_path(root, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not data_path(root, name).is_file():
        return None
    return meta


def write_atomic(path: Path, write: Callable[[IO[str]], object]) -> None:
    """Write UTF-8 text through a temporary file in the same folder, then rename it over ``path`` (durably)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write_text(tmp: Path) -> None:
        with open(tmp, "x", encoding="utf-8", newline="\n") as handle:
            write(handle)

    atomic_write(path, write_text)
