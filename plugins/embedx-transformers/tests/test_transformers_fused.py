"""The fused BERT pass (CPU, float32): the same numbers as transformers' own modules, and a safe fallback."""

from __future__ import annotations

import numpy as np
import pytest


def _raw(extract, texts, store, **options):
    report, stored = extract(texts, store=store, outputs=("doc", "tokens"), **options)
    return report, stored.doc(texts), stored.tokens(texts)


@pytest.mark.parametrize("layers", ["-1", "all", "2"])
def test_fused_equals_transformers_forward(extract, texts, tmp_path, layers):
    sample = texts[:2] + texts[10:40]  # long articles (cut at 256) and short sentences, padded together
    fused, doc, tokens = _raw(extract, sample, tmp_path / "a.h5", layers=layers)
    plain, ref_doc, ref_tokens = _raw(extract, sample, tmp_path / "b.h5", layers=layers, fused=False)
    assert fused.set_name == plain.set_name  # within 1e-5, so one cache entry serves both
    assert np.abs(doc - ref_doc).max() < 1e-5
    for (strings, rows), (ref_strings, ref_rows) in zip(tokens, ref_tokens, strict=True):
        assert strings == ref_strings and np.abs(rows - ref_rows).max() < 2e-5


def test_the_fused_pass_is_taken_for_bert_on_the_cpu(registry, minilm_folder):
    import torch

    from embedx_transformers.fused_bert import FusedBertForward, supports
    from embedx_transformers.runtime import load_runtime

    rt = load_runtime(minilm_folder, "float32", "cpu", None)
    assert isinstance(rt.torch_forward(6), FusedBertForward)
    assert not isinstance(rt.torch_forward(6, fused=False), FusedBertForward)
    assert not supports(rt.model, "roberta", torch.device("cpu"), torch.float32)
    assert not supports(rt.model, "bert", torch.device("cpu"), torch.bfloat16)
    assert not supports(rt.model, "bert", torch.device("cuda"), torch.float32)


def test_a_fused_pass_that_disagrees_falls_back_with_a_warning(registry, minilm_folder, monkeypatch):
    from embedx_transformers import fused_bert
    from embedx_transformers.runtime import TorchForward, load_runtime

    rt = load_runtime(minilm_folder, "float32", "cpu", None)
    monkeypatch.setattr(
        fused_bert.FusedBertForward,
        "__call__",
        lambda self, ids, mask: tuple(s + 1e-3 for s in TorchForward(rt.view(6), False, False)(ids, mask)),
    )
    with pytest.warns(RuntimeWarning, match="differs from transformers' by 1.0e-03"):
        assert isinstance(rt.torch_forward(6), TorchForward)

    def broken(self, ids, mask):
        raise RuntimeError("no oneDNN here")

    monkeypatch.setattr(fused_bert.FusedBertForward, "__call__", broken)
    with pytest.warns(RuntimeWarning, match="failed its check .RuntimeError: no oneDNN here"):
        assert isinstance(rt.torch_forward(6), TorchForward)

    def no_packing(weight, batch_size):
        raise RuntimeError("packing is not supported")

    monkeypatch.setattr(fused_bert, "_PACKED", fused_bert.weakref.WeakKeyDictionary())  # nothing packed yet
    monkeypatch.setattr(fused_bert.torch.ops.mkldnn, "_reorder_linear_weight", no_packing)
    with pytest.warns(RuntimeWarning, match="packing is not supported"):
        assert isinstance(rt.torch_forward(5), TorchForward)
