"""Run the code in docs/ and the README, so the documentation cannot drift from the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.DOTALL)


def blocks(path: Path) -> list[tuple[str, str]]:
    return BLOCK.findall(path.read_text())


def run_blocks(path: Path, cwd: Path, skip_bash: tuple[str, ...] = ()) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    namespace: dict = {}
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        for lang, code in blocks(path):
            if lang == "bash":
                if any(marker in code for marker in skip_bash):
                    continue
                result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env,
                                        capture_output=True, text=True)
                assert result.returncode == 0, f"{path.name} block failed:\n{code}\n{result.stderr}"
            else:
                exec(compile(code, f"{path.name}", "exec"), namespace)  # noqa: S102 - docs are ours
    finally:
        os.chdir(previous)


def test_hdf5_format_doc_runs(tmp_path):
    run_blocks(ROOT / "docs" / "hdf5-format.md", tmp_path)


def test_plugin_guide_runs(tmp_path):
    run_blocks(ROOT / "docs" / "writing-plugins.md", tmp_path, skip_bash=("pip install",))


def test_readme_python_api_runs(tmp_path):
    run_blocks(ROOT / "README.md", tmp_path, skip_bash=("make ", "pip install", "git clone", "embedx "))


@pytest.mark.parametrize("doc", ["hdf5-format.md", "writing-plugins.md"])
def test_docs_are_linked_from_the_readme(doc):
    assert f"docs/{doc}" in (ROOT / "README.md").read_text()
