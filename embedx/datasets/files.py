"""A user's own labelled file (CSV, TSV or JSONL) as a Dataset, read by the same readers as ``embedx extract``."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedx.contract.errors import InputError
from embedx.datasets.dataset import Dataset
from embedx.files.digests import file_digest
from embedx.inputs.decoding import EncodingErrors
from embedx.inputs.formats import InputSpec, read_records

#: suffixes that make a ``--datasets`` item a file rather than a registered name
LABELLED_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson")


def is_labelled_file(name: str) -> bool:
    """Whether a ``--datasets`` item names a file (a labelled file's suffix, or a path separator) rather
    than a registered dataset. A missing file then fails as one ("no such input file")."""
    return Path(name).suffix.lower() in LABELLED_SUFFIXES or "/" in name or "\\" in name


def from_file(path: str | os.PathLike[str], text_field: str = "text", label_field: str = "label", *,
              id_field: str | None = None, split_field: str | None = None, format: str | None = None,
              label_names: Sequence[str] | None = None, name: str | None = None,
              encoding_errors: EncodingErrors = "strict") -> Dataset:
    """Texts and labels from ``path``; the format comes from the suffix unless ``format`` is given.

    Ids come from ``id_field``, else the line number where the record starts. Label values are strings
    (JSON numbers and booleans as written in JSON), stripped; ``label_names`` fixes the class order,
    which is otherwise sorted. With ``split_field``, each row's split name (train / validation / test, the
    spellings of ``PART_SPELLINGS``) goes to ``meta["split_values"]``, and ``datasets.split`` keeps those
    parts. ``meta["sha256"]`` is the file's digest, so results cached for it are reused only while it is
    unchanged.
    """
    spec = InputSpec(str(path), format=format, text_field=text_field, encoding_errors=encoding_errors)
    if spec.resolved_format == "txt":
        raise InputError(f"{path}: a plain-text file has no label column; use CSV, TSV or JSONL with a "
                         f"{label_field!r} column")
    records, columns = read_records(spec)
    present = ", ".join([text_field, *columns])
    for wanted, what in ((label_field, "label"), (id_field, "id"), (split_field, "split")):
        # A JSONL file's columns are the union of its records' fields, so an empty one has none to check.
        if wanted is not None and wanted not in columns and (records or spec.resolved_format != "jsonl"):
            raise InputError(f"{path}: no {what} column {wanted!r} (columns: {present})")
    texts, labels, ids, parts = [], [], [], []
    for record in records:
        label = _as_text(record.columns.get(label_field))
        if not label:
            raise InputError(f"{path}, line {record.line}: no value in label column {label_field!r}")
        texts.append(record.text)
        labels.append(label)
        ids.append(_as_text(record.columns.get(id_field)) if id_field else str(record.line))
        if id_field and not ids[-1]:
            raise InputError(f"{path}, line {record.line}: no value in id column {id_field!r}")
        if split_field:
            parts.append(_as_text(record.columns.get(split_field)))
            if not parts[-1]:
                raise InputError(f"{path}, line {record.line}: no value in split column {split_field!r}")
    repeated = [ident for ident, count in Counter(ids).items() if count > 1]
    if repeated:
        raise InputError(f"{path}: id {repeated[0]!r} occurs more than once in column {id_field!r}; ids must "
                         "be unique")
    found = sorted(set(labels))
    if label_names is None:
        label_names = found
    elif missing := [label for label in found if label not in label_names]:
        raise InputError(f"{path}: labels {', '.join(map(repr, missing))} are not among label_names "
                         f"({', '.join(label_names)})")
    meta = {"source": {"file": str(path), "format": spec.resolved_format, "text_field": text_field,
                       "label_field": label_field, "id_field": id_field}, "rows": len(texts),
            "sha256": file_digest(path), "lines": [r.line for r in records]}
    if split_field:
        _check_split_names(path, parts, [r.line for r in records], split_field)
        meta.update(split_column=split_field, split_values=parts)
    return Dataset(name or Path(path).stem, texts, np.asarray(labels, dtype=str), ids, tuple(label_names), meta)


def _check_split_names(path: object, parts: list[str], lines: list[int], column: str) -> None:
    """Every value a split name, and train and test both present: else one error naming the file and line."""
    from embedx.datasets.splits import PART_SPELLINGS, spellings_help

    spelled = {s: part for part, spellings in PART_SPELLINGS.items() for s in spellings}
    seen = set()
    for value, line in zip(parts, lines, strict=True):
        part = spelled.get(value.lower())
        if part is None:
            raise InputError(f"{path}, line {line}: {value!r} in split column {column!r} is not a split name "
                             f"(accepted, any case: {spellings_help()})")
        seen.add(part)
    for needed in ("train", "test"):
        if needed not in seen:
            raise InputError(f"{path}: split column {column!r} has no {needed} rows (values: "
                             f"{', '.join(sorted(set(parts)))})")


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value)  # numbers and booleans as JSON writes them: 1, 0.5, true
