"""A few-second run of benchmarks/flair_char_lm.py's training on a toy corpus: flair's trainer, our layout."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
from flair_helpers import CORPUS

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "flair_char_lm.py"


def load_script():
    spec = importlib.util.spec_from_file_location("flair_char_lm_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trained_model_loads_into_flair_char_lm(extract, tmp_path, monkeypatch):
    from flair.models import LanguageModel

    # the trainer logs 1,000 generated characters after each split, one LSTM step each: not needed here
    monkeypatch.setattr(LanguageModel, "generate_text", lambda self, *a, **k: ("", 0.0))
    script = load_script()
    lines = CORPUS * 20
    corpus = tmp_path / "corpus"
    sizes = script.write_corpus(corpus, lines, splits=1, seed=0)
    assert [p.name for p in (corpus / "train").iterdir()] == ["train_split_1"]
    assert (corpus / "valid.txt").exists() and (corpus / "test.txt").exists() and sizes["train_chars"] > 0
    args = argparse.Namespace(hidden=16, layers=1, embedding_size=8, dropout=0.0, epochs=1, sequence_length=20,
                              batch_size=4, learning_rate=20.0, patience=2, seed=0)
    dictionary = script.char_dictionary(lines)
    result = script.train_direction(corpus, dictionary, True, tmp_path / "out", args)
    assert result["direction"] == "forward" and result["parameters"] > 0
    assert result["valid_perplexity"] < result["untrained_valid_perplexity"]
    assert not list((tmp_path / "out").glob("epoch_*.pt"))
    _, stored = extract(CORPUS, "flair-char-lm", forward=result["model"])
    assert stored.doc(CORPUS).shape == (len(CORPUS), 16) and np.isfinite(stored.doc(CORPUS)).all()
