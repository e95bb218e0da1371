"""Hostile flair ``.pt`` files (issue 10, failure 1): each test builds its file and proves the
payload never ran (it would create a marker file)."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from flair_helpers import CORPUS, save_char_lm

from embedx.plugin_api import EmbedderUnavailable

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class Payload:
    """Unpickling this creates ``marker``: proof that the file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "the payload ran"


def _legacy_with_payload_in_fifth_pickle(path, marker) -> None:
    """torch's legacy layout: magic, protocol, system info, the object, then storage keys (the 5th
    pickle, which torch's legacy loader unpickles with plain pickle): here, the payload."""
    with open(path, "wb") as handle:
        for part in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                          "type_sizes": {"short": 2, "int": 4, "long": 4}},
                     {"is_forward_lm": True}):
            pickle.dump(part, handle, protocol=2)
        pickle.dump(Payload(marker), handle, protocol=2)


def test_legacy_format_with_a_payload_in_the_fifth_pickle_is_refused(extract, tmp_path, marker):
    path = tmp_path / "legacy.pt"
    _legacy_with_payload_in_fifth_pickle(path, marker)
    with pytest.raises(EmbedderUnavailable, match=r"legacy .*format.*trust_pickle=true"):
        extract(["x"], "flair-char-lm", forward=str(path))


def test_a_payload_pickle_followed_by_a_harmless_zip_is_refused(extract, char_lms, tmp_path, marker):
    """The polyglot: zipfile sees the zip at the end, torch would unpickle the start."""
    harmless = open(char_lms["forward"], "rb").read()
    path = tmp_path / "polyglot.pt"
    path.write_bytes(pickle.dumps(Payload(marker), protocol=2) + harmless)
    assert zipfile.is_zipfile(path)  # what fooled the old check
    with pytest.raises(EmbedderUnavailable, match=r"refusing to load .*polyglot\.pt"):
        extract(["x"], "flair-char-lm", forward=str(path))


def test_data_before_or_after_the_zip_is_refused(extract, char_lms, tmp_path, marker):
    harmless = open(char_lms["forward"], "rb").read()
    trailing = tmp_path / "trailing.pt"
    trailing.write_bytes(harmless + pickle.dumps(Payload(marker)))
    with pytest.raises(EmbedderUnavailable, match=r"bytes follow the zip archive"):
        extract(["x"], "flair-char-lm", forward=str(trailing))
    # Leading data with the zip magic first: a zip whose offsets were not shifted.
    leading = tmp_path / "leading.pt"
    leading.write_bytes(b"PK\x03\x04" + b"\0" * 26 + harmless)
    with pytest.raises(EmbedderUnavailable, match=r"refusing to load .*leading\.pt"):
        extract(["x"], "flair-char-lm", forward=str(leading))


def test_a_zip_checkpoint_whose_pickle_calls_a_function_is_refused(extract, tmp_path, marker):
    import torch

    path = tmp_path / "evil.pt"
    torch.save({"is_forward_lm": True, "payload": Payload(marker)}, str(path), pickle_protocol=4)
    with pytest.raises(EmbedderUnavailable, match=r"evil\.pt: it references posix\.system"):
        extract(["x"], "flair-char-lm", forward=str(path))


def test_a_zip_with_a_payload_in_a_second_data_pkl_is_refused(extract, char_lms, tmp_path, marker):
    source = zipfile.ZipFile(char_lms["forward"])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
        target.writestr("other/data.pkl", pickle.dumps(Payload(marker)))
    path = tmp_path / "two.pt"
    path.write_bytes(out.getvalue())
    with pytest.raises(EmbedderUnavailable, match="2 data.pkl entries"):
        extract(["x"], "flair-char-lm", forward=str(path))


def test_not_a_checkpoint_at_all_is_refused(extract, tmp_path, marker):
    path = tmp_path / "text.pt"
    path.write_text("hello")
    with pytest.raises(EmbedderUnavailable, match="zip magic"):
        extract(["x"], "flair-char-lm", forward=str(path))


def test_the_safe_loader_gives_exactly_what_flair_itself_loads(extract, char_lms, tmp_path):
    """The protocol-2 rewrite changes encodings only: same weights, same vectors as flair's own load."""
    from flair.models import LanguageModel

    from embedx_flair.safe_checkpoint import load_language_model

    ours = load_language_model(char_lms["forward"], has_decoder=True)
    theirs = LanguageModel.load_language_model(char_lms["forward"])
    assert vars(ours.dictionary) == vars(theirs.dictionary)
    for key, value in theirs.state_dict().items():
        assert np.array_equal(ours.state_dict()[key].numpy(), value.numpy())
    _, safe = extract(CORPUS, "flair-char-lm", store=tmp_path / "a.h5", **char_lms)
    _, trusted = extract(CORPUS, "flair-char-lm", store=tmp_path / "b.h5", trust_pickle=True, **char_lms)
    assert np.array_equal(safe.doc(CORPUS), trusted.doc(CORPUS))


