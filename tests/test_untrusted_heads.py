"""Files embedx reads back are untrusted: saved heads, bench journals, digest caches, JSON Lines input.

Each attack here was reproduced on an earlier embedx: a head that switched on ``trust_pickle`` for a
pickle in its own folder and pointed ``predict`` at another project's store; a forged journal line that
put a head that never ran into the report; a digest cache row; a zip bomb as ``state.npz``; a
5,000-digit integer in a JSONL file. Every one is now refused in one line, or ignored and recomputed,
and nothing outside is read, written or run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
from embedx import DOCUMENT, Embedder, Output
from embedx import registry as registry_module
from embedx.cli import app
from embedx.contract.errors import EmbedxError, InputError, OptionError
from embedx.heads.saved import HeadStateError
from embedx.heads.selection import Protocol
from embedx.heads.training import SplitSpec, default_predict_features, load_head, predict, train

SPLIT = SplitSpec(seed=0)


def _texts(per_class: int = 24) -> tuple[list[str], list[str]]:
    texts = [f"{word} offer now {i}" for i, word in enumerate(["win", "free", "cash", "prize"] * (per_class // 4))]
    texts += [f"see you at {i} tomorrow" for i in range(len(texts))]
    return texts, ["spam"] * (len(texts) // 2) + ["ham"] * (len(texts) // 2)


def _head(tmp_path: Path, head: str = "logreg", embedder: str = "hashing-ngrams", options: dict | None = None,
          head_options: dict | None = None, name: str = "head", per_class: int = 24) -> tuple[Path, Path]:
    texts, labels = _texts(per_class)
    store = tmp_path / f"{name}-train.h5"
    embedx.extract(texts, embedder, store, name="t", options=options or {"dim": 64}, columns={"label": labels})
    out = tmp_path / name
    train(head, store, embedder, "label", split=SPLIT, options=head_options or {}, save=out,
          protocol=Protocol("validation"))
    return out, store


def _snapshot(*paths: Path) -> dict[str, str]:
    """Every file under ``paths``, by content: to prove nothing there changed."""
    found = {}
    for root in paths:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


class _Payload:
    """What a hostile pickle does when loaded: create ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- 1. a saved head cannot grant trust, choose where features go, or hide which files load -----------------------
def test_a_head_that_grants_itself_trust_and_names_another_store_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path / "cache"))
    head, _ = _head(tmp_path)
    marker = tmp_path / "pwned"
    (head / "payload.kv").write_bytes(pickle.dumps(_Payload(str(marker))))
    theirs = tmp_path / "other-project"
    theirs.mkdir()
    embedx.extract(["their text"], "hashing-ngrams", theirs / "theirs.h5", options={"dim": 64})
    before = _snapshot(theirs)
    meta = json.loads((head / "head.json").read_text())
    meta["features"] = str(theirs / "theirs.h5")
    meta["embedder_config"].update(embedder="word-vectors", options={"format": "keyedvectors"},
                                   unkeyed_options={"model": str(head / "payload.kv"), "trust_pickle": True})
    (head / "head.json").write_text(json.dumps(meta))
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--features", str(tmp_path / "mine.h5")]):
        result = CliRunner().invoke(app, ["predict", str(head), *extra, "a free prize"])
        assert result.exit_code == 2
        line = _one_line(result)
        assert "trust_pickle=True" in line and "cannot grant trust" in line and "--option trust_pickle" in line
    assert not marker.exists()
    assert _snapshot(theirs) == before
    assert not default_predict_features().exists() and not (tmp_path / "mine.h5").exists()


