"""The accelerator path (bucketed shapes, square masks, half precision, chunked tokenising) and the ONNX backends.

Everything here runs on the CPU: the CUDA-only parts (pinned copies, events, kernel choice) share
these code paths, and the numbers of every path are checked against the default torch fp32 one.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedx_transformers.batching import bucket_length, bucket_rows, plan_bucketed, plan_exact


def test_bucketed_plans_cover_every_sequence_in_few_shapes():
    rng = np.random.default_rng(0)
    shapes = set()
    for _ in range(200):  # many incoming batches of lengths like sorted MR texts
        lengths = np.sort(rng.integers(3, 200, size=rng.integers(1, 300)))[::-1]
        plan = plan_bucketed(lengths, 8192, limit=512)
        members = np.concatenate([p.members for p in plan])
        assert sorted(members.tolist()) == list(range(len(lengths)))
        for p in plan:
            assert lengths[p.members].max() <= p.length and len(p.members) <= p.rows
            assert p.rows * p.length <= 8192 or p.rows == 1
            shapes.add((p.rows, p.length))
        exact = plan_exact(lengths, 8192)
        assert sorted(np.concatenate([p.members for p in exact]).tolist()) == list(range(len(lengths)))
    assert len(shapes) <= 80  # the exact plan makes a new shape for nearly every pass


def test_bucket_steps():
    assert [bucket_length(n) for n in (1, 8, 9, 64, 65, 129, 500, 513)] == [8, 8, 16, 64, 80, 160, 512, 576]
    assert bucket_length(500, limit=510) == 510 and bucket_length(511, limit=510) == 511
    assert [bucket_rows(n, 96) for n in (1, 3, 33, 95, 96, 200)] == [1, 4, 64, 96, 96, 96]


def _doc(extract, texts, **options):
    _, stored = extract(texts, store=options.pop("store"), outputs=("doc", "tokens"), **options)
    return stored.doc(texts), stored.tokens(texts)


def test_bucketed_shapes_chunked_tokenising_and_square_masks_keep_the_numbers(extract, texts, tmp_path, monkeypatch):
    import embedx_transformers.encoder as encoder
    import embedx_transformers.runtime as runtime

    sample = texts[:3] + texts[10:40]  # long articles (windowed below) and sentences
    options = {"max_length": 128, "window_stride": 64, "normalize": False}
    ref_doc, ref_tokens = _doc(extract, sample, store=tmp_path / "a.h5", **options)
    monkeypatch.setattr(encoder, "TOKENIZE_CHUNK", 7)  # several chunks, tokenised in a thread
    monkeypatch.setattr(runtime, "SQUARE_MASK", {"bert"}, raising=True)
    original = runtime.Runtime.torch_forward

    def square(self, depth, fused=True):  # the CUDA form of the mask, on the CPU, through transformers' forward
        forward = original(self, depth, fused=False)
        forward.square_mask = True
        return forward

    monkeypatch.setattr(runtime.Runtime, "torch_forward", square)
    doc, tokens = _doc(extract, sample, store=tmp_path / "b.h5", shapes="bucketed", token_budget=700, **options)
    assert np.abs(doc - ref_doc).max() < 1e-5
    for (strings, rows), (ref_strings, ref_rows) in zip(tokens, ref_tokens, strict=True):
        assert strings == ref_strings and np.abs(rows - ref_rows).max() < 1e-5


def _cosines(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_the_bucketed_path(extract, texts, tmp_path, dtype):
    """The issue's bounds on unit vectors: bf16 cosine >= 0.9999; fp16 within 2e-4 per element on CUDA
    (measured there: 1.8e-4), and within 5e-4 here, since CPU fp16 kernels round more (measured: 3.2e-4)."""
    sample = texts[10:30]
    ref, _ = extract(sample, store=tmp_path / "ref.h5", normalize=True)
    half, _ = extract(sample, store=tmp_path / "half.h5", normalize=True, dtype=dtype, shapes="bucketed")
    assert half.set_name != ref.set_name  # the precision is part of the key
    from embedx.plugin_api.testing import Stored

    a, b = (
        Stored(tmp_path / "ref.h5", ref.set_name).doc(sample),
        Stored(tmp_path / "half.h5", half.set_name).doc(sample),
    )
    assert _cosines(a, b).min() >= 0.9999
    if dtype == "float16":
        assert np.abs(a - b).max() < 5e-4 and _cosines(a, b).min() >= 0.99999


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def test_onnx_backend_equals_torch_and_shares_its_cache(extract, texts, tmp_path, onnx_cache):
    sample = texts[:2] + texts[10:40]
    torch_report, torch_stored = extract(sample, store=tmp_path / "t.h5", outputs=("doc", "tokens"), layers="-1,-2")
    again, _ = extract(sample, store=tmp_path / "t.h5", outputs=("doc", "tokens"), layers="-1,-2", backend="onnx")
    assert again.set_name == torch_report.set_name and again.computed == 0  # within 1e-5: the same features
    onnx_report, onnx_stored = extract(sample, store=tmp_path / "o.h5", outputs=("doc", "tokens"), layers="-1,-2",
                                       backend="onnx", threads=1)
    assert len(list(onnx_cache.glob("*.onnx"))) == 1  # exported once, cached by model identity and layers
    from embedx_transformers.runtime import _MODELS

    assert not any(model.training for model in _MODELS.values())  # exporting left the shared model in eval mode
    assert np.abs(onnx_stored.doc(sample) - torch_stored.doc(sample)).max() < 1e-5
    for (s1, r1), (s2, r2) in zip(onnx_stored.tokens(sample), torch_stored.tokens(sample), strict=True):
        assert s1 == s2 and np.abs(r1 - r2).max() < 1e-5


def test_int8_is_close_but_keyed_apart(extract, texts, tmp_path, onnx_cache):
    sample = texts[10:40]
    fp32, fp32_stored = extract(sample, store=tmp_path / "f.h5")
    int8, int8_stored = extract(sample, store=tmp_path / "f.h5", backend="onnx-int8")
    assert int8.computed == len(sample) and int8.set_name != fp32.set_name
    assert "quantization" in int8_stored.info().config["identity"]
    cos = _cosines(fp32_stored.doc(sample), int8_stored.doc(sample))
    assert cos.min() > 0.97 and np.abs(fp32_stored.doc(sample) - int8_stored.doc(sample)).max() > 1e-5


def test_backend_and_precision_conflicts_are_refused(registry):
    from embedx.plugin_api import RegistryError

    with pytest.raises(RegistryError, match="backend=onnx computes in float32"):
        registry.create("minilm-l6", {"backend": "onnx", "dtype": "float16"})
    with pytest.raises(RegistryError, match="runs on the CPU"):
        registry.create("minilm-l6", {"backend": "onnx-int8", "device": "cuda"})
