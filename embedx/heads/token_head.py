"""A per-word tagger trained on cached token features, with the document heads' protocol.

The input table holds one sentence per row: its text is the words joined by spaces, and a label column
holds one tag per word, space-separated (``"O B-person I-person"``). Token vectors come from a token-level
output of the feature file (word pieces, or the embedder's own words); :mod:`embedx.heads.word_alignment`
maps them onto the dataset's words by their characters, and each word takes its first token's vector
(``subtokens=mean``: the mean of its tokens). A word the embedder cut off (``max_length``) has no vector:
it is left out of training and predicted as the training set's most frequent tag, and counted.

The protocol is the document heads' one, with the sentence as the unit: sentences are split (seeded and
stratified by each sentence's rarest tag, or by a given split column), every sentence with the same text
stays on one side, settings are chosen by cross-validation with each sentence's words in one fold (or on
validation), the head is refit on train+validation and scored once on test: word accuracy, macro-F1 over
tags, and for BIO tags entity-level precision/recall/F1 (exact spans, as conlleval counts them). The
majority-tag baseline on the same test words is reported beside them.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedx.contract.errors import EmbedxError, OptionError
from embedx.heads.base import FitReport, Head
from embedx.heads.metrics import per_class, scores
from embedx.heads.saved import HeadStateError, config_int, need, read_state, write_state
from embedx.heads.word_alignment import SubtokenPooling, word_vectors

SKLEARN = {"sklearn": "pip install scikit-learn==1.9.1"}
WORD_INPUT = "words"  # Head.input of heads that tag words, trained by :func:`train_tags`
READ_ROWS = 256  # sentences read from the store at a time
#: options that change how word vectors are built: fixed for a run, so they cannot join a --grid
FEATURE_OPTIONS = ("subtokens", "layer")


@dataclass
class Words:
    """Every labelled word, sentence after sentence: its vector, whether it has one, its tag and sentence."""

    X: np.ndarray  # [n_words, dim] float32
    has: np.ndarray  # bool [n_words]
    y: np.ndarray  # int64 [n_words], into classes
    sentence: np.ndarray  # int64 [n_words]: the input row
    classes: list[str]


class WordData:
    """A view of some words (``index`` into :class:`Words`), with the interface selection needs."""

    level = "words"

    def __init__(self, words: Words, index: np.ndarray | None = None):
        self.words = words
        self.index = np.arange(len(words.y)) if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def classes(self) -> list[str]:
        return self.words.classes

    @property
    def y(self) -> np.ndarray:
        return self.words.y[self.index]

    @property
    def has(self) -> np.ndarray:
        return self.words.has[self.index]

    def subset(self, index: np.ndarray) -> WordData:
        return WordData(self.words, self.index[index])

    def matrix(self, window: int = 0) -> np.ndarray:
        """Each word's vector, then those of up to ``window`` words on each side in its sentence (zeros past it)."""
        X, sentence, idx = self.words.X, self.words.sentence, self.index
        blocks = [X[idx]]
        for d in [*range(-window, 0), *range(1, window + 1)]:
            j = np.clip(idx + d, 0, len(X) - 1)
            same = (sentence[j] == sentence[idx]) & (idx + d >= 0) & (idx + d < len(X))
            blocks.append(np.where(same[:, None], X[j], 0.0).astype(np.float32))
        return np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]


