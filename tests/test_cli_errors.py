"""Any failure is one line at the terminal, --debug shows the traceback, and file text cannot drive the terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from embedx.terminal import SafeStream, escape, printable

EMBEDX = str(Path(sys.executable).parent / "embedx")

PLUGIN = textwrap.dedent('''
    import embedx
    from embedx.plugin_api import guarded_with

    guarded = guarded_with("interrupted")

    @embedx.hookimpl
    def register_commands(cli):
        @cli.command("boom")
        @guarded
        def boom(path: str = "nothing"):
            """Fail the way a library fails on a bad file."""
            raise ValueError("cannot reshape array of size 0 into shape (3,\\x1b]52;c;aGk=\\x07)")
''')


@pytest.fixture
def env_with_plugin(tmp_path):
    (tmp_path / "boom_plugin.py").write_text(PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDX_")}
    env.update(PYTHONPATH=str(tmp_path), EMBEDX_PLUGIN_MODULES="boom_plugin", EMBEDX_LOAD_PLUGINS="none",
               EMBEDX_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="300")
    return env


def _run(args, env, cwd):
    return subprocess.run([EMBEDX, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_an_unexpected_exception_is_one_line_naming_the_file(env_with_plugin, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"x")
    result = _run(["boom", "--path", str(data)], env_with_plugin, tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unexpected error while reading")
    assert str(data) in lines[0] and "ValueError: cannot reshape" in lines[0] and "--debug" in lines[0]
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\\x1b]52" in result.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(env_with_plugin, tmp_path, how):
    env = dict(env_with_plugin, EMBEDX_DEBUG="1") if how == "env" else env_with_plugin
    args = ["--debug", "boom"] if how == "flag" else ["boom"]
    result = _run(args, env, tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "raise ValueError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: unexpected error")


def test_embedx_errors_stay_one_line_and_clean(tmp_path):
    missing = tmp_path / "missing.h5"
    result = _run(["info", str(missing)], dict(os.environ, EMBEDX_LOAD_PLUGINS="none"), tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and str(missing) in result.stderr


def test_printable_escapes_every_terminal_control():
    hostile = "a\x1b]52;c;cm0=\x07b\x1b[2Jc\x9b31md\u202eexe.txt\u2066e\x00f\rg"
    safe = printable(hostile)
    assert not any(ch in safe for ch in "\x1b\x07\x9b\u202e\u2066\x00\r")
    assert safe.startswith("a\\x1b]52;c;cm0=\\x07b\\x1b[2Jc\\x9b31md\\u202eexe.txt")
    assert printable("two\nlines\tok") == "two\nlines\tok"
    assert printable("two\nlines", one_line=True) == "two\\nlines"
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    console.print(escape("[bold red]x[/] [link=http://e]y[/link]"))  # shown as written, never as markup
    assert console.file.getvalue().strip() == "[bold red]x[/] [link=http://e]y[/link]"


def test_the_guarded_streams_pass_rich_styles_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    pipe, tty = io.StringIO(), Tty()
    text = "\x1b[1;31mred\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b[2K\r"
    SafeStream(pipe).write(text)
    SafeStream(tty).write(text)
    assert "\x1b" not in pipe.getvalue() and "\r" not in pipe.getvalue()
    assert tty.getvalue().startswith("\x1b[1;31mred\x1b[0m \\x1b]8;;http://x\\x1b\\link")
    assert tty.getvalue().endswith("\x1b[2K\r")
    with pytest.raises(AttributeError):
        SafeStream(pipe).buffer  # noqa: B018 (bytes would go round the filter)


@pytest.mark.parametrize("body, expected", [
    ("import surely_not_a_module_here\n", "ModuleNotFoundError: No module named 'surely_not_a_module_here'"),
    ("import time\ntime.sleep(0.8)\n", "to import, which every embedx command pays"),
    ("import embedx\n@embedx.hookimpl\ndef register_embedders(register):\n    raise KeyError('table')\n",
     "failed in register_embedders: KeyError: 'table'"),
])
def test_a_broken_or_slow_plugin_is_one_warning_and_other_commands_work(tmp_path, body, expected):
    (tmp_path / "odd_plugin.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDX_")}
    env.update(PYTHONPATH=str(tmp_path), EMBEDX_PLUGIN_MODULES="odd_plugin", EMBEDX_LOAD_PLUGINS="",
               EMBEDX_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="300")
    result = _run(["embedders", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: plugin 'odd_plugin'"), result.stderr
    assert expected in warnings[0]
    assert "hashing-ngrams" in result.stdout  # the built-ins still work
    shown = _run(["plugins", "-v"], env, tmp_path)
    assert shown.returncode == 0 and "odd_plugin" in shown.stdout


RAISER = textwrap.dedent('''
    import os

    import numpy as np

    import embedx
    from embedx.plugin_api import DOCUMENT, Embedder, Output

    WHERE = os.environ["RAISE_IN"]


    def maybe(call):
        if WHERE == call:  # the way a plugin fails on a corpus file that is not there
            raise FileNotFoundError(2, "No such file or directory", "/data/corpus.txt")


    class Raiser(Embedder):
        """Raises where RAISE_IN says."""

        id = "raiser"
        outputs = (Output("doc", DOCUMENT, 4),)

        def __init__(self, size: int = 4):
            maybe("__init__")

        def identity(self):
            maybe("identity")
            return {}

        def output_specs(self):
            maybe("output_specs")
            return self.outputs

        def unavailable_reason(self):
            maybe("unavailable_reason")

        def load(self):
            maybe("load")

        def embed_batch(self, texts):
            maybe("embed_batch")
            return {"doc": np.zeros((len(texts), 4), dtype="float32")}


    @embedx.hookimpl
    def register_embedders(register):
        maybe("register_embedders")
        register(Raiser)
''')


@pytest.mark.parametrize("call, expected", [
    ("__init__", "embedder 'raiser' (plugin 'raiser_plugin') refused its options in Raiser.__init__()"),
    ("identity", "plugin 'raiser_plugin' failed in Raiser.identity()"),
    ("output_specs", "plugin 'raiser_plugin' failed in Raiser.output_specs()"),
    ("unavailable_reason", "embedder 'raiser' (plugin 'raiser_plugin') could not check whether it can run here"),
    ("load", "embedder 'raiser' (plugin 'raiser_plugin') could not load"),
    ("embed_batch", "embedder 'raiser' (plugin 'raiser_plugin') raised on batch 1"),
    ("register_embedders", "plugin 'raiser_plugin' (module) failed to load and is skipped: failed in "
                           "register_embedders"),
])
def test_whatever_a_plugin_raises_is_one_line_naming_the_plugin_and_the_call(tmp_path, call, expected):
    (tmp_path / "raiser_plugin.py").write_text(RAISER)
    (tmp_path / "in.txt").write_text("one\ntwo\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDX_")}
    env.update(PYTHONPATH=str(tmp_path), EMBEDX_PLUGIN_MODULES="raiser_plugin", EMBEDX_LOAD_PLUGINS="", RAISE_IN=call,
               EMBEDX_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="300")
    result = _run(["extract", "in.txt", "-e", "raiser", "-o", "out.h5", "--no-progress"], env, tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert expected in lines[0] and "/data/corpus.txt" in lines[0], result.stderr
    if call == "register_embedders":  # a warning, then the embedder it did not register, with why
        assert lines[1].startswith("error: no embedder 'raiser'"), result.stderr
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@pytest.mark.parametrize("call", ["__init__", "output_specs", "unavailable_reason"])
def test_embedders_lists_a_raising_plugin_as_not_runnable_and_lists_the_rest(monkeypatch, call):
    from embedx.contract.embedder import DOCUMENT, Embedder, Output
    from embedx.contract.hookspecs import hookimpl
    from embedx.listing import describe_embedders
    from embedx.registry import build_registry

    def maybe(where):
        if where == call:
            raise RuntimeError("corpus is gone")

    class Raiser(Embedder):
        id = "raiser"
        outputs = (Output("doc", DOCUMENT, 4),)

        def __init__(self):
            maybe("__init__")

        def output_specs(self):
            maybe("output_specs")
            return self.outputs

        def unavailable_reason(self):
            maybe("unavailable_reason")

        def embed_batch(self, texts):
            raise AssertionError("not called")

    plugin = types.ModuleType("raiser_test")
    plugin.register_embedders = hookimpl(lambda register: register(Raiser))
    monkeypatch.setenv("EMBEDX_LOAD_PLUGINS", "")
    rows = {row["id"]: row for row in describe_embedders(build_registry([("raiser-test", plugin)]))}
    assert rows["hashing-ngrams"]["available"]
    assert not rows["raiser"]["available"]
    assert rows["raiser"]["reason"] == f"plugin 'raiser-test' failed in Raiser.{call}(): RuntimeError: corpus is gone"


def test_the_extract_summary_counts_one_text_as_one_text(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from embedx.cli import app
    from embedx.registry import build_registry, set_registry

    monkeypatch.setenv("EMBEDX_LOAD_PLUGINS", "")
    monkeypatch.setenv("COLUMNS", "300")
    set_registry(build_registry())
    try:
        (tmp_path / "in.txt").write_text("a single line\n")
        done = CliRunner().invoke(app, ["extract", str(tmp_path / "in.txt"), "-e", "hashing-ngrams", "-o",
                                        str(tmp_path / "f.h5"), "--no-progress", "-O", "dim=8"])
        info = CliRunner().invoke(app, ["info", str(tmp_path / "f.h5")])
    finally:
        set_registry(None)
    assert done.exit_code == 0, done.output
    assert "  1 text, 1 unique" in done.stderr and "0 texts truncated" in done.stderr, done.stderr
    assert "1 feature set, 1 input," in info.stdout and "rows     1 unique text," in info.stdout, info.stdout
