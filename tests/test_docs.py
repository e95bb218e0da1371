"""Run the commands and code in the README and docs/, so the documentation cannot drift from the code.

Every ```bash block runs, in order, in a workspace holding the small input files the examples
name (``reviews.csv``, ``texts.txt``, ...); every ```python block runs in one namespace per page.
A bash block that must not run here (it installs packages, or takes many minutes) starts with
``# not run by the tests: <why>``, and a test checks that the reason is there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.DOTALL)
NOT_RUN = re.compile(r"^# not run by the tests: (\S.*)$")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[tuple[str, str]]:
    return BLOCK.findall(path.read_text())


def not_run_reason(code: str) -> str | None:
    match = NOT_RUN.match(code.splitlines()[0]) if code.strip() else None
    return match.group(1) if match else None


def make_workspace(where: Path) -> None:
    """The small inputs the examples name: a labelled CSV, plain text, JSONL, a word2vec file."""
    good = ["a gripping, funny film", "a small miracle of a film", "warm, clever and moving",
            "the best thing I saw this year", "sharp writing and great acting", "a joy from start to end"]
    bad = ["dull and far too long", "what a waste of two hours", "flat, slow and forgettable",
           "the plot makes no sense", "tedious from the first scene", "I walked out halfway"]
    rows = [(f"{text} ({i})", label) for i in range(4) for text, label in
            [*((t, "pos") for t in good), *((t, "neg") for t in bad)]]
    with open(where / "reviews.csv", "w", encoding="utf-8") as handle:
        handle.write("review,label\n")
        handle.writelines(f'"{text}",{label}\n' for text, label in rows)
    (where / "reviews.txt").write_text("".join(f"{t}\n" for t, _ in rows[:12]), encoding="utf-8")
    (where / "texts.txt").write_text("".join(f"{t}\n" for t, _ in rows[12:24]), encoding="utf-8")
    (where / "notes.txt").write_text("the government said\npeople of the world\n", encoding="utf-8")
    with open(where / "tweets.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"body": t, "label": lab}) + "\n" for t, lab in rows[:8])
    from gensim.test.utils import datapath

    shutil.copy(datapath("euclidean_vectors.bin"), where / "my-vectors.bin")


def run_page(path: Path, cwd: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    namespace: dict = {}
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        for lang, code in blocks(path):
            if lang == "bash":
                if not_run_reason(code):
                    continue
                result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env,
                                        capture_output=True, text=True, timeout=600)
                assert result.returncode == 0, f"{path.name} block failed:\n{code}\n{result.stdout}\n{result.stderr}"
            else:
                exec(compile(code, f"{path.name}", "exec"), namespace)  # noqa: S102 - docs are ours
    finally:
        os.chdir(previous)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_runs(page, tmp_path, registry_reset):
    make_workspace(tmp_path)
    run_page(page, tmp_path)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_block_runs_or_says_why_not(page):
    for lang, code in blocks(page):
        first = code.splitlines()[0] if code.strip() else ""
        if lang == "bash" and first.startswith("# not run"):
            assert not_run_reason(code), f"{page.name}: '# not run by the tests: <reason>' needs a reason: {first}"


@pytest.fixture
def registry_reset():
    from embedx.registry import set_registry

    yield
    set_registry(None)


@pytest.mark.parametrize("doc", ["hdf5-format.md", "writing-plugins.md", "architecture.md"])
def test_docs_are_linked_from_the_readme(doc):
    assert f"docs/{doc}" in (ROOT / "README.md").read_text()


MODULE_PATH = re.compile(r"`((?:embedx|plugins|tests|docs)/[\w./-]+)`")
DOTTED = re.compile(r"`(embedx(?:\.\w+)+)`")


def _resolves(dotted: str) -> bool:
    """``embedx.a.b`` names a module, or an attribute of the longest module prefix of it."""
    import importlib
    import importlib.util

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            obj = importlib.import_module(module)
            for attr in parts[cut:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


def test_every_module_the_architecture_page_names_exists():
    text = (ROOT / "docs" / "architecture.md").read_text()
    paths, dotted = MODULE_PATH.findall(text), DOTTED.findall(text)
    assert len(paths) > 20 and dotted, "the page names its modules in backticks"
    assert [p for p in paths if not (ROOT / p.rstrip("/")).exists()] == []
    assert [d for d in dotted if not _resolves(d)] == []
