"""The core installs and works with only its declared dependencies (no torch, sklearn, TF, plugins)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def core_env(tmp_path_factory):
    """A fresh virtual environment holding embedx and nothing it does not declare."""
    where = tmp_path_factory.mktemp("core-alone")
    source = where / "source"  # build from a copy, so no build/ or egg-info lands in the checkout
    shutil.copytree(ROOT / "embedx", source / "embedx", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "-w", str(where / "wheels"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    venv.EnvBuilder(with_pip=True).create(where / "venv")
    python = where / "venv" / "bin" / "python"
    wheel = next((where / "wheels").glob("embedx-*.whl"))
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return where, python


def test_core_alone_extracts_inspects_and_exports(core_env):
    where, python = core_env
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                            check=True).stdout.lower()
    for heavy in ("torch", "scikit-learn", "tensorflow", "matplotlib", "gensim", "pyarrow"):
        assert f"\n{heavy}==" not in f"\n{listed}", f"{heavy} was installed with the core"
    embedx = where / "venv" / "bin" / "embedx"
    texts = where / "texts.txt"
    texts.write_text("a great film\na dull film\n\na great film\n", encoding="utf-8")
    out = where / "features.h5"
    for args in (["extract", str(texts), "-e", "hashing-ngrams", "-o", str(out), "--no-progress"],
                 ["info", str(out)],
                 ["export", str(out), "-e", "hashing-ngrams", "-o", str(where / "vectors.npy")],
                 ["embedders"], ["--version"]):
        done = subprocess.run([str(embedx), *args], capture_output=True, text=True, cwd=where, timeout=120)
        assert done.returncode == 0, f"embedx {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    check = ("import numpy as np; v = np.load('vectors.npy'); assert v.shape == (4, 2048), v.shape; "
             "assert (v[0] == v[3]).all() and not v[2].any()")
    subprocess.run([str(python), "-c", check], cwd=where, check=True)


def test_a_missing_extra_is_one_line_with_the_install_command(core_env):
    where, python = core_env
    code = ("from embedx.extras import require, MissingExtra\n"
            "try:\n    require('sklearn.linear_model', 'heads')\nexcept MissingExtra as exc:\n    print(exc)\n")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=where, check=True)
    assert "pip install 'embedx[heads]'" in done.stdout and "scikit-learn" in done.stdout
