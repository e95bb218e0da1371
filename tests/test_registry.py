"""Plugin loading: built-ins through the same hook, entry points, duplicates, typos, filtering."""

from __future__ import annotations

import importlib.metadata
import re
import types

import pytest

import embedx
from embedx import registry as R
from embedx.contract.errors import RegistryError
from fakes import WordStats


class FakeDist:
    version = "9.9"


class FakeEntryPoint:
    def __init__(self, name, plugin=None, error=None):
        self.name, self._plugin, self._error, self.dist = name, plugin, error, FakeDist()

    def load(self):
        if self._error:
            raise self._error
        return self._plugin


def plugin_module(name, **hooks):
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, embedx.hookimpl(fn))
    return module


def one(register):
    register(WordStats, id="ep-one")


def two(register):
    register(WordStats, id="ep-two")


@pytest.fixture
def entry_points(monkeypatch):
    """Replace installed entry points with the given fakes."""

    def install(*eps):
        monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: list(eps) if group == "embedx" else [])

    return install


def test_builtins_register_through_the_hook():
    reg = R.build_registry(entry_points=False)
    assert "hashing-ngrams" in reg.embedders
    assert reg.plugins["hashing"].source == "builtin"
    assert reg.plugins["hashing"].hooks == ["register_embedders"]


def test_entry_points_load_with_versions(entry_points):
    entry_points(FakeEntryPoint("one", plugin_module("one_mod", register_embedders=one)))
    reg = R.build_registry()
    assert reg.embedders["ep-one"].plugin == "one"
    assert reg.plugins["one"].version == "9.9"


def test_load_plugins_env_restricts(entry_points, monkeypatch):
    entry_points(FakeEntryPoint("one", plugin_module("m1", register_embedders=one)),
                 FakeEntryPoint("two", plugin_module("m2", register_embedders=two)))
    monkeypatch.setenv(R.LOAD_PLUGINS_ENV, "two")
    reg = R.build_registry()
    assert "ep-two" in reg.embedders and "ep-one" not in reg.embedders
    monkeypatch.setenv(R.LOAD_PLUGINS_ENV, "")
    assert set(R.build_registry().plugins) == set(R.BUILTIN_PLUGINS)  # built-ins always load


def test_duplicate_ids_name_both_plugins(entry_points):
    entry_points(FakeEntryPoint("one", plugin_module("m1", register_embedders=one)),
                 FakeEntryPoint("again", plugin_module("m2", register_embedders=one)))
    with pytest.raises(RegistryError, match="'ep-one' is registered by both plugin 'one' and plugin 'again'"):
        R.build_registry()


def test_a_builtin_id_cannot_be_taken_over(entry_points):
    def steal(register):
        register(WordStats, id="hashing-ngrams")

    entry_points(FakeEntryPoint("thief", plugin_module("m", register_embedders=steal)))
    with pytest.raises(RegistryError, match="both plugin 'hashing' and plugin 'thief'"):
        R.build_registry()


def test_misspelled_hook_fails_loudly(entry_points):
    entry_points(FakeEntryPoint("typo", plugin_module("m", register_embeddders=one)),
                 FakeEntryPoint("one", plugin_module("m1", register_embedders=one)))
    reg = R.build_registry()
    assert "implements a hook embedx does not define" in reg.plugins["typo"].error
    assert "ep-one" in reg.embedders  # the others still load
    assert any("'typo'" in line and "failed to load" in line for line in R.problems(reg))


def test_a_broken_plugin_is_reported_and_others_still_load(entry_points):
    entry_points(FakeEntryPoint("broken", error=ImportError("No module named 'torch'")),
                 FakeEntryPoint("one", plugin_module("m1", register_embedders=one)))
    reg = R.build_registry()
    assert "ep-one" in reg.embedders
    assert "No module named 'torch'" in reg.plugins["broken"].error
    with pytest.raises(RegistryError, match="plugin 'broken' failed to load: ImportError"):
        reg.entry("from-broken")


def test_registering_something_that_is_not_an_embedder(entry_points):
    entry_points(FakeEntryPoint("odd", plugin_module("m", register_embedders=lambda register: register(dict))))
    reg = R.build_registry()
    assert re.search("plugin 'odd' registered .*not an embedx.Embedder subclass", reg.plugins["odd"].error)