class _Picky(Embedder):
    """Hashes characters; ``allow_code`` (declared) and ``trust_weights`` (by name) are its trust options."""

    id = "picky"
    outputs = (Output("doc", DOCUMENT, dim=8),)
    default_outputs = ("doc",)
    trust_options = ("allow_code",)
    unkeyed_options = ("model", "allow_code", "trust_weights")

    def __init__(self, model: str | None = None, allow_code: bool = False, trust_weights: bool = False):
        self.model, self.allow_code, self.trust_weights = model, allow_code, trust_weights

    def identity(self):
        from embedx.contract.errors import EmbedderUnavailable
        from embedx.files.digests import file_digest

        if self.model and not os.path.isfile(self.model):
            raise EmbedderUnavailable(f"no model file {self.model}")
        return {"model": file_digest(self.model)} if self.model else {}

    def embed_batch(self, texts):
        doc = np.zeros((len(texts), 8), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text:
                doc[i, ord(ch) % 8] += 1
        return {"doc": doc}


class _PickyPlugin:
    @embedx.hookimpl
    def register_embedders(self, register):
        register(_Picky)


@pytest.fixture
def picky():
    reg = registry_module.build_registry(extra_plugins=[("picky", _PickyPlugin())])
    registry_module.set_registry(reg)
    try:
        yield reg
    finally:
        registry_module.set_registry(None)


def test_trust_options_are_known_by_name_and_by_declaration(picky, tmp_path):
    from embedx.trust import granted_trust, trust_option_names

    assert trust_option_names(_Picky) == {"allow_code", "trust_weights"}
    assert granted_trust({"allow_code": False, "trust_weights": False, "model": "m"}, _Picky) == {}
    assert granted_trust({"trust_anything": "yes"}, None) == {"trust_anything": "yes"}  # unknown plugin: by name
    for option in ("allow_code", "trust_weights"):
        head, _ = _head(tmp_path, embedder="picky", options={option: "true"}, name=option)
        features = tmp_path / f"{option}.h5"
        with pytest.raises(OptionError, match=rf"records {option}=True .*cannot grant trust"):
            predict(head, ["hello"], features=features)
        assert not features.exists()
        # the caller may grant it: trust comes from the call, never from the file
        labels, _ = predict(head, ["win free cash"], features=features, options={option: "true"})
        assert labels[0] in ("spam", "ham")


def test_a_head_cannot_grant_itself_trust_in_its_own_options(tmp_path):
    head, _ = _head(tmp_path)
    meta = json.loads((head / "head.json").read_text())
    meta["outcome"]["options"]["trust_me"] = True
    (head / "head.json").write_text(json.dumps(meta))
    with pytest.raises(OptionError, match="trust_me=True would grant trust"):
        load_head(head)


def test_predict_writes_only_where_told_and_the_default_no_head_can_change(tmp_path):
    head, store = _head(tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    embedx.extract(["their text"], "hashing-ngrams", theirs / "theirs.h5", options={"dim": 64})
    meta = json.loads((head / "head.json").read_text())
    meta["features"] = str(theirs / "theirs.h5")  # informational only
    (head / "head.json").write_text(json.dumps(meta))
    before = _snapshot(theirs, store)
    heard: list[str] = []
    reports: list = []
    predict(head, ["a brand new text"], reports=reports, say=heard.append)
    assert reports[0].path == str(default_predict_features()) and default_predict_features().is_file()
    assert heard == [f"features: {default_predict_features()} (the default; --features to choose)"]
    predict(head, ["another new text"], features=tmp_path / "chosen.h5", reports=reports)
    assert reports[1].path == str(tmp_path / "chosen.h5")
    assert _snapshot(theirs, store) == before


def test_model_paths_resolve_from_the_current_directory_and_are_named_first(picky, tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "model.bin").write_bytes(b"the model trained with")
    monkeypatch.chdir(work)
    head, _ = _head(tmp_path, embedder="picky", options={"model": "model.bin"})
    (head / "model.bin").write_bytes(b"a model planted beside the head")  # never looked at
    heard: list[str] = []
    labels, _ = predict(head, ["win free cash"], features=tmp_path / "f.h5", say=heard.append)
    assert heard[0] == f"embedder 'picky' option model: file {work / 'model.bin'}"
    # from another folder the same relative path is another file (here none): refused before anything runs
    monkeypatch.chdir(elsewhere)
    with pytest.raises(EmbedxError):
        predict(head, ["win free cash"], features=tmp_path / "g.h5")
    (elsewhere / "model.bin").write_bytes(b"some other model")
    with pytest.raises(EmbedxError, match="no longer computes the configuration"):
        predict(head, ["win free cash"], features=tmp_path / "g.h5")
    assert not (tmp_path / "g.h5").exists()
    # an absolute path on the command line names the file the head was trained with
    labels, _ = predict(head, ["win free cash"], features=tmp_path / "g.h5",
                        options={"model": str(work / "model.bin")})
    assert labels[0] in ("spam", "ham")


@pytest.mark.parametrize("change, message", [
    (lambda m: m["outcome"].update(classes="spam"), "'outcome.classes' is not a list"),
    (lambda m: m["outcome"].update(classes=["a", "a"]), "'outcome.classes' is not a list"),
    (lambda m: m.update(config_hash=5), "'config_hash' is not a SHA-256"),
    (lambda m: m.update(embedder_config=[]), "'embedder_config' is not an embedder configuration"),
    (lambda m: m["embedder_config"].update(dtype="object"), "'embedder_config.dtype' is not float32"),
    (lambda m: m.update(feature_shape=[0]), "'feature_shape' is not"),
])
def test_a_malformed_head_description_is_one_line(tmp_path, change, message):
    head, _ = _head(tmp_path)
    meta = json.loads((head / "head.json").read_text())
    change(meta)
    (head / "head.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(app, ["predict", str(head), "--features", str(tmp_path / "f.h5"), "text"])
    assert result.exit_code == 2 and message in _one_line(result)


def test_a_head_json_of_huge_numbers_is_one_line(tmp_path):
    head, _ = _head(tmp_path)
    text = (head / "head.json").read_text().replace('"format_version": 2', '"format_version": ' + "9" * 5000)
    (head / "head.json").write_text(text)
    with pytest.raises(EmbedxError, match="not a readable head description"):
        load_head(head)


# -- 4. state.npz: bounded before it is read, every member checked against the head -------------------------------
def _rewrite_state(head: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(head / "state.npz", **arrays)


def _state(head: Path) -> dict[str, np.ndarray]:
    with np.load(head / "state.npz") as saved:
        return dict(saved)


def test_a_zip_bomb_state_is_refused_from_the_zip_directory(tmp_path):
    import tracemalloc

    head, _ = _head(tmp_path)
    with zipfile.ZipFile(head / "state.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (8000000,), }"
        archive.writestr("coef.npy", header.ljust(127, b" ") + b"\n" + bytes(64_000_000))
    assert (head / "state.npz").stat().st_size < 200_000
    tracemalloc.start()
    with pytest.raises(HeadStateError, match=r"state.npz: member 'coef' declares 64,000,128 bytes from [0-9,]+ "
                                             r"compressed, more than 20x"):
        load_head(head)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 << 20  # nothing was inflated


def test_a_member_whose_header_claims_more_than_it_holds_is_refused(tmp_path):
    head, _ = _head(tmp_path)
    with zipfile.ZipFile(head / "state.npz", "w") as archive:
        header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (400000000,), }"
        archive.writestr("coef.npy", header.ljust(127, b" ") + b"\n" + bytes(1 << 10))
    with pytest.raises(HeadStateError, match=r"member 'coef': its header says \(400000000,\) of float64, which "
                                             "does not match"):
        load_head(head)


def test_a_state_over_the_absolute_cap_is_refused(tmp_path, monkeypatch):
    head, _ = _head(tmp_path)
    arrays = _state(head)
    arrays["coef"] = np.zeros((1, 300_000))
    _rewrite_state(head, arrays)
    monkeypatch.setenv("EMBEDX_MAX_HEAD_MB", "1")
    with pytest.raises(HeadStateError, match=r"declare [0-9,]+ bytes in all, more than the 1,048,576 a saved head "
                                             r"may hold \(\$EMBEDX_MAX_HEAD_MB raises it\)"):
        load_head(head)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(coef=np.zeros((2, 5))), r"member 'coef' has shape \(2, 5\), expected rxd with d=64"),
    (lambda a: a.update(classes=a["classes"].astype(np.float64)), "member 'classes' is float64, expected integer"),
    (lambda a: a.update(classes=np.array([0, 7])), "member 'classes' is not 2 or fewer distinct"),
    (lambda a: a.update(extra=np.zeros(3)), "member 'extra' is not part of this kind of head"),
    (lambda a: a.pop("intercept"), "no array 'intercept'"),
    (lambda a: a.update(mean=np.zeros((64, 64))), r"member 'mean' has shape \(64, 64\), expected d"),
])
def test_a_wrong_member_is_named_in_one_line(tmp_path, change, message):
    head, _ = _head(tmp_path)
    arrays = _state(head)
    change(arrays)
    _rewrite_state(head, arrays)
    result = CliRunner().invoke(app, ["predict", str(head), "--features", str(tmp_path / "f.h5"), "text"])
    assert result.exit_code == 2 and re.search(message, _one_line(result)), result.stderr


def test_a_state_json_with_wrong_values_is_one_line(tmp_path):
    head, _ = _head(tmp_path)
    (head / "state.json").write_text(json.dumps({"estimator": "exact", "n_classes": "two", "C": 1.0}))
    with pytest.raises(HeadStateError, match="'n_classes' is 'two', expected a whole number 2 or more"):
        load_head(head)
    (head / "state.json").write_text('{"n_classes": ' + "9" * 5000 + "}")
    with pytest.raises(HeadStateError, match="state.json: unreadable JSON"):
        load_head(head)


def test_dense_weights_are_checked_without_building_what_the_settings_claim(tmp_path):
    head, _ = _head(tmp_path, head="dense", head_options={"hidden": "4", "epochs": "2"})
    config = json.loads((head / "state.json").read_text())
    config["dim"] = 10 ** 12  # a Linear(10**12, 4) would need 16 TB
    (head / "state.json").write_text(json.dumps(config))
    with pytest.raises(HeadStateError, match=r"member 'mean' has shape \(64,\), expected 1000000000000"):
        load_head(head)


@pytest.mark.parametrize("head_id, field", [("random-forest", "left_child"), ("gradient-boosting", "left")])
def test_tree_nodes_that_link_outside_their_tree_are_refused(tmp_path, head_id, field):
    head, _ = _head(tmp_path, head=head_id, head_options={"n_estimators": "3"}, per_class=100)
    arrays = _state(head)
    nodes = arrays["nodes"].copy()
    split = np.flatnonzero(nodes["is_leaf"] == 0 if "is_leaf" in nodes.dtype.names else nodes["left_child"] != -1)
    assert len(split)
    nodes[field][split[0]] = split[0]  # back to itself: an endless walk
    arrays["nodes"] = nodes
    _rewrite_state(head, arrays)
    with pytest.raises(HeadStateError, match="links outside its tree"):
        load_head(head)


# -- 2. a bench journal is authenticated and checked against the unit it is keyed under ---------------------------
def _corpus(tmp_path: Path) -> Path:
    texts, labels = _texts()
    path = tmp_path / "corpus.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def _config(corpus: Path):
    from embedx.bench.config import BenchConfig

    return BenchConfig(datasets=[str(corpus)], embedders=["hashing-ngrams:dim=64"], heads=["logreg"], finetuners=[],
                       seeds=[0], finetune_seeds=[0], samples_per_class=None, layer_sweep=None, selection="validation")


def _sign(entry: dict) -> str:
    from embedx.bench.journal import PURPOSE
    from embedx.trust import mac

    body = json.dumps(entry)
    return '{"mac": "' + mac(PURPOSE, body.encode()) + '", ' + body[1:]


def test_forged_journal_lines_are_ignored_counted_and_recomputed(tmp_path):
    from embedx.bench.report import write_report
    from embedx.bench.runner import Comparison

    corpus, out = _corpus(tmp_path), tmp_path / "out"
    first = Comparison(_config(corpus), out, log=lambda m: None).run()
    journal = out / "journal.jsonl"
    (line,) = journal.read_text().splitlines()
    real = json.loads(line)
    forged_row = dict(real["rows"][0], features="never-ran", test={"accuracy": 1.0, "macro_f1": 1.0})
    body = {k: v for k, v in real.items() if k != "mac"}
    edited = dict(real["rows"][0], test={"accuracy": 0.5, "macro_f1": 0.5})
    lines = [
        '{"mac": "' + real["mac"] + '", ' + json.dumps({**body, "rows": [edited]})[1:],  # edited: the MAC fails
        json.dumps({"key": real["key"], "rows": [forged_row]}),  # no MAC at all
        '{"mac": "' + "0" * 64 + '", ' + json.dumps({**body, "rows": [forged_row]})[1:],  # a made-up MAC
        _sign({**body, "rows": [1]}),  # authentic but not of the schema: no traceback
        _sign({**body, "rows": [forged_row]}),  # authentic, well-formed, but not this unit's row
    ]
    journal.write_text("\n".join(lines) + "\n")
    heard: list[str] = []
    again = Comparison(_config(corpus), out, log=heard.append).run()
    assert again["resumed_units"] == 0  # recomputed
    assert [r["test"] for r in again["rows"]] == [r["test"] for r in first["rows"]]
    assert {r["features"] for r in again["rows"]} == {"hashing-ngrams[dim=64]"}
    warnings = [m for m in heard if m.startswith("warning:") and "journal.jsonl" in m]
    assert len(warnings) == 1 and "5 line(s)" in warnings[0]
    assert "never-ran" not in write_report(again, out).read_text()
    # and the recomputed unit was journalled authentically: the next run resumes it
    heard.clear()
    assert Comparison(_config(corpus), out, log=heard.append).run()["resumed_units"] == 1


def test_a_journal_from_another_machine_is_recomputed(tmp_path, monkeypatch):
    from embedx.bench.runner import Comparison

    corpus, out = _corpus(tmp_path), tmp_path / "out"
    Comparison(_config(corpus), out, log=lambda m: None).run()
    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path / "another-user"))  # another local key
    heard: list[str] = []
    again = Comparison(_config(corpus), out, log=heard.append).run()
    assert again["resumed_units"] == 0
    assert any("journal.jsonl ignored" in m for m in heard)
    assert any("extract_times.json ignored" in m for m in heard)


