"""``embedx tfhub ...``: convert a BERT checkpoint, build the test modules, locate the TF Hub cache.

Only typer is imported here; each command imports TensorFlow when it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="TF Hub modules: convert BERT checkpoints, build local test modules, find the cache.",
                  no_args_is_help=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command("convert-bert")
def convert_bert_command(
    hf_folder: Annotated[Path, typer.Argument(help="Hugging Face BERT folder: config.json, vocab.txt, "
                                                   "model.safetensors or pytorch_model.bin.")],
    out_dir: Annotated[Path, typer.Argument(help="Where to write the TF Hub-format encoder (a TF2 SavedModel).")],
    overwrite: Annotated[bool, typer.Option(help="Replace OUT_DIR if it holds something.")] = False,
) -> None:
    """Convert a BERT checkpoint into a TF Hub BERT encoder usable as `-e tfhub-bert -O model=OUT_DIR`."""
    from embedx_tfhub.convert import convert_bert

    try:
        summary = convert_bert(hf_folder, out_dir, overwrite=overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as exc:
        _fail(str(exc))
    config = summary["config"]
    typer.echo(f"wrote {out_dir}: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
               f"do_lower_case={summary['do_lower_case']}")
    for note in summary["notes"]:
        typer.echo(f"note: {note}")


@app.command("build-test-modules")
def build_test_modules_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder to hold elmo/, text/ and bert/.")],
) -> None:
    """Build small modules with the published interfaces of google/elmo/3, gnews-swivel/nnlm and TF Hub BERT."""
    from embedx_tfhub.testing import build_test_modules

    typer.echo(json.dumps(build_test_modules(out_dir), indent=2))


@app.command("cache-path")
def cache_path_command(url: Annotated[str, typer.Argument(help="A TF Hub module URL.")]) -> None:
    """Print the folder where TF Hub caches URL (unpack a module there to use it offline)."""
    from embedx_tfhub.handles import cached_folder, is_module_dir, is_url

    if not is_url(url):
        _fail(f"{url} is not a URL")
    folder = cached_folder(url)
    typer.echo(f"{folder}\t{'cached' if is_module_dir(folder) else 'not cached'}")
