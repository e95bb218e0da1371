"""Plugins use embedx only through its plugin API, and never another module's private names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import embedx
from embedx import plugin_api

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FILES = sorted(p for p in (ROOT / "plugins").rglob("*.py") if "build" not in p.parts)
ALLOWED = {"embedx.plugin_api", "embedx.plugin_api.testing", "embedx.plugin_api.audit"}  # the last two: test helpers
USER_API = set(embedx.__all__)  # what a user script may call: tests exercise plugins through it


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.lineno, node.module, alias.name


def _is_module(module: str, name: str) -> bool:
    """``from pkg import name`` where ``name`` is itself a module of ``pkg``."""
    for base in (ROOT / "plugins").glob("*/"):
        for root in (base, base / "src"):
            folder = root.joinpath(*module.split("."))
            if (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists():
                return True
    return False


def test_plugins_import_embedx_only_through_the_plugin_api():
    offenders = []
    for path in PLUGIN_FILES:
        is_test = "tests" in path.parts or "benchmarks" in path.parts
        for line, module, name in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module == "embedx":
                if name is None and is_test:
                    continue  # `import embedx`: tests drive the plugin through the user API
                if name in ALLOWED_FROM_ROOT or (is_test and name in USER_API):
                    continue
                offenders.append(f"{where}: from embedx import {name}")
            elif module.startswith("embedx.") and module not in ALLOWED:
                offenders.append(f"{where}: {module}")
    assert not offenders, "plugins must import embedx only via embedx.plugin_api:\n" + "\n".join(offenders)


ALLOWED_FROM_ROOT = {"plugin_api"}


def test_no_private_names_cross_module_boundaries():
    """Plugin code never reaches for another module's ``_private`` names; a plugin's own tests may test its own."""
    offenders = []
    for path in PLUGIN_FILES:
        is_test = "tests" in path.parts or "benchmarks" in path.parts
        plugin_dir = ROOT / "plugins" / path.relative_to(ROOT / "plugins").parts[0]
        own = {d.name for root in (plugin_dir, plugin_dir / "src") if root.is_dir() for d in root.glob("embedx_*")}
        for line, module, name in _imports(path):
            if name and name.startswith("_") and not name.startswith("__") and module.startswith("embedx"):
                if is_test and module.split(".")[0] in own:
                    continue
                if not _is_module(module, name):
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: from {module} import {name}")
    assert not offenders, "private names imported from another module:\n" + "\n".join(offenders)


def test_the_api_lists_what_it_exports_and_everything_resolves():
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None, name
    assert plugin_api.API_VERSION.split(".")[0] == "1"
    documented = (ROOT / "docs" / "writing-plugins.md").read_text()
    undocumented = [n for n in plugin_api.__all__ if f"`{n}`" not in documented and f"`{n}(" not in documented]
    assert not undocumented, f"docs/writing-plugins.md does not describe: {undocumented}"


def test_importing_the_plugin_api_stays_light():
    code = ("import sys, embedx.plugin_api, embedx.plugin_api.testing\n"
            "heavy = {'torch', 'tensorflow', 'gensim', 'flair', 'transformers', 'sklearn', 'ray', 'typer'} & "
            "set(sys.modules)\n"
            "print(sorted(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("old, new", [("first", "cls"), ("CLS", "cls"), ("mean", "mean")])
def test_pooling_aliases(old, new):
    assert plugin_api.canonical_pooling(old) == new


def test_every_installed_embedder_option_has_a_description():
    """`embedx embedders -v` shows one line per option; an undocumented option is a gap a user falls into."""
    from embedx.contract.options import option_specs
    from embedx.plugin_api.testing import installed_registry

    registry = installed_registry(set(), "")
    missing = sorted(f"{embedder_id}: {name}" for embedder_id, entry in registry.embedders.items()
                     for name, spec in option_specs(entry.cls).items() if not spec.help)
    assert not missing, "options without a description (add an 'Options:' section to the class docstring):\n" + \
        "\n".join(missing)


def test_dir_shows_the_lazily_loaded_public_names():
    for name in ("extract", "embed", "open_store", *embedx.__all__):
        assert name in dir(embedx), name
    assert set(plugin_api.__all__) <= set(dir(plugin_api))


def test_python_dash_m_embedx_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "embedx", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"embedx {embedx.__version__}", done.stderr


@pytest.mark.parametrize("count, noun, expected", [(0, "text", "0 texts"), (1, "text", "1 text"),
                                                   (2, "feature set", "2 feature sets"), (1, "row", "1 row"),
                                                   (12345, "batch", "12,345 batches")])
def test_plural(count, noun, expected):
    from embedx.wording import plural

    assert plural(count, noun) == expected


def test_every_plugin_folder_has_a_readme_that_says_how_to_install_and_test_it():
    folders = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
    assert len(folders) >= 7
    missing = [p.name for p in folders if not (p / "README.md").is_file()]
    assert not missing, f"plugins without a README.md: {missing}"
    for folder in folders:
        text = (folder / "README.md").read_text()
        assert re.search(rf"pip install .*-e \"?plugins/{folder.name}\b", text), \
            f"{folder.name}/README.md does not say how to install it"
        assert "pytest" in text, f"{folder.name}/README.md does not say how to run its tests"


def test_the_shared_extract_helper_and_stored_pick_a_configuration(tmp_path, monkeypatch):
    from embedx.contract.errors import StoreError
    from embedx.plugin_api.testing import Stored, extractor, installed_registry

    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path / "cache"))
    extract = extractor(installed_registry({"hashing-ngrams"}, ""), tmp_path, embedder="hashing-ngrams",
                        defaults={"hashing-ngrams": {"dim": 8}})
    small, stored = extract(["a b", "c d"])
    large, _ = extract(["a b"], dim=16)  # the test's option wins over the default
    assert stored.doc(["c d", "a b"]).shape == (2, 8) and stored.truncated(["a b"]).tolist() == [0]
    assert Stored(tmp_path / "features.h5", "hashing-ngrams", config_hash=large.config_hash[:10]).doc(["a b"]).shape \
        == (1, 16)
    with pytest.raises(StoreError, match="2 configurations"):
        Stored(tmp_path / "features.h5", "hashing-ngrams").doc(["a b"])
    with pytest.raises(ValueError, match="0 token-level outputs"):
        stored.tokens(["a b"])
    with pytest.raises(TypeError, match="needs an embedder"):
        extractor(installed_registry(set(), ""), tmp_path)(["x"])