def test_the_local_key_is_private(tmp_path, monkeypatch):
    import stat

    from embedx.trust import key_path, local_key

    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path / "cache"))
    key = local_key()
    assert len(key) == 32 and key_path().read_bytes() == key
    assert stat.S_IMODE(key_path().stat().st_mode) == 0o600
    os.chmod(key_path(), 0o644)
    from embedx.trust import forget_keys

    forget_keys()
    with pytest.raises(EmbedxError, match="readable or writable by others"):
        local_key()


# -- 3. the digest cache: a row embedx did not write is never believed -------------------------------------------
def test_a_digest_row_not_written_here_is_not_trusted(tmp_path, monkeypatch):
    import sqlite3

    from embedx.files import digests

    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    real = hashlib.sha256(b"weights").hexdigest()
    assert digests.cached_file_digest(model) == real
    db = tmp_path / "cache" / digests.DB_NAME
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE digests SET sha256=?", ("f" * 64,))
    digests.forget_in_memory()
    assert digests.cached_file_digest(model) == real
    # a file rewritten with the same size and its mtime set back is a new version: ctime is in the key
    info = model.stat()
    model.write_bytes(b"WEIGHTS")
    os.utime(model, ns=(info.st_atime_ns, info.st_mtime_ns))
    digests.forget_in_memory()
    assert digests.cached_file_digest(model) == hashlib.sha256(b"WEIGHTS").hexdigest()
    assert oct(db.stat().st_mode & 0o777) == oct(0o600)