class WordLogisticHead(Head):
    id = "word-logreg"
    description = ("per-word tagger: multinomial logistic regression on token vectors mapped to the dataset's "
                   "words, with an optional context window")
    requires = SKLEARN
    input = WORD_INPUT

    def __init__(self, C: list[float] | None = None, window: int = 0, subtokens: SubtokenPooling = "first",
                 layer: int | None = None, class_weight: Literal["none", "balanced"] = "none",
                 max_iter: int = 300):
        """``window``: also read this many neighbouring words' vectors on each side (context the tokens alone
        may lack); ``subtokens``: a word's vector from its tokens, first or mean; ``layer``: which layer of a
        per-layer output (none: their mean)."""
        if window < 0:
            raise OptionError(f"window={window}: give 0 or more words")
        if max_iter < 1:
            raise OptionError(f"max_iter={max_iter}: give at least 1")
        self.Cs = C or [0.001, 0.01, 0.1, 1.0]  # 800 WNUT tweets, MiniLM pieces: 0.01 chosen on validation
        self.window, self.subtokens, self.layer = window, subtokens, layer
        self.class_weight, self.max_iter = class_weight, max_iter
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None
        self.known = np.zeros(0, dtype=np.int64)  # classes the model saw, in its column order
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.n_classes = 0
        self.majority = 0

    def search_space(self) -> dict[str, list]:
        return {"C": [[c] for c in self.Cs]} if len(self.Cs) > 1 else {}

    def fit(self, train: WordData, validation: WordData | None) -> FitReport:  # type: ignore[override]
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        self.n_classes = len(train.classes)
        self.majority = int(np.bincount(train.y, minlength=self.n_classes).argmax())
        rows = train.has
        X, y = train.matrix(self.window)[rows], train.y[rows]
        if len(np.unique(y)) < 2:
            raise OptionError(f"{self.id}: the training words carry {len(np.unique(y))} tag(s); need 2+")
        self.mean, self.scale = X.mean(0), X.std(0) + 1e-6
        X = (X - self.mean) / self.scale
        if len(self.Cs) > 1 and (validation is None or not len(validation)):
            raise ValueError(f"{self.id}: choosing among C={self.Cs} needs validation words")
        results = {}
        for C in self.Cs:
            model = LogisticRegression(C=C, max_iter=self.max_iter,
                                       class_weight=None if self.class_weight == "none" else "balanced")
            with threadpool_limits(1):  # small products; a second BLAS thread only adds barriers on 2 cores
                model.fit(X, y)
            self.coef, self.intercept = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
            self.known = model.classes_.astype(np.int64)
            if self.coef.shape[0] == 1:  # two classes: scikit-learn keeps one row; make it a softmax pair
                self.coef = np.concatenate([-self.coef / 2, self.coef / 2])
                self.intercept = np.concatenate([-self.intercept / 2, self.intercept / 2])
            score = (scores(validation.y, self.predict_proba(validation).argmax(1), self.n_classes)["accuracy"]
                     if len(self.Cs) > 1 and validation is not None else None)
            results[C] = (score, self.coef, self.intercept, int(model.n_iter_.max()))
        best = max(self.Cs, key=lambda c: results[c][0] or 0.0)
        _, self.coef, self.intercept, iterations = results[best]
        return FitReport(chosen={"C": best}, extra={"iterations": iterations, "words_fitted": int(rows.sum())})

    def predict_proba(self, data: WordData | np.ndarray) -> np.ndarray:  # type: ignore[override]
        if not isinstance(data, WordData):
            raise EmbedxError(f"head {self.id!r} tags the words of a sentence; it cannot label whole texts "
                              "(train it with `embedx train`, which scores it per word)")
        assert self.coef is not None and self.intercept is not None and self.mean is not None
        X = (data.matrix(self.window) - self.mean) / self.scale
        logits = X @ self.coef.T + self.intercept
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        out = np.zeros((len(data), self.n_classes), dtype=np.float64)
        out[:, self.known] = p
        missing = ~data.has
        out[missing] = 0.0
        out[missing, self.majority] = 1.0
        return out

    def save(self, directory: Path) -> None:
        assert self.coef is not None and self.intercept is not None and self.mean is not None
        assert self.scale is not None
        write_state(directory, {"coef": self.coef, "intercept": self.intercept, "known": self.known,
                                "mean": self.mean, "scale": self.scale},
                    {"n_classes": self.n_classes, "majority": self.majority, "window": self.window})

    def restore(self, directory: Path) -> None:
        arrays, config = read_state(directory)
        self.coef, self.intercept, self.known, self.mean, self.scale = need(
            arrays, directory, "coef", "intercept", "known", "mean", "scale")
        self.n_classes = config_int(config, "n_classes", directory, low=2)
        self.majority = config_int(config, "majority", directory, low=0, high=self.n_classes - 1)
        k, width = self.coef.shape if self.coef.ndim == 2 else (0, 0)
        bad_classes = k and (self.known.min() < 0 or self.known.max() >= self.n_classes)
        if (self.intercept.shape != (k,) or self.known.shape != (k,) or self.mean.shape != (width,)
                or self.scale.shape != (width,) or bad_classes):
            raise HeadStateError(f"{directory}: the saved tagger's arrays do not fit together; save it again")
        self.known = self.known.astype(np.int64)


