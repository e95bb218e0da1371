"""`embedx predict --file`: read texts (and labels) the way `extract` does, write one row per text, score.

The input goes through the same readers as ``embedx extract`` (``.txt``, ``.csv``, ``.tsv``, ``.jsonl``,
the text picked with ``--text-column``), so a labelled file is never read as plain lines. Class names
come from the saved head, which is untrusted: they are written as data, never interpreted.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedx.contract.errors import InputError, OptionError
from embedx.heads.metrics import scores

OUTPUT_FORMATS = (".csv", ".tsv", ".jsonl")


@dataclass
class PredictInput:
    """The texts of a file, the line each starts on, and its labels (as text) when a label column was named."""

    source: str
    texts: list[str]
    lines: list[int]
    labels: list[str] | None = None


def read_input(path: Path, text_column: str = "text", label_column: str | None = None,
               encoding_errors: str = "strict") -> PredictInput:
    """Texts (and labels) of ``path``; a missing column is one line naming it and the file."""
    from embedx.inputs import InputSpec
    from embedx.inputs.formats import iter_records

    spec = InputSpec(str(path), text_field=text_column, encoding_errors=encoding_errors)  # type: ignore[arg-type]
    if spec.resolved_format == "txt" and label_column:
        raise InputError(f"{path}: a .txt file has one text per line and no columns; --label-column "
                         f"{label_column!r} needs a .csv, .tsv or .jsonl file")
    texts: list[str] = []
    lines: list[int] = []
    labels: list[str] | None = [] if label_column else None
    with iter_records(spec) as stream:
        if label_column and spec.resolved_format != "jsonl" and label_column not in stream.columns:
            columns = ", ".join([text_column, *stream.columns])
            raise InputError(f"{path}: no column {label_column!r} (columns: {columns}); choose one with --label-column")
        for record in stream:
            texts.append(record.text)
            lines.append(record.line)
            if labels is not None:
                labels.append(_label(record.columns, label_column or "", path, record.line))
    return PredictInput(str(path), texts, lines, labels)


def _label(columns: dict[str, Any], name: str, path: Path, line: int) -> str:
    """A row's label as the text training compared (an input column read back as a string)."""
    if name not in columns:
        raise InputError(f"{path}, line {line}: no field {name!r}; every row needs its label (--label-column)")
    value = columns[name]
    if value is None or isinstance(value, (dict, list)):
        raise InputError(f"{path}, line {line}: field {name!r} is {'null' if value is None else 'not a label'}, "
                         "expected a label")
    if isinstance(value, bool):
        return "True" if value else "False"  # as numpy's astype(str) wrote it when the head was trained
    return str(value)


def scores_are_probabilities(head_cls: Any) -> bool:
    """Whether a head's ``predict_proba`` gives probabilities, or only scores that rank (a margin classifier).

    A head class may say so with ``probabilities = False``; a linear head with a margin loss (the linear
    SVM's hinge) turns decision values into a softmax, which ranks classes but is not calibrated.
    """
    declared = getattr(head_cls, "probabilities", None)
    if isinstance(declared, bool):
        return declared
    return getattr(head_cls, "loss", "log_loss") == "log_loss"


def check_output(output: Path, source: Path | None) -> str:
    """The output's format from its suffix; refuses a path that is the input itself."""
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise OptionError(f"--output {output}: write .csv, .tsv or .jsonl (not {suffix or 'no suffix'!r})")
    if source is not None and output.exists() and source.exists() and output.resolve() == source.resolve():
        raise OptionError(f"--output {output} is the input file; choose another path")
    if output.is_dir():
        raise OptionError(f"--output {output} is a directory; give a file path")
    return suffix[1:]