# -- 4b. any value JSON can carry in an input file --------------------------------------------------------------
def test_jsonl_numbers_python_cannot_hold_are_kept_as_text_or_named(tmp_path):
    from embedx.inputs import InputSpec, read_records

    big = "9" * 5000
    path = tmp_path / "in.jsonl"
    path.write_text(f'{{"text": "a", "n": {big}, "x": NaN, "y": -Infinity, "z": 1e999, "l": [{big}, NaN, 1.5]}}\n')
    (record,), columns = read_records(InputSpec(str(path)))
    assert record.columns == {"n": big, "x": "NaN", "y": "-Infinity", "z": "1e999", "l": f"[{big}, NaN, 1.5]"}
    done = CliRunner().invoke(app, ["extract", str(path), "-e", "hashing-ngrams", "-O", "dim=16",
                                    "-o", str(tmp_path / "f.h5")])
    assert done.exit_code == 0, done.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": ' + big + "}\n")
    with pytest.raises(InputError, match=r"bad.jsonl, line 2: field 'text' is a number, expected a string"):
        read_records(InputSpec(str(bad)))
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"text": "a", "n": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(InputError, match=r"deep.jsonl, line 1: invalid JSON \(nested too deeply\)"):
        read_records(InputSpec(str(deep)))
    result = CliRunner().invoke(app, ["extract", str(bad), "-e", "hashing-ngrams", "-o", str(tmp_path / "g.h5")])
    assert result.exit_code == 2 and "line 2: field 'text' is a number" in _one_line(result)


