"""Corpus in, vectors + report + TF Hub module out: the steps of ``embedx swivel train`` in order.

Kept apart from the command so notebooks and the benchmark run exactly what the CLI runs.
Output folder layout::

    vectors.txt    word2vec text format, the (row + col) / 2 vectors, most frequent word first
    vocab.txt      word<TAB>corpus count, same order
    report.json    corpus size, every option, timings, losses per epoch, evaluation
    module/        the exported text-embedding SavedModel (unless export=False)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from embedx_swivel.cooccurrence import count_cooccurrences
from embedx_swivel.errors import SwivelOptionError
from embedx_swivel.shards import make_shards
from embedx_swivel.train import SwivelConfig, SwivelModel, train_swivel
from embedx_swivel.vocab import build_vocabulary
from embedx_tfhub.corpus import Corpus

OUTPUT_FILES = ("vectors.txt", "vocab.txt", "report.json", "module")


@dataclass(frozen=True)
class CountSettings:
    """How the corpus becomes a co-occurrence matrix."""

    window: int = 10
    min_count: int = 5
    max_vocab: int | None = 20_000  # gnews-swivel's size; training time grows with its square
    lowercase: bool = True
    chunk_tokens: int = 250_000


@dataclass
class TrainResult:
    model: SwivelModel
    report: dict = field(default_factory=dict)


def train_corpus(corpus: Corpus, out_dir: str | os.PathLike[str] | None, counting: CountSettings = CountSettings(),
                 config: SwivelConfig = SwivelConfig(), export: bool = True, num_oov_buckets: int = 1,
                 evaluate: bool = True, overwrite: bool = False, progress: bool = False) -> TrainResult:
    """Count, shard, train, then write vectors, vocabulary, report and module into ``out_dir``."""
    config.validate()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise SwivelOptionError(f"{out} is a file; --out needs a folder")
        clash = [name for name in OUTPUT_FILES if (out / name).exists()]
        if clash and not overwrite:
            raise SwivelOptionError(f"{out} already holds {', '.join(clash)}; choose another folder or "
                                    "pass --overwrite")
    report: dict = {"options": {**asdict(counting), **config.as_dict()}, "timings": {}}
    timings = report["timings"]

    started = time.perf_counter()
    with _counter(progress, "vocabulary", None) as tick:
        vocab = build_vocabulary(corpus, counting.min_count, counting.max_vocab, counting.lowercase, tick)
    timings["vocabulary_s"] = time.perf_counter() - started
    middle = time.perf_counter()
    with _counter(progress, "co-occurrences", vocab.covered_tokens) as tick:
        cooc = count_cooccurrences(corpus, vocab, counting.window, counting.chunk_tokens, tick)
    timings["cooccurrence_s"] = time.perf_counter() - middle
    timings["counting_s"] = time.perf_counter() - started
    timings["counting_tokens_per_s"] = vocab.corpus_tokens / max(timings["counting_s"], 1e-9)

    middle = time.perf_counter()
    shards = make_shards(cooc.matrix, config.shard_size)
    timings["sharding_s"] = time.perf_counter() - middle
    model = train_swivel(shards, vocab.words, config, progress)
    timings["training_s"] = model.seconds
    words = model.words
    report["corpus"] = {
        "sources": list(corpus.sources) + ([f"<{len(corpus.texts)} texts>"] if corpus.texts else []),
        "documents": vocab.corpus_documents, "tokens": vocab.corpus_tokens, "distinct_words": vocab.distinct_words,
        "vocabulary": len(vocab), "vocabulary_tokens": vocab.covered_tokens,
        "cooccurrence_nonzero": cooc.nnz, "cooccurrence_pairs": cooc.pairs}
    report["shards"] = {"num_shards": shards.num_shards, "shard_size": shards.shard_size, "words_trained": len(words),
                        "rare_words_dropped": len(vocab) - len(words), "steps": model.steps}
    report["epoch_losses"] = model.epoch_losses
    if evaluate:
        from embedx_swivel.evaluate import evaluate_vectors

        report["evaluation"] = evaluate_vectors(words, model.vectors).as_dict()
    if out is not None:
        _write(out, words, vocab.counts[:len(words)], model, report, export, num_oov_buckets, counting.lowercase,
               overwrite)
    return TrainResult(model, report)


def _write(out: Path, words, counts, model: SwivelModel, report: dict, export: bool, num_oov_buckets: int,
           lowercase: bool, overwrite: bool) -> None:
    from embedx_swivel.vectors import write_vocabulary, write_word2vec_text

    out.mkdir(parents=True, exist_ok=True)
    write_word2vec_text(out / "vectors.txt", words, model.vectors)
    write_vocabulary(out / "vocab.txt", words, counts)
    report["files"] = {"vectors": str(out / "vectors.txt"), "vocabulary": str(out / "vocab.txt")}
    if export:
        from embedx_swivel.export import export_module

        started = time.perf_counter()
        export_module(words, model.vectors, out / "module", num_oov_buckets, lowercase, overwrite=overwrite,
                      metadata={"source": "embedx swivel train", "training": {
                          "tokens": report["corpus"]["tokens"], "options": report["options"]}})
        report["timings"]["export_s"] = time.perf_counter() - started
        report["files"]["module"] = str(out / "module")
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")


class _counter:
    """A transient rich token counter on stderr (with a total when it is known), or nothing."""

    def __init__(self, enabled: bool, label: str, total: int | None):
        self.enabled, self.label, self.total = enabled, label, total

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn(f"{self.label}"), BarColumn(),
                             TextColumn("{task.completed:,.0f} tokens"), TimeElapsedColumn(),
                             console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda tokens: self._bar.update(task, completed=tokens)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)