def entity_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """``(start, end, type)`` of each entity in BIO tags; an ``I-X`` after anything but ``X`` opens one (conlleval)."""
    spans = set()
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and kind == name and start >= 0
        if start >= 0 and not continues:
            spans.add((start, i, kind))
            start, kind = -1, ""
        if prefix in ("B", "I") and not continues:
            start, kind = i, name
    return spans


def entity_scores(true: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Exact-span entity precision, recall and F1 over sentences (micro-averaged over entities)."""
    tp = n_true = n_pred = 0
    for t, p in zip(true, predicted, strict=True):
        a, b = entity_spans(t), entity_spans(p)
        tp, n_true, n_pred = tp + len(a & b), n_true + len(a), n_pred + len(b)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1}


def is_bio(classes: list[str]) -> bool:
    return all(c == "O" or (c[:2] in ("B-", "I-") and len(c) > 2) for c in classes) and any(
        c.startswith("B-") for c in classes)


@dataclass
class Sentences:
    """The labelled sentences of one input table: words, tags, and where each sentence's words start."""

    words: list[list[str]]
    tags: list[list[str]]
    keys: np.ndarray
    lines: np.ndarray
    name: str

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([len(w) for w in self.words])]).astype(np.int64)


def read_sentences(table: Any, labels: str, where: str) -> Sentences:
    """Words (the text split on whitespace) and tags (the label column split the same way), checked row by row."""
    texts = table.texts
    column = [str(v) for v in np.asarray(table.column(labels)).tolist()]
    lines = np.asarray(table.lines)
    words, tags = [], []
    for i, (text, tagged) in enumerate(zip(texts, column, strict=True)):
        w, t = text.split(), tagged.split()
        if len(w) != len(t):
            raise OptionError(f"{where}, line {int(lines[i])}: {len(w)} words but {len(t)} tags in column "
                              f"{labels!r}; give one space-separated tag per whitespace-separated word")
        words.append(w)
        tags.append(t)
    return Sentences(words, tags, np.asarray(table.keys), lines, table.name)


def build_words(features: str | Path, embedder: str, sentences: Sentences, classes: list[str], *,
                config_hash: str | None, output: str | None, subtokens: SubtokenPooling,
                layer: int | None) -> tuple[Words, str]:
    """Every sentence's word vectors, read from the store a block of sentences at a time."""
    from embedx.features.tokens import TokenRows
    from embedx.store.reader import FeatureStore

    with FeatureStore(features) as store:
        spec = store.feature_set(embedder, config_hash).output_spec(output, "token")
    weights = None
    if spec.get("per_layer") and layer is None:
        weights = [1.0 / int(spec["layers"])] * int(spec["layers"])
    reader = TokenRows(features, embedder, input=sentences.name, config_hash=config_hash, output=spec["name"],
                       layers=layer, layer_weights=weights)
    lookup = {c: i for i, c in enumerate(classes)}
    n = int(sentences.starts[-1])
    X = np.zeros((n, reader.token_shape[-1]), dtype=np.float32)
    has = np.zeros(n, dtype=bool)
    starts = sentences.starts
    for block in range(0, len(sentences.words), READ_ROWS):
        index = np.arange(block, min(block + READ_ROWS, len(sentences.words)))
        for i, vectors, tokens in zip(index.tolist(), reader.values(index), reader.tokens(index), strict=True):
            X[starts[i]:starts[i + 1]], has[starts[i]:starts[i + 1]] = word_vectors(
                sentences.words[i], tokens, vectors, subtokens)
    y = np.fromiter((lookup[t] for tags in sentences.tags for t in tags), dtype=np.int64, count=n)
    sentence = np.repeat(np.arange(len(sentences.words)), np.diff(starts))
    return Words(X, has, y, sentence, classes), spec["name"]


def rarest_tags(sentences: Sentences, classes: list[str]) -> np.ndarray:
    """Each sentence's rarest tag (over the whole input): what the sentence split is stratified by."""
    counts = Counter(t for tags in sentences.tags for t in tags)
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[min(tags, key=lambda t: (counts[t], t))] if tags else lookup[counts.most_common(1)[0][0]]
                     for tags in sentences.tags], dtype=np.int64)


