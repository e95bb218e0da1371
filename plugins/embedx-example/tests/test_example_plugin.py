"""The example plugin, installed as a distribution and found through its entry point."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import embedx
from embedx.plugin_api.testing import build_registry


def test_found_through_its_entry_point():
    reg = build_registry()
    assert reg.embedders["text-stats"].plugin == "example"
    assert reg.plugins["example"].version == "0.1.0"


def test_extracts_through_the_cli(tmp_path):
    src = tmp_path / "mail.txt"
    src.write_text("WIN CASH NOW!!! visit http://x.example\nsee you at 5\n")
    out = tmp_path / "f.h5"
    subprocess.run([sys.executable, "-m", "embedx.cli", "extract", str(src), "-e", "text-stats", "-o", str(out),
                    "--outputs", "doc,tokens", "-O", "log_counts=false", "--no-progress"], check=True)
    with embedx.open_store(out) as store:
        fset = store.feature_set("text-stats")
        doc = fset.vectors(input="mail")
        assert doc.shape == (2, 8)
        assert doc[0, 6] == 1 and doc[0, 7] == 3  # one URL, three '!'
        assert doc[1, 1] == 4 and doc[1, 3] == 0  # four words, no capitals
        toks, values = fset.tokens(input="mail")[1]
        assert toks == ["see", "you", "at", "5"] and values[:, 2].tolist() == [0, 0, 0, 1]
        assert np.all(values[:, 0] == [3, 3, 2, 1])
