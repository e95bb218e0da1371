"""``embedx swivel ...``: train Swivel vectors, export any vectors as a TF Hub module, evaluate them.

This module is imported for every ``embedx`` command (even ``--help``), so it imports only typer
and embedx; numpy, scipy, gensim and TensorFlow load inside the commands that need them.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from embedx.plugin_api import EncodingErrors, guarded_with, hookimpl


class VectorFormat(str, Enum):
    auto = "auto"
    word2vec_bin = "word2vec-bin"
    word2vec_text = "word2vec-text"
    glove = "glove"
    fasttext_bin = "fasttext-bin"
    fasttext_vec = "fasttext-vec"
    keyedvectors = "keyedvectors"
    gensim_model = "gensim-model"


_guarded = guarded_with("interrupted; nothing was written for the unfinished step")


def _say(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(text, highlight=False, soft_wrap=True)


def train(
    corpus: Annotated[
        list[str],
        typer.Argument(
            help="Text files, one document per line (.gz/.bz2 read as such), or "
            "dataset:NAME for an embedx "
            "dataset's texts.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for vectors.txt, vocab.txt, report.json and module/.")
    ],
    dim: Annotated[int, typer.Option(min=1, help="Embedding dimension (gnews-swivel-20dim uses 20).")] = 100,
    window: Annotated[int, typer.Option(min=1, help="Co-occurrence window; a pair at distance d counts 1/d.")] = 10,
    min_count: Annotated[int, typer.Option(min=1, help="Keep words occurring at least this often.")] = 5,
    max_vocab: Annotated[
        int,
        typer.Option(
            min=0,
            help="Keep at most this many of the most frequent words (0: no "
            "limit). Training time grows with its square.",
        ),
    ] = 20_000,
    lowercase: Annotated[
        bool, typer.Option(help="Lowercase before counting; the exported module then lowercases its input too.")
    ] = True,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over every block of the co-occurrence matrix.")] = 20,
    shard_size: Annotated[
        int, typer.Option(min=1, help="Words per shard: each training step is a shard_size x shard_size block.")
    ] = 4096,
    learning_rate: Annotated[float, typer.Option(help="Adagrad learning rate (positive).")] = 0.1,
    confidence_base: Annotated[
        float, typer.Option(min=0.0, help="Confidence f(x) = base + scale * x^exponent of observed cells.")
    ] = 0.1,
    confidence_scale: Annotated[float, typer.Option(min=0.0, help="See --confidence-base.")] = 0.25,
    confidence_exponent: Annotated[float, typer.Option(help="See --confidence-base.")] = 0.5,
    biases: Annotated[bool, typer.Option(help="Also learn a bias per row and column word (not exported).")] = False,
    seed: Annotated[int, typer.Option(help="Seeds initialisation and block order.")] = 0,
    chunk_tokens: Annotated[
        int, typer.Option(min=1, help="Tokens counted per chunk (memory: about 160 bytes x window per token).")
    ] = 250_000,
    export: Annotated[bool, typer.Option(help="Also write the TF Hub text-embedding module to OUT/module.")] = True,
    num_oov_buckets: Annotated[
        int, typer.Option(min=1, help="Hash buckets for words outside the vocabulary (zero vectors until fine-tuned).")
    ] = 1,
    evaluate: Annotated[bool, typer.Option(help="Score WordSim-353 (and a random baseline) into the report.")] = True,
    encoding_errors: Annotated[
        EncodingErrors,
        typer.Option(help="Invalid UTF-8 in corpus files: strict (error naming the line), replace, ignore."),
    ] = EncodingErrors.strict,
    overwrite: Annotated[bool, typer.Option(help="Replace earlier outputs in OUT.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the training report as JSON.")] = False,
) -> None:
    """Count co-occurrences in a corpus and train Swivel word vectors; export them as a TF Hub module."""
    from embedx_swivel.pipeline import CountSettings, train_corpus
    from embedx_swivel.train import SwivelConfig
    from embedx_tfhub.corpus import Corpus

    source = Corpus.of(corpus, encoding_errors=encoding_errors.value)
    counting = CountSettings(window=window, min_count=min_count, max_vocab=max_vocab or None, lowercase=lowercase,
                             chunk_tokens=chunk_tokens)
    config = SwivelConfig(dim=dim, shard_size=shard_size, epochs=epochs, learning_rate=learning_rate,
                          confidence_base=confidence_base, confidence_scale=confidence_scale,
                          confidence_exponent=confidence_exponent, biases=biases, seed=seed)
    result = train_corpus(source, out, counting, config, export=export, num_oov_buckets=num_oov_buckets,
                          evaluate=evaluate, overwrite=overwrite, progress=progress and not as_json)
    report = result.report
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=float))
        return
    c, t, s = report["corpus"], report["timings"], report["shards"]
    _say(f"[bold]swivel[/] -> {out}\n"
         f"  corpus   {c['tokens']:,} tokens in {c['documents']:,} documents, {c['distinct_words']:,} distinct words\n"
         f"  counted  {c['vocabulary']:,} words, {c['cooccurrence_nonzero']:,} non-zero cells in "
         f"{t['counting_s']:.1f} s "
         f"({t['counting_tokens_per_s']:,.0f} tokens/s)\n"
         f"  trained  {s['words_trained']:,} words x {dim} dims, {s['num_shards']}x{s['num_shards']} blocks, "
         f"{s['steps']:,} steps in {t['training_s']:.1f} s; loss {report['epoch_losses'][0]:.4f} -> "
         f"{report['epoch_losses'][-1]:.4f}")
    if "evaluation" in report:
        _say_evaluation(report["evaluation"])


def export_vectors(
    vectors: Annotated[
        str,
        typer.Argument(
            help="Word vectors: word2vec .bin/.txt, GloVe .txt, fastText .vec/.bin, gensim .kv, or kumo:glove-6b-50d.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the SavedModel module.")],
    format: Annotated[
        VectorFormat, typer.Option(help="Vector file format (auto: from the suffix and first line).")
    ] = VectorFormat.auto,
    num_oov_buckets: Annotated[
        int, typer.Option(min=1, help="Hash buckets for words outside the vocabulary (zero vectors until fine-tuned).")
    ] = 1,
    lowercase: Annotated[
        bool | None,
        typer.Option(
            "--lowercase/--no-lowercase",
            help="Lowercase the module's input "
            "and the vocabulary (default: "
            "when the vocabulary has no "
            "uppercase letter).",
            show_default=False,
        ),
    ] = None,
    max_vocab: Annotated[int, typer.Option(min=0, help="Export only the first (most frequent) words (0: all).")] = 0,
    trust_pickle: Annotated[
        bool, typer.Option(help="Allow loading a full gensim model (a pickle that can run code).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing module in OUT.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the module's metadata as JSON.")] = False,
) -> None:
    """Export any word vectors as a TF Hub text-embedding module (strings in, sqrt-n combined vectors out)."""
    from embedx_swivel.export import export_module, prepare_vocabulary
    from embedx_swivel.vectors import load_vectors

    words, matrix = load_vectors(vectors, format.value, trust_pickle)
    if max_vocab:
        words, matrix = words[:max_vocab], matrix[:max_vocab]
    if lowercase is None:
        lowercase = all(w == w.lower() for w in words)
    kept, table, prepared = prepare_vocabulary(words, matrix, lowercase)
    if not kept:
        from embedx_swivel.errors import SwivelError

        raise SwivelError(f"none of the {len(words):,} words of {vectors} survives the module's tokenizer")
    meta = export_module(kept, table, out, num_oov_buckets, lowercase, overwrite=overwrite,
                         metadata={"source": str(vectors), "vocabulary_preparation": {
                             "input_words": len(words), "kept": prepared.kept,
                             "dropped_punctuation_only": prepared.dropped_empty,
                             "dropped_multiword": prepared.dropped_multiword,
                             "merged_duplicates": prepared.merged}})
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    _say(f"[bold]module[/] -> {out}\n  {prepared.kept:,} words x {meta['dim']} dims + {num_oov_buckets} OOV bucket(s), "
         f"lowercase={lowercase}; dropped {prepared.dropped_empty:,} punctuation-only and "
         f"{prepared.dropped_multiword:,} multi-token words, merged {prepared.merged:,} that normalise alike")


def evaluate_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A module folder (SavedModel with assets/tokens.txt), a `swivel train` "
            "folder, a vector file, or kumo:NAME.",
            show_default=False,
        ),
    ],
    words: Annotated[str | None, typer.Option(help="Comma-separated words whose nearest neighbours to show.")] = None,
    topn: Annotated[int, typer.Option(min=1, help="Neighbours per word.")] = 5,
    format: Annotated[
        VectorFormat, typer.Option(help="Vector file format (auto: from the suffix and first line).")
    ] = VectorFormat.auto,
    as_json: Annotated[bool, typer.Option("--json", help="Print the evaluation as JSON.")] = False,
) -> None:
    """WordSim-353 Spearman correlation against a random baseline, and nearest neighbours."""
    from embedx_swivel.evaluate import PROBE_WORDS, evaluate_vectors
    from embedx_swivel.vectors import is_module, load_vectors, vectors_from_module

    path = Path(source)
    if is_module(path):
        vocab, matrix = vectors_from_module(path)
    elif path.is_dir() and is_module(path / "module"):
        vocab, matrix = vectors_from_module(path / "module")
    elif path.is_dir() and (path / "vectors.txt").is_file():
        vocab, matrix = load_vectors(str(path / "vectors.txt"), "word2vec-text")
    else:
        vocab, matrix = load_vectors(source, format.value)
    probes = tuple(w.strip() for w in words.split(",") if w.strip()) if words else PROBE_WORDS
    result = evaluate_vectors(vocab, matrix, probes, topn).as_dict()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _say(f"[bold]{source}[/]: {len(vocab):,} words x {matrix.shape[1]} dims")
    _say_evaluation(result)


def _say_evaluation(ev: dict) -> None:
    from rich.markup import escape

    if ev["spearman"] is None:
        _say(f"  wordsim353: too few of its {ev['pairs_total']} pairs have both words in the vocabulary to score")
    else:
        _say(f"  wordsim353 Spearman {ev['spearman']:.3f} on {ev['pairs_used']}/{ev['pairs_total']} pairs; "
             f"random vectors {ev['random_mean']:+.3f} (over {len(ev['random_spearman'])} seeds)")
    for word, near in ev["neighbours"].items():
        _say(f"  {escape(word)}: " + ", ".join(f"{escape(w)} {s:.2f}" for w, s in near))


@hookimpl
def register_commands(cli):
    """Add the ``swivel`` command group (train, export, evaluate) to ``cli``."""
    app = typer.Typer(help="Train Swivel word vectors and export word vectors as TF Hub text-embedding modules.",
                      no_args_is_help=True)
    app.command("train")(_guarded(train))
    app.command("export")(_guarded(export_vectors))
    app.command("evaluate")(_guarded(evaluate_command))
    cli.add_typer(app, name="swivel")
