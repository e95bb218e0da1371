"""``embedx elmo train`` and ``embedx elmo export``: train an ELMo-architecture biLM, write it as an ELMo module.

Registered by this package's ``elmo`` entry point (:mod:`embedx_elmo_train.plugin`) and imported for
every ``embedx`` command, so only typer and embedx load here; TensorFlow loads inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from embedx.plugin_api import EncodingErrors, OptionError, guarded_with

_guarded = guarded_with("interrupted; the newest checkpoint is kept, run the same command to resume")


def _say(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(text, highlight=False, soft_wrap=True)


def parse_filters(text: str) -> tuple[tuple[int, int], ...]:
    """``"1:32,2:32,3:64"`` -> ``((1, 32), (2, 32), (3, 64))``."""
    pairs = []
    for part in text.split(","):
        width, sep, count = part.strip().partition(":")
        if not sep or not width.isdigit() or not count.isdigit():
            raise OptionError(f"--filters {text!r}: give width:count pairs separated by commas, e.g. 1:32,2:32,3:64")
        pairs.append((int(width), int(count)))
    return tuple(pairs)


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
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Training folder: vocabulary, held-out text, checkpoints, report.json (and module/ with --export).",
        ),
    ],
    cell_dim: Annotated[int, typer.Option(min=1, help="LSTM memory cell size per direction (ELMo: 4096).")] = 512,
    filters: Annotated[
        str, typer.Option(help="Character CNN width:count pairs (ELMo: 1:32,2:32,3:64,4:128,5:256,6:512,7:1024).")
    ] = "1:32,2:32,3:64,4:128,5:256",
    highway: Annotated[int, typer.Option(min=0, help="Highway layers after the character CNN.")] = 2,
    max_chars: Annotated[
        int, typer.Option(min=3, help="Characters per token, the two word marks included (ELMo: 50).")
    ] = 20,
    n_samples: Annotated[
        int, typer.Option(min=0, help="Sampled-softmax negatives per batch (0: full softmax).")
    ] = 1024,
    dropout: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Dropout on the token vectors and LSTM outputs.")
    ] = 0.1,
    sequence_tokens: Annotated[
        int, typer.Option(min=1, help="Tokens per training sequence; longer documents are cut.")
    ] = 30,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per step.")] = 64,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the corpus (may be raised when resuming).")] = 1,
    max_train_tokens: Annotated[
        int,
        typer.Option(min=0, help="Stop after this many training tokens (0: no limit; may be raised when resuming)."),
    ] = 1_200_000,
    learning_rate: Annotated[
        float, typer.Option(help="Adam learning rate (at 2e-3 the LSTM layers collapse within 20 steps).")
    ] = 5e-4,
    clip_norm: Annotated[float, typer.Option(help="Clip gradients to this global norm.")] = 5.0,
    heldout: Annotated[
        int, typer.Option(min=1, help="Held-out sequences for perplexity (a uniform sample, never trained on).")
    ] = 1000,
    min_count: Annotated[int, typer.Option(min=1, help="Softmax vocabulary: words seen at least this often.")] = 3,
    max_vocab: Annotated[
        int, typer.Option(min=0, help="Softmax vocabulary: at most this many words (0: no limit).")
    ] = 20_000,
    seed: Annotated[
        int, typer.Option(help="Seeds initialisation, held-out choice is fixed by hashing, batch order.")
    ] = 0,
    checkpoint_seconds: Annotated[float, typer.Option(min=1.0, help="Write a checkpoint this often.")] = 120.0,
    export: Annotated[bool, typer.Option(help="Write the ELMo module to OUT/module at the end.")] = True,
    encoding_errors: Annotated[
        EncodingErrors,
        typer.Option(help="Invalid UTF-8 in corpus files: strict (error naming the line), replace, ignore."),
    ] = EncodingErrors.strict,
    overwrite: Annotated[bool, typer.Option(help="Discard an earlier run in OUT instead of resuming it.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the training report as JSON.")] = False,
) -> None:
    """Train a biLM with ELMo's architecture (char CNN, highway, 2 biLSTMP layers) on a corpus.

    Resumes an unfinished run.
    """
    from embedx_elmo_train.train import TrainSettings, train_bilm
    from embedx_tfhub.corpus import Corpus

    source = Corpus.of(corpus, encoding_errors=encoding_errors.value)
    sizes = {"cell_dim": cell_dim, "filters": parse_filters(filters), "highway": highway, "max_chars": max_chars,
             "n_samples": n_samples, "dropout": dropout}
    settings = TrainSettings(sequence_tokens=sequence_tokens, batch_size=batch_size, epochs=epochs,
                             max_train_tokens=max_train_tokens, learning_rate=learning_rate, clip_norm=clip_norm,
                             heldout=heldout, min_count=min_count, max_vocab=max_vocab, seed=seed,
                             checkpoint_seconds=checkpoint_seconds)
    try:
        result = train_bilm(source, out, sizes, settings, overwrite=overwrite, log=_say,
                            progress=progress and not as_json)
    except ValueError as exc:  # model sizes refused by BiLMConfig
        raise OptionError(str(exc)) from None
    report = result.report
    if export:
        from embedx_elmo_train.export import export_elmo

        report["module"] = export_elmo(out, out / "module", overwrite=True)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=float))
        return
    before, after, params = report["perplexity_before"], report["perplexity_after"], report["parameters"]
    _say(f"[bold]biLM[/] -> {out}\n"
         f"  trained   {report['tokens_trained']:,} tokens in {report['steps']:,} steps, "
         f"{report['train_seconds']:.0f} s "
         f"({report['tokens_per_second'] or 0:,.0f} tokens/s)\n"
         f"  params    {params['encoder']:,} in the encoder + {params['softmax']:,} in the softmax\n"
         f"  held-out perplexity {before['mean']:.1f} -> {after['mean']:.1f} "
         f"(forward {after['forward']:.1f}, backward {after['backward']:.1f})")
    if export:
        _say(f"  module    {out / 'module'}  (embedx extract ... -e elmo -O model={out / 'module'})")


def export(
    folder: Annotated[Path, typer.Argument(help="An `embedx elmo train` folder.", show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the module (a TF2 SavedModel with ELMo's signatures).")
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing module in OUT.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the module's metadata as JSON.")] = False,
) -> None:
    """Write the newest checkpoint as a module with google/elmo/3's signatures and outputs."""
    from embedx_elmo_train.export import export_elmo

    meta = export_elmo(folder, out, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    _say(f"[bold]module[/] -> {out}\n  step {meta['step']:,}; signatures default, tokens; outputs word_emb [B,T,512], "
         f"lstm_outputs1/2 [B,T,1024], elmo [B,T,1024], default [B,1024]\n"
         f"  embedx extract texts.txt -e elmo -O model={out} --outputs default,layers_mean -o features.h5")


def register(cli: typer.Typer) -> None:
    """Add the ``elmo`` command group to ``cli``."""
    app = typer.Typer(help="Train an ELMo-architecture biLM on your corpus and export it as an ELMo module.",
                      no_args_is_help=True)
    app.command("train")(_guarded(train))
    app.command("export")(_guarded(export))
    cli.add_typer(app, name="elmo")