def test_a_hook_that_raises_is_named(entry_points):
    def bad(register):
        raise KeyError("model table")

    def good(register):
        register(WordStats, id="from-bad")

    entry_points(
        FakeEntryPoint("bad", plugin_module("m", register_embedders=lambda register: (good(register), bad(register))))
    )
    reg = R.build_registry()
    assert "failed in register_embedders: KeyError: 'model table'" in reg.plugins["bad"].error
    assert "from-bad" not in reg.embedders  # nothing half-registered survives
    with pytest.raises(RegistryError, match="plugin 'bad' failed to load: failed in register_embedders"):
        reg.entry("from-bad")


def test_missing_dependency_gives_the_install_command(registry):
    class NeedsTorch(WordStats):
        requires = {"surely_not_installed_mod": "pip install surely-not-installed"}

    from embedx.registry import Registered

    registry.embedders["needs"] = Registered("needs", NeedsTorch, "fakes")
    from embedx.contract.errors import EmbedderUnavailable

    with pytest.raises(EmbedderUnavailable, match="needs 'surely_not_installed_mod'.*pip install surely-not-installed"):
        registry.create("needs")
    from embedx.listing import describe_embedders

    row = [r for r in describe_embedders(registry) if r["id"] == "needs"][0]
    assert row["available"] is False and row["install"] == "pip install surely-not-installed"


def test_plugins_can_add_commands(entry_points):
    import typer
    from typer.testing import CliRunner

    from embedx.cli import add_plugin_commands

    def register_commands(cli):
        @cli.command("hello-plugin")
        def hello(name: str = "world"):
            """Say hello (a plugin command)."""
            typer.echo(f"hello {name}")

    entry_points(FakeEntryPoint("cmds", plugin_module("m", register_commands=register_commands)))
    R.set_registry(R.build_registry())
    try:
        app = typer.Typer()

        @app.command()
        def core():
            """A core command."""

        add_plugin_commands(app)
        result = CliRunner().invoke(app, ["hello-plugin", "--name", "embedx"])
        assert result.exit_code == 0 and result.output.strip() == "hello embedx"
    finally:
        R.set_registry(None)


class PathScaled(embedx.Embedder):
    """Length times a factor read from a file.

    Options:
        scale_file: a file holding the factor
        offset: added to every value
    """

    id = "path-scaled"
    outputs = (embedx.Output("doc", embedx.DOCUMENT, 1),)
    unkeyed_options = ("scale_file",)

    def __init__(self, scale_file: str, offset: float = 0.0):
        self.scale_file, self.offset = scale_file, offset

    def identity(self):
        from embedx.plugin_api import file_digest

        return {"scale_file": file_digest(self.scale_file)}

    def embed_batch(self, texts):
        import numpy as np

        with open(self.scale_file) as handle:
            factor = float(handle.read())
        return {"doc": np.array([[len(t) * factor + self.offset] for t in texts], dtype=np.float32)}


def test_unkeyed_options_are_shown_as_such_by_embedders_and_info(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from embedx.cli import app
    from embedx.listing import describe_embedders

    monkeypatch.setenv("COLUMNS", "300")
    reg = R.build_registry([("scaled", plugin_module("scaled", register_embedders=lambda register:
                                                     register(PathScaled)))], entry_points=False)
    options = {o["name"]: o for row in describe_embedders(reg) if row["id"] == "path-scaled" for o in row["options"]}
    assert not options["scale_file"]["keyed"] and options["offset"]["keyed"]
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("2.0")
    first = embedx.extract(["abc"], "path-scaled", tmp_path / "f.h5", options={"scale_file": str(tmp_path / "a.txt")},
                           registry=reg)
    moved = embedx.extract(["abc"], "path-scaled", tmp_path / "f.h5", options={"scale_file": str(tmp_path / "b.txt")},
                           registry=reg)
    assert (first.computed, moved.computed, moved.set_name) == (1, 0, first.set_name)  # same content, same key
    R.set_registry(reg)
    try:
        listed = CliRunner().invoke(app, ["embedders", "-v"])
        info = CliRunner().invoke(app, ["info", str(tmp_path / "f.h5")])
    finally:
        R.set_registry(None)
    assert listed.exit_code == 0, listed.output
    scale_line = next(line for line in listed.stdout.splitlines() if "--option scale_file=" in line)
    offset_line = next(line for line in listed.stdout.splitlines() if "--option offset=" in line)
    assert "not in the cache key" in scale_line and "not in the cache key" not in offset_line
    assert info.exit_code == 0, info.output
    assert f"options  offset=0.0; not in the key: scale_file={tmp_path / 'a.txt'}" in info.stdout, info.stdout