def train_tags(head_id: str, features: str | Path, embedder: str, labels: str, *, input: str | None = None,
               config_hash: str | None = None, output: str | None = None, options: dict[str, Any] | None = None,
               grid: dict[str, list[str]] | None = None, split: Any = None, save: str | Path | None = None,
               protocol: Any = None, registry: Any = None) -> Any:
    """Train a word head (``input == "words"``) on one token output; returns a ``TrainOutcome``.

    ``split`` (a ``SplitSpec``) and ``protocol`` mean what they mean for :func:`embedx.heads.training.train`,
    applied to sentences; ``sizes`` counts sentences, ``extra["words"]`` words.
    """
    from embedx.heads.selection import Protocol, choose_and_fit
    from embedx.heads.training import SplitSpec, TrainOutcome, build_head, make_splits
    from embedx.store.reader import FeatureStore

    split = split or SplitSpec()
    protocol = protocol or Protocol(seed=split.seed)
    started = time.perf_counter()
    if split.samples_per_class is not None:
        raise OptionError("--samples-per-class counts texts per class; a word head has a tag per word, so it does "
                          "not apply (use --split to train on fewer sentences)")
    fixed = [k for k in (grid or {}) if k in FEATURE_OPTIONS]
    if fixed:
        raise OptionError(f"--grid {fixed[0]}: this option decides how word vectors are read, once per run; "
                          "set it with -O and compare runs")
    head = build_head(head_id, options, registry)
    if head.input != WORD_INPUT:
        raise OptionError(f"head {head_id!r} is not a word head")
    source = f"{Path(features).name}, input"
    with FeatureStore(features) as store:
        fset = store.feature_set(embedder, config_hash)
        table = store.input(input)
        source = f"{Path(features).name}, input {table.name!r}"
        sentences = read_sentences(table, labels, source)
        given = np.asarray(table.column(split.column)) if split.column else None
        info = fset.info
    classes = sorted({t for tags in sentences.tags for t in tags})
    if len(classes) < 2:
        raise OptionError(f"label column {labels!r} of {source} has {len(classes)} tag(s); need 2+")
    words, output_name = build_words(features, embedder, sentences, classes, config_hash=info.config_hash,
                                     output=output, subtokens=getattr(head, "subtokens", "first"),
                                     layer=getattr(head, "layer", None))
    parts, grouping = make_splits(rarest_tags(sentences, classes), classes, split, given, sentences.keys,
                                  sentences.lines, source=source)
    if not len(parts["train"]) or not len(parts["test"]):
        raise OptionError(f"{source}: the split leaves {len(parts['train'])} training and {len(parts['test'])} test "
                          "sentences; give both a share above 0 (or more sentences)")
    starts = sentences.starts
    word_rows = {p: np.concatenate([np.zeros(0, dtype=np.int64)] + [np.arange(starts[s], starts[s + 1])
                                                                     for s in rows.tolist()]).astype(np.int64)
                 for p, rows in parts.items()}
    data = WordData(words)
    groups = None if split.duplicates == "keep" else sentences.keys[words.sentence]
    picked = choose_and_fit(lambda combo: build_head(head_id, combo, registry), dict(options or {}), grid or {},
                            data, word_rows["train"], word_rows["validation"], protocol, groups)
    test_data = data.subset(word_rows["test"])
    proba = np.asarray(picked.head.predict_proba(test_data))  # type: ignore[arg-type]  # a word head's data
    predicted = proba.argmax(1)
    test = scores(test_data.y, predicted, len(classes))
    majority = int(np.bincount(words.y[word_rows["train"]], minlength=len(classes)).argmax())
    baseline = scores(test_data.y, np.full(len(test_data), majority), len(classes))
    test_sentences = _per_sentence(predicted, parts["test"], starts, classes)
    if is_bio(classes):
        test.update(entity_scores([sentences.tags[s] for s in parts["test"].tolist()], test_sentences))
        baseline.update(entity_scores([sentences.tags[s] for s in parts["test"].tolist()],
                                      [[classes[majority]] * len(sentences.tags[s]) for s in parts["test"].tolist()]))
    report = grouping.as_dict()
    if picked.folds is not None:
        report["cv_folds"] = int(picked.folds.max()) + 1
        report["cv_fold_drift"] = picked.fold_drift
    unaligned = int((~words.has).sum())
    extra = dict(picked.report.extra, words={p: len(v) for p, v in word_rows.items()},
                 majority_baseline={"tag": classes[majority], **baseline}, words_without_tokens=unaligned,
                 alignment=f"word pieces matched to words by characters; word vector = "
                           f"{getattr(picked.head, 'subtokens', 'first')} token")
    warnings = [f"sentence split (stratified by each sentence's rarest tag): {w}" for w in grouping.warnings]
    if unaligned:
        warnings.append(f"{unaligned} of {len(words.y)} words have no token (cut by the embedder's max_length); "
                        f"they are predicted as {classes[majority]!r}")
    outcome = TrainOutcome(
        head=head_id, embedder=info.embedder, set_name=info.name, output=output_name, options=dict(picked.options),
        classes=classes, sizes={p: len(v) for p, v in parts.items()}, validation=picked.selection_scores, test=test,
        chosen=picked.chosen, curves=picked.report.curves, extra=extra, seconds=time.perf_counter() - started,
        grid=picked.candidates, selection=protocol.selection,
        method=picked.method.replace("rows", "words").replace("texts", "sentences") + "; scored once on test",
        flags=picked.flags, metric=protocol.metric, per_class=per_class(test_data.y, predicted, classes),
        grouping=report, warnings=warnings)
    if save is not None:
        _save(Path(save), picked.head, outcome, info, Path(features), input, labels, split, protocol, sentences,
              parts, test_sentences)
    return outcome


