"""Hostile Hugging Face model folders (issue 10's trust policy): a folder from someone else must
not run code. transformers reads ``pytorch_model.bin`` with ``torch.load(weights_only=True)``
and this plugin never passes ``trust_remote_code``; these tests build the hostile folders and
prove the payload never ran (it would create a marker file)."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from embedx.plugin_api import EmbedderUnavailable

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TEXT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "the payload ran"


def _folder_without_weights(minilm_folder, target):
    target.mkdir()
    for name in TEXT_FILES:
        shutil.copy(minilm_folder / name, target / name)
    return target


def test_pickled_weights_that_would_run_code_are_refused(extract, minilm_folder, tmp_path, marker):
    folder = _folder_without_weights(minilm_folder, tmp_path / "zip")
    torch.save({"embeddings.word_embeddings.weight": Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(EmbedderUnavailable, match="could not load"):
        extract(["hello"], "transformer", model=str(folder))


def test_legacy_pickled_weights_with_a_payload_in_the_fifth_pickle_are_refused(extract, minilm_folder, tmp_path,
                                                                               marker):
    folder = _folder_without_weights(minilm_folder, tmp_path / "legacy")
    with open(folder / "pytorch_model.bin", "wb") as handle:
        for part in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                          "type_sizes": {"short": 2, "int": 4, "long": 4}}, {}):
            pickle.dump(part, handle, protocol=2)
        pickle.dump(Payload(marker), handle, protocol=2)
    with pytest.raises(EmbedderUnavailable, match="could not load"):
        extract(["hello"], "transformer", model=str(folder))


def test_custom_code_named_in_config_auto_map_never_runs(extract, minilm_folder, tmp_path, marker):
    folder = tmp_path / "remote-code"
    shutil.copytree(minilm_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom.Config", "AutoModel": "custom.Model"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "custom.py").write_text(f"import os\nos.system('touch {marker}')\n"
                                      "from transformers import BertConfig as Config, BertModel as Model\n")
    try:
        extract(["hello"], "transformer", model=str(folder))
    except EmbedderUnavailable:
        pass  # refusing is as good as ignoring; running custom.py is what must not happen
