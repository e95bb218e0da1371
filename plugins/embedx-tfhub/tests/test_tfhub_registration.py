"""Registration is cheap and quiet: no TensorFlow, absl or TF logging settings unless a TF Hub embedder runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from embedx.plugin_api import option_specs

HEAVY = ("tensorflow", "tensorflow_hub", "tf_keras", "keras", "absl")


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "EMBEDX_LOAD"))}
    env.pop("TFHUB_CACHE_DIR", None)
    return env


def test_registry_cli_and_catalog_import_no_tensorflow():
    code = textwrap.dedent("""
        import os, sys
        from typer.testing import CliRunner
        from embedx.plugin_api.testing import describe_embedders
        from embedx.cli import add_plugin_commands, app
        from embedx.plugin_api.testing import build_registry

        registry = build_registry()
        ids = {"elmo", "tfhub-bert", "tfhub-text", "gnews-swivel-20dim", "nnlm-en-dim50", "nnlm-en-dim128"}
        assert ids <= set(registry.embedders), sorted(registry.embedders)
        assert registry.plugins["tfhub"].error is None, registry.plugins["tfhub"].error
        rows = {r["id"]: r for r in describe_embedders(registry)}
        # a URL runs only from the TF Hub cache: "runs here" says so instead of failing later in extract
        assert not rows["elmo"]["available"] and "TF Hub cache" in rows["elmo"]["reason"], rows["elmo"]
        assert rows["tfhub-bert"]["available"] and rows["tfhub-bert"]["needs"] == "model"
        add_plugin_commands(app)
        runner = CliRunner()
        for args in (["--help"], ["tfhub", "--help"], ["embedders", "-v"], ["plugins"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
        assert "convert-bert" in runner.invoke(app, ["tfhub", "--help"]).output
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
        assert not heavy, heavy
        assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        print("ok")
    """).replace("HEAVY", repr(HEAVY))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
    assert done.stderr == "", done.stderr  # no TensorFlow or absl log lines


def test_embedx_help_imports_no_tensorflow():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "embedx.cli", "--help"], capture_output=True,
                          text=True, env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "embedx_tfhub" in imported  # the plugin did register...
    assert not imported & set(HEAVY)  # ...without importing TensorFlow
    assert all(line.startswith("import time:") for line in done.stderr.splitlines()), done.stderr


def test_ids_and_options(registry):
    elmo = registry.entry("elmo")
    assert elmo.cls.__init__.__defaults__[0] == "https://tfhub.dev/google/elmo/3"
    assert set(option_specs(elmo.cls)) == {"model", "signature", "max_length", "trust_module"}
    assert set(option_specs(registry.entry("tfhub-bert").cls)) == {"model", "pooling", "layers", "max_length",
                                                                    "bucketing", "trust_module"}
    assert registry.entry("gnews-swivel-20dim").defaults == {
        "model": "https://tfhub.dev/google/tf2-preview/gnews-swivel-20dim/1"}
    assert registry.entry("nnlm-en-dim50").defaults == {"model": "https://tfhub.dev/google/nnlm-en-dim50/2"}
    assert registry.entry("nnlm-en-dim128").defaults == {"model": "https://tfhub.dev/google/nnlm-en-dim128/2"}
    outputs = {o.name: o for o in elmo.cls.outputs}
    assert outputs["layers"].per_layer and outputs["layers"].layers == 3 and outputs["layers"].dim == 1024
    assert outputs["word_emb"].dim == 512 and outputs["default"].level == "document"