def test_a_results_file_with_malformed_rows_is_one_line(tmp_path):
    """``bench report`` reads results files the user names (maybe from another machine): checked, not trusted."""
    from embedx.bench.merge import load_results

    part = {"config": {"datasets": ["mr"], "seeds": [0]}, "machine": {},
            **{k: [] for k in ("rows", "curves", "layers", "skipped", "extraction")}}
    for rows, message in [([1], r"rows\[0\]: not an object"), ([{"dataset": "mr"}], r"rows\[0\]: field 'features'"),
                          ([{"dataset": "mr", "features": "f", "head": "h", "seed": 0, "test": {"accuracy": "1"}}],
                           r"rows\[0\]: field 'test'")]:
        (tmp_path / "r.json").write_text(json.dumps({**part, "rows": rows}))
        result = CliRunner().invoke(app, ["bench", "report", str(tmp_path / "r.json"), "--out", str(tmp_path / "o")])
        assert result.exit_code == 2 and re.search(message, _one_line(result))
        with pytest.raises(EmbedxError, match=message):
            load_results(tmp_path / "r.json")


def test_a_recorded_write_location_is_dropped_not_followed(picky, tmp_path):
    """Options that choose where embedx writes (``cache_dir``, declared ``write_options``) come from the caller."""
    from embedx.heads.training import embedder_options
    from embedx.trust import is_write_option

    assert is_write_option("cache_dir") and is_write_option("vectors_cache_dir") and is_write_option("output")
    assert not is_write_option("model") and not is_write_option("model_dir")
    config = {"embedder": "picky", "options": {"model": "m.bin"}, "unkeyed_options": {"cache_dir": "/elsewhere"}}
    assert embedder_options(config, {}, picky) == {"model": "m.bin"}
    assert embedder_options(config, {"cache_dir": "mine"}, picky)["cache_dir"] == "mine"