def _per_sentence(predicted: np.ndarray, rows: np.ndarray, starts: np.ndarray, classes: list[str]) -> list[list[str]]:
    """Predicted tags cut back into the sentences ``rows`` (``predicted`` holds their words in that order)."""
    out, at = [], 0
    for s in rows.tolist():
        n = int(starts[s + 1] - starts[s])
        out.append([classes[c] for c in predicted[at:at + n].tolist()])
        at += n
    return out


def _save(directory: Path, head: Head, outcome: Any, info: Any, features: Path, input: str | None, labels: str,
          split: Any, protocol: Any, sentences: Sentences, parts: dict[str, np.ndarray],
          test_tags: list[list[str]]) -> None:
    """The head's state, head.json (as document heads write it), each sentence's split, and test predictions."""
    from embedx.heads.training import HEAD_FILE, HEAD_FORMAT, PREDICTIONS_FILE, SPLITS_FILE

    directory.mkdir(parents=True, exist_ok=True)
    head.save(directory)
    part_of = {int(s): p for p, rows in parts.items() for s in rows.tolist()}
    with open(directory / SPLITS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "key", "split", "words"])
        for i, key in enumerate(sentences.keys.tolist()):
            writer.writerow([i, key.decode() if isinstance(key, bytes) else key, part_of.get(i, ""),
                             len(sentences.words[i])])
    with open(directory / PREDICTIONS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "word", "text", "label", "predicted"])
        for s, tags in zip(parts["test"].tolist(), test_tags, strict=True):
            for j, (word, tag, guess) in enumerate(zip(sentences.words[s], sentences.tags[s], tags, strict=True)):
                writer.writerow([s, j, word, tag, guess])
    meta = {"format": "embedx-head", "format_version": HEAD_FORMAT, "outcome": outcome.as_dict(),
            "embedder_config": info.config, "config_hash": info.config_hash, "features": str(features.resolve()),
            "input": input, "labels": labels, "split": asdict(split), "protocol": asdict(protocol),
            "splits_file": SPLITS_FILE, "predictions_file": PREDICTIONS_FILE, "level": "words"}
    (directory / HEAD_FILE).write_text(json.dumps(meta, indent=2, default=str))


def describe(outcome: Any) -> list[str]:
    """Lines the CLI prints after a word head's usual summary: entity scores and the majority-tag baseline."""
    lines = []
    base = outcome.extra.get("majority_baseline", {})
    test = outcome.test
    if "entity_f1" in test:
        lines.append(f"  test entities  precision {test['entity_precision']:.4f}  recall {test['entity_recall']:.4f}  "
                     f"F1 {test['entity_f1']:.4f}")
    if base:
        entities = f"   entity F1 {base['entity_f1']:.4f}" if "entity_f1" in base else ""
        lines.append(f"  majority tag {base['tag']!r} on test: accuracy {base['accuracy']:.4f}   macro-F1 "
                     f"{base['macro_f1']:.4f}{entities}")
    words = outcome.extra.get("words", {})
    if words:
        lines.append(f"  words per part {words}; {outcome.extra.get('words_without_tokens', 0)} without tokens")
    return lines
