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