def write_predictions(output: Path, lines: list[int], labels: list[str], proba: np.ndarray, classes: list[str],
                      probabilities: bool = True, given: list[str] | None = None) -> None:
    """One row per text: its line in the input, the predicted label, one probability (or score) per class.

    ``given`` adds the label the file gave. Written whole, then renamed: a failed write leaves no half file.
    """
    from embedx.files.atomic import atomic_write

    kind = check_output(output, None)
    prefix = "p" if probabilities else "score"
    if kind == "jsonl":
        parts = []
        for n, (line, label) in enumerate(zip(lines, labels, strict=True)):
            row: dict[str, Any] = {"line": line, "label": label}
            if given is not None:
                row["given"] = given[n]
            row["probabilities" if probabilities else "scores"] = dict(
                zip(classes, (round(float(v), 6) for v in proba[n]), strict=True))
            parts.append(json.dumps(row, ensure_ascii=False) + "\n")
        text = "".join(parts)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t" if kind == "tsv" else ",", lineterminator="\n")
        writer.writerow(["line", "label", *(["given"] if given is not None else []),
                         *(f"{prefix}({c})" for c in classes)])
        for n, (line, label) in enumerate(zip(lines, labels, strict=True)):
            writer.writerow([line, label, *([given[n]] if given is not None else []),
                             *(f"{float(v):.6f}" for v in proba[n])])
        text = buffer.getvalue()
    atomic_write(output, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``: row ``i`` is the texts of class ``i``, column ``j`` what they were called."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def score_file(given: list[str], predicted: list[str], classes: list[str], lines: list[int]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision and recall and the confusion matrix over the rows whose label
    the head knows; rows labelled with a class it was not trained on are counted and named, not scored."""
    index = {c: i for i, c in enumerate(classes)}
    known = [n for n, label in enumerate(given) if label in index]
    unknown: dict[str, dict[str, int]] = {}
    for n, label in enumerate(given):
        if label not in index:
            entry = unknown.setdefault(label, {"rows": 0, "first_line": lines[n]})
            entry["rows"] += 1
    y_true = np.array([index[given[n]] for n in known], dtype=np.int64)
    y_pred = np.array([index[predicted[n]] for n in known], dtype=np.int64)
    matrix = confusion(y_true, y_pred, len(classes))
    per_class = {}
    for i, name in enumerate(classes):
        called, actual = int(matrix[:, i].sum()), int(matrix[i].sum())
        per_class[name] = {"precision": float(matrix[i, i] / called) if called else 0.0,
                           "recall": float(matrix[i, i] / actual) if actual else 0.0, "support": actual}
    return {"rows": len(given), "scored": len(known), **scores(y_true, y_pred, len(classes)),
            "per_class": per_class, "classes": list(classes), "confusion": matrix.tolist(),
            "unknown_labels": unknown}


def describe_scores(result: dict[str, Any], printable: Any) -> list[str]:
    """The terminal lines for :func:`score_file`'s result: scores, the confusion matrix, unknown labels."""
    classes = [printable(c, one_line=True) for c in result["classes"]]
    lines = [f"scored {result['scored']:,} of {result['rows']:,} rows: accuracy {result['accuracy']:.4f}   "
             f"macro-F1 {result['macro_f1']:.4f}"]
    for name, shown in zip(result["classes"], classes, strict=True):
        m = result["per_class"][name]
        lines.append(f"  {shown}: precision {m['precision']:.4f}  recall {m['recall']:.4f}  ({m['support']:,} rows)")
    corner = "given \\ predicted"
    width = max(len(c) for c in [*classes, corner])
    cell = max(7, *(len(c) for c in classes))
    lines.append("confusion matrix (rows: given label, columns: predicted)")
    lines.append(f"  {corner:<{width}}  " + "  ".join(f"{c:>{cell}}" for c in classes))
    for shown, counts in zip(classes, result["confusion"], strict=True):
        lines.append(f"  {shown:<{width}}  " + "  ".join(f"{v:>{cell},}" for v in counts))
    for label, entry in result["unknown_labels"].items():
        lines.append(f"warning: {entry['rows']:,} row(s) labelled {printable(label, one_line=True)!r} (first at line "
                     f"{entry['first_line']}): not a class of this head ({', '.join(classes)}); not scored")
    return lines