def test_a_trained_lm_round_trips(tmp_path):
    from embedx_flair.safe_checkpoint import load_state

    path = save_char_lm(tmp_path / "lm.pt", forward=False, hidden=8)
    state = load_state(path)
    assert state["is_forward_lm"] is False and state["hidden_size"] == 8


def test_the_rewrite_refuses_a_global_spelled_with_a_line_break():
    from embedx_flair.safe_checkpoint import UnsafeCheckpoint, to_protocol_2

    evil = b"\x80\x04" + b"\x8c\x05torch\x94" + b"\x8c\x0bSize\nsystem\x94" + b"\x93\x94."
    with pytest.raises(UnsafeCheckpoint, match="line break"):
        to_protocol_2(evil)


# Issue 22: a checkpoint holds every weight its model needs, and declares no more than it stores.


def _variant(char_lms, tmp_path, name, change, compression=None):
    """The forward test LM, loaded safely, changed by ``change(state)``, saved as flair saves LMs."""
    import torch

    from embedx_flair.safe_checkpoint import load_state

    state = load_state(char_lms["forward"])
    change(state)
    path = tmp_path / name
    torch.save(state, str(path), pickle_protocol=4)
    return str(path)


def _deflated(source, target, extra=None):
    """``source`` re-zipped with every member deflated, plus ``extra`` {name: bytes} members."""
    archive = zipfile.ZipFile(source)
    prefix = archive.namelist()[0].split("/")[0]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in archive.infolist():
            out.writestr(info.filename, archive.read(info))
        for name, data in (extra or {}).items():
            out.writestr(f"{prefix}/{name}", data)
    return str(target)


@pytest.fixture
def never_built(monkeypatch):
    """Fails the test if flair's LanguageModel is constructed (its constructor allocates every weight)."""
    from flair.models import LanguageModel

    def refuse(*args, **kwargs):
        raise AssertionError("the LanguageModel was built: its weights were allocated")

    monkeypatch.setattr(LanguageModel, "__init__", refuse)


def test_expected_shapes_are_those_of_flairs_language_model():
    from flair.models import LanguageModel

    from embedx_flair import build_char_dictionary
    from embedx_flair.safe_checkpoint import expected_shapes

    dictionary = build_char_dictionary(["ab c"])
    for kind, nlayers, nout, decoder in (("lstm", 1, None, True), ("gru", 2, 6, True), ("LSTM", 2, 5, False)):
        lm = LanguageModel(dictionary, True, hidden_size=4, nlayers=nlayers, embedding_size=3, nout=nout,
                           recurrent_type=kind, has_decoder=decoder)
        actual = [(k, tuple(v.shape)) for k, v in lm.state_dict().items()]
        assert actual == list(expected_shapes(len(dictionary), 3, 4, nlayers, nout, kind, decoder).items())


def test_an_empty_state_dict_is_refused_naming_the_first_missing_weight(extract, char_lms, tmp_path, never_built):
    path = _variant(char_lms, tmp_path, "empty.pt", lambda s: s["state_dict"].clear())
    with pytest.raises(EmbedderUnavailable, match=r"empty\.pt: .*hyper-parameters .*stores only 0 bytes"):
        extract(["x"], "flair-char-lm", forward=path)


def test_a_missing_weight_is_named(char_lms, tmp_path, never_built):
    from embedx_flair.safe_checkpoint import load_language_model

    def drop(state):
        del state["state_dict"]["rnn.bias_hh_l0"]  # a small one: the size check passes, the name check refuses

    path = _variant(char_lms, tmp_path, "missing.pt", drop)
    with pytest.raises(EmbedderUnavailable, match=r"missing\.pt: its state_dict lacks the weight rnn\.bias_hh_l0 "):
        load_language_model(path)


