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


SIGNATURE = re.compile(r"^(\w+)\((.*)\)(?:\s*->\s*(.+))?$")


def _api_table_cells() -> list[str]:
    """The first cell of every table row in section 6 of docs/writing-plugins.md (the plugin API)."""
    text = (ROOT / "docs" / "writing-plugins.md").read_text()
    section = text[text.index("## 6. The plugin API"):text.index("## 7. ")]
    return [line.split("|")[1] for line in section.splitlines()
            if line.startswith("| `") and not line.startswith("| names")]


def _api_object(name: str):
    from embedx import plugin_api
    from embedx.plugin_api import testing

    for module in (plugin_api, testing):
        if name in module.__all__:
            return getattr(module, name)
    raise AssertionError(f"docs/writing-plugins.md lists {name!r}, which embedx.plugin_api(.testing) does not export")


def _normal(annotation: str) -> str:
    import ast

    return ast.unparse(ast.parse(annotation, mode="eval").body)


def _compare(name: str, params: str, returns: str | None) -> list[str]:
    """What differs between the documented signature and ``inspect.signature`` of the real object."""
    import ast
    import inspect

    real = inspect.signature(_api_object(name))
    args = ast.parse(f"def {name}({params}): pass").body[0].args  # type: ignore[attr-defined]
    kinds = inspect.Parameter
    positional = [*((a, kinds.POSITIONAL_ONLY) for a in args.posonlyargs),
                  *((a, kinds.POSITIONAL_OR_KEYWORD) for a in args.args)]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    documented = [(a, kind, d) for (a, kind), d in zip(positional, defaults, strict=True)]
    documented += [(args.vararg, kinds.VAR_POSITIONAL, None)] if args.vararg else []
    documented += [(a, kinds.KEYWORD_ONLY, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    documented += [(args.kwarg, kinds.VAR_KEYWORD, None)] if args.kwarg else []
    wrong = []
    if [a.arg for a, _, _ in documented] != list(real.parameters):
        return [f"{name}: parameters {[a.arg for a, _, _ in documented]} documented, {list(real.parameters)} real"]
    for (arg, kind, default), param in zip(documented, real.parameters.values(), strict=True):
        if kind != param.kind:
            wrong.append(f"{name}({arg.arg}): {kind.description} documented, {param.kind.description} real")
        if (default is None) != (param.default is inspect.Parameter.empty):
            wrong.append(f"{name}({arg.arg}): default {'not ' if default is None else ''}documented")
        elif default is not None and ast.unparse(default) != "..." and ast.literal_eval(default) != param.default:
            wrong.append(f"{name}({arg.arg}): default {ast.unparse(default)} documented, {param.default!r} real")
        if arg.annotation is not None and ast.unparse(arg.annotation) != _normal(str(param.annotation)):
            wrong.append(f"{name}({arg.arg}): {ast.unparse(arg.annotation)} documented, {param.annotation} real")
    if returns and _normal(returns) != _normal(str(real.return_annotation)):
        wrong.append(f"{name}: returns {returns} documented, {real.return_annotation} real")
    return wrong


def test_the_plugin_api_table_names_real_things_with_their_real_signatures():
    import inspect

    from embedx import plugin_api
    from embedx.plugin_api import testing

    named, signed, wrong = set(), set(), []
    for cell in _api_table_cells():
        for span in re.findall(r"`([^`]+)`", cell):
            call = SIGNATURE.match(span)
            name = call.group(1) if call else span
            assert re.fullmatch(r"\w+", name), f"not a name or a signature: {span!r}"
            _api_object(name)
            named.add(name)
            if call:
                signed.add(name)
                wrong += _compare(name, call.group(2), call.group(3))
    assert not wrong, "docs/writing-plugins.md section 6 disagrees with the code:\n" + "\n".join(wrong)
    exported = {n: getattr(m, n) for m in (plugin_api, testing) for n in m.__all__}
    assert set(exported) <= named, f"not in the table: {sorted(set(exported) - named)}"
    functions = {n for n, obj in exported.items() if inspect.isfunction(obj)}
    assert functions <= signed, f"functions listed without their signature: {sorted(functions - signed)}"


def test_a_drifted_signature_is_caught():
    assert _compare("atomic_write", "path, write: Callable[[Path], object]", "None") == []
    assert _compare("atomic_write", "path, write: Callable[[BinaryIO], None]", None)  # the guess in issue 24
    assert _compare("fail", "message: str, code: int = 1", None)
    assert _compare("fail", "message", None)
    assert _compare("file_digest", "path, *, follow=True", None)
