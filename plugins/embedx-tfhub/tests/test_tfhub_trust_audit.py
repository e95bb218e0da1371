"""TF Hub modules under the file-system audit: strace sees TensorFlow's C++ file access, which
Python's audit hooks cannot. A clean module reads only inside itself; a module whose vocabulary is
a link to another file is refused before TensorFlow opens anything of it."""

from __future__ import annotations

import os
import shutil

import pytest

from embedx.plugin_api.audit import STRACE, Sandbox

pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed (make test installs it on Debian)")


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    """A text-embedding module with a vocabulary asset, as TF Hub's TF1 exporter wrote them."""
    from embedx_tfhub.testing.tf1_module import build_tf1_text_module

    return build_tf1_text_module(tmp_path_factory.mktemp("tf1") / "module")


def _module_in(box: Sandbox, source: str) -> str:
    folder = box.work / "module"
    shutil.copytree(source, folder, symlinks=True)
    box.warm_matplotlib()  # TensorFlow imports Keras, which imports matplotlib: its one-time font scan is set-up
    return str(folder)


def _extract(box: Sandbox, module: str) -> list[str]:
    return ["extract", str(box.input), "-e", "tfhub-text", "-O", f"model={module}", "-o", str(box.store),
            "--no-progress"]


def test_a_clean_module_reads_only_inside_itself(module, tmp_path):
    box = Sandbox(tmp_path)
    box.plugins = "tfhub"
    folder = _module_in(box, module)
    audit = box.run(_extract(box, folder), box.allowed(stores=[box.store], reads=[folder, box.input]), timeout=300)
    assert audit.returncode == 0, audit.stderr
    assert any(t.target and t.target.startswith(folder) for t in audit.touches)  # it did read the module


def test_a_vocabulary_linked_outside_is_refused_before_tensorflow_reads_it(module, tmp_path):
    box = Sandbox(tmp_path)
    box.plugins = "tfhub"
    folder = _module_in(box, module)
    vocab = os.path.join(folder, "assets", "tokens.txt")
    os.unlink(vocab)
    os.symlink(box.victim / "secret.txt", vocab)
    audit = box.run(_extract(box, folder), box.allowed(stores=[box.store], reads=[folder, box.input]), timeout=300)
    assert audit.returncode == 2 and "symbolic link" in audit.stderr
