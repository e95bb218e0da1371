"""The texts a throughput run embeds: all distinct (embedx computes a repeated text once), and sized.

A source is a file (``.txt`` one text per line, ``.csv`` / ``.tsv`` / ``.jsonl`` with a ``text``
field) or a dataset name from ``embedx datasets list``. When it holds fewer distinct texts than
asked for, more are made by joining two of its texts, drawn with a fixed seed. The length sweep
joins texts until each has at least ``words`` words and cuts it there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedx.contract.errors import InputError


def read_source(source: str) -> tuple[str, list[str]]:
    """``(description, texts)``: non-blank texts of a file, or of a dataset (fetched if needed)."""
    if Path(source).is_file():
        from embedx.inputs import InputSpec, is_blank, iter_records

        stream = iter_records(InputSpec(source))
        try:
            texts = [r.text for r in stream if not is_blank(r.text)]
        finally:
            if hasattr(stream, "close"):
                stream.close()
        label = f"file {Path(source).name}"
    else:
        from embedx import datasets

        if source not in datasets.DATASETS:
            raise InputError(f"--texts {source!r} is neither a file nor a dataset (datasets: "
                             f"{', '.join(sorted(datasets.DATASETS))})")
        texts = [t for t in datasets.load(source, fetch=True).texts if t.strip()]
        label = f"dataset {source}"
    if not texts:
        raise InputError(f"--texts {source}: no non-blank text in it")
    return label, texts


def unique_texts(pieces: list[str], n: int, seed: int = 0) -> list[str]:
    """``n`` distinct texts: the distinct ``pieces`` in order, then seeded joins of two pieces."""
    seen = dict.fromkeys(pieces)
    out = list(seen)[:n]
    if len(out) == n:
        return out
    chosen = set(out)
    rng = np.random.default_rng(seed)
    attempts = 0
    while len(out) < n:
        i, j = rng.integers(0, len(pieces), size=2)
        text = f"{pieces[i]} {pieces[j]}"
        attempts += 1
        if text not in chosen:
            chosen.add(text)
            out.append(text)
        elif attempts > 50 * n:  # a source of very few pieces: join three and more
            pieces = [f"{a} {b}" for a, b in zip(pieces, pieces[1:] + pieces[:1], strict=True)]
            attempts = 0
    return out


def texts_of_length(pieces: list[str], words: int, n: int, seed: int = 1) -> list[str]:
    """``n`` distinct texts of exactly ``words`` whitespace-separated words, from seeded draws of ``pieces``."""
    rng = np.random.default_rng(seed + words)
    split = [p.split() for p in pieces]
    out: dict[str, None] = {}
    attempts = 0
    while len(out) < n:
        current: list[str] = []
        while len(current) < words:
            current += split[int(rng.integers(0, len(split)))]
        start = int(rng.integers(0, len(current) - words + 1))
        out.setdefault(" ".join(current[start:start + words]), None)
        attempts += 1
        if attempts > 100 * n:
            raise InputError(f"cannot make {n} distinct texts of {words} words from this source")
    return list(out)