def test_a_wrong_shape_or_an_unexpected_weight_is_refused(char_lms, tmp_path, never_built):
    import torch

    from embedx_flair.safe_checkpoint import load_language_model

    def reshape(state):
        state["state_dict"]["encoder.weight"] = state["state_dict"]["encoder.weight"][:, :15].clone()

    def add(state):
        state["state_dict"]["rnn.weight_ih_l1"] = torch.zeros(128, 32)

    with pytest.raises(EmbedderUnavailable, match=r"shape\.pt: its weight encoder\.weight has shape \[\d+, 15\], "
                                                  r"the model needs \[\d+, 16\]"):
        load_language_model(_variant(char_lms, tmp_path, "shape.pt", reshape))
    with pytest.raises(EmbedderUnavailable, match=r"extra\.pt: its state_dict holds the weight rnn\.weight_ih_l1"):
        load_language_model(_variant(char_lms, tmp_path, "extra.pt", add))


def test_hyper_parameters_larger_than_the_weights_are_refused_before_allocation(char_lms, tmp_path, never_built):
    from embedx_flair.safe_checkpoint import load_language_model

    def inflate(state):
        state["hidden_size"] = 8000
        state["state_dict"].clear()

    path = _variant(char_lms, tmp_path, "hidden.pt", inflate)
    assert os.path.getsize(path) < 8000
    with pytest.raises(EmbedderUnavailable, match=r"hidden\.pt: its hyper-parameters \(hidden_size=8000, .*make a "
                                                  r"model of [\d,]+ bytes, but the file stores only 0 bytes"):
        load_language_model(path)


def test_weights_broadcast_from_one_stored_number_are_refused(char_lms, tmp_path, never_built):
    """Right shapes, but stride-0 views of a single float: loading them would allocate what the file never held."""
    import torch

    from embedx_flair.safe_checkpoint import load_language_model

    def broadcast(state):
        one = torch.zeros(1)
        state["state_dict"] = {k: one.expand(v.shape) for k, v in state["state_dict"].items()}

    with pytest.raises(EmbedderUnavailable, match=r"stores only 4 bytes of weights"):
        load_language_model(_variant(char_lms, tmp_path, "broadcast.pt", broadcast))


def test_a_zip_bomb_member_is_refused_before_it_is_inflated(char_lms, tmp_path):
    import tracemalloc

    from embedx_flair.safe_checkpoint import load_language_model

    bomb = _deflated(char_lms["forward"], tmp_path / "bomb.pt", {"extra": bytes(64 << 20)})
    assert os.path.getsize(bomb) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(EmbedderUnavailable, match=r"bomb\.pt: its zip member .*/extra would inflate from "
                                                      r"[\d,]+ to 67,108,864 bytes, more than 10x \(a zip bomb\)$"):
            load_language_model(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak:,} bytes were allocated"


def test_a_deflated_checkpoint_still_loads_the_same_weights(char_lms, tmp_path):
    from embedx_flair.safe_checkpoint import load_language_model

    plain = load_language_model(char_lms["forward"])
    deflated = load_language_model(_deflated(char_lms["forward"], tmp_path / "deflated.pt"))
    for key, value in plain.state_dict().items():
        assert np.array_equal(deflated.state_dict()[key].numpy(), value.numpy())


def test_many_members_each_within_the_ratio_are_refused_together(char_lms, tmp_path):
    from embedx_flair.safe_checkpoint import load_language_model

    megabyte = bytes(1 << 20)  # each inflates within SIZE_SLACK; 40 of them pass 10x the file's size
    bomb = _deflated(char_lms["forward"], tmp_path / "many.pt", {f"extra{i}": megabyte for i in range(40)})
    with pytest.raises(EmbedderUnavailable, match=r"many\.pt: its zip members would inflate to [\d,]+ bytes, more "
                                                  r"than 10x the file's [\d,]+ bytes \(a zip bomb\)"):
        load_language_model(bomb)


def test_a_trusted_file_is_unpickled_but_its_weights_are_still_checked(char_lms, tmp_path):
    """trust_pickle=true lets torch read the legacy format (a full pickle); an empty state_dict is still refused."""
    import torch

    from embedx_flair.safe_checkpoint import load_language_model, load_state

    state = load_state(char_lms["forward"])
    legacy = tmp_path / "legacy-lm.pt"
    torch.save(state, str(legacy), _use_new_zipfile_serialization=False)
    plain = load_language_model(char_lms["forward"])
    trusted = load_language_model(str(legacy), trusted=True)
    for key, value in plain.state_dict().items():
        assert np.array_equal(trusted.state_dict()[key].numpy(), value.numpy())
    state["state_dict"] = {k: v for k, v in state["state_dict"].items() if k != "rnn.bias_ih_l0"}
    torch.save(state, str(legacy), _use_new_zipfile_serialization=False)
    with pytest.raises(EmbedderUnavailable, match=r"legacy-lm\.pt: its state_dict lacks the weight rnn\.bias_ih_l0"):
        load_language_model(str(legacy), trusted=True)
