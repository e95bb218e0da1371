"""A training corpus that can be read more than once, one document per line, without holding it in memory.

Shared by the trainers built on this runtime (``embedx swivel train`` in embedx-swivel, ``embedx elmo
train`` in embedx-elmo-train). Counting needs two passes (vocabulary, then co-occurrences or
batches), so a corpus is a list of sources,
re-opened for each pass: plain text files (``.gz`` / ``.bz2`` decompressed on the fly) or
``dataset:NAME``, the texts of an embedx dataset (fetched from a package registry on first use).
Each line is one document: co-occurrence windows never cross a line break.
"""

from __future__ import annotations

import bz2
import gzip
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from embedx.plugin_api import InputError, OptionError

DATASET_PREFIX = "dataset:"
ENCODING_ERRORS = ("strict", "replace", "ignore")


class CorpusError(InputError):
    """A corpus source is missing, unreadable, or holds no usable text."""


@dataclass(frozen=True)
class Corpus:
    """Sources read in order; ``texts`` adds in-memory documents (tests, notebooks)."""

    sources: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    encoding_errors: str = "strict"

    @classmethod
    def of(cls, sources: Iterable[str | os.PathLike[str]] = (), texts: Iterable[str] = (),
           encoding_errors: str = "strict") -> Corpus:
        """Check every source exists now, so a typo fails before minutes of counting."""
        if encoding_errors not in ENCODING_ERRORS:
            raise OptionError(f"encoding_errors must be one of {', '.join(ENCODING_ERRORS)}, "
                                    f"not {encoding_errors!r}")
        corpus = cls(tuple(str(s) for s in sources), tuple(texts), encoding_errors)
        if not corpus.sources and not corpus.texts:
            raise CorpusError("no corpus given: pass one or more text files (one document per line) or dataset:NAME")
        for source in corpus.sources:
            if source.startswith(DATASET_PREFIX):
                _check_dataset(source[len(DATASET_PREFIX):])
            elif not Path(source).is_file():
                what = "a directory, not a file" if Path(source).is_dir() else "not found"
                raise CorpusError(f"corpus file {source}: {what}")
        return corpus

    def lines(self) -> Iterator[str]:
        """Every document, source after source; a fresh pass each call."""
        for source in self.sources:
            if source.startswith(DATASET_PREFIX):
                yield from _dataset_texts(source[len(DATASET_PREFIX):])
            else:
                yield from _file_lines(source, self.encoding_errors)
        yield from self.texts


def _open(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _file_lines(path: str, errors: str) -> Iterator[str]:
    """Decode line by line so an invalid byte is reported with its line number."""
    try:
        with _open(path) as handle:
            for number, raw in enumerate(handle, 1):
                try:
                    yield raw.decode("utf-8", errors)
                except UnicodeDecodeError as exc:
                    raise CorpusError(f"{path}, line {number}: invalid UTF-8 at byte {exc.start}; "
                                      "pass --encoding-errors replace (or ignore) to read it anyway") from None
    except (OSError, EOFError) as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc}") from None


def _check_dataset(name: str) -> None:
    from embedx.plugin_api import DATASETS

    if name not in DATASETS:
        raise CorpusError(f"unknown dataset {DATASET_PREFIX}{name} (known: "
                          f"{', '.join(DATASET_PREFIX + n for n in DATASETS)})")


def _dataset_texts(name: str) -> list[str]:
    from embedx.plugin_api import EmbedxError, load_dataset

    try:
        return load_dataset(name, fetch=True).texts
    except EmbedxError as exc:
        raise CorpusError(f"{DATASET_PREFIX}{name}: {exc}") from None
