"""Hostile TF Hub / SavedModel folders (issue 22's trust policy by construction): only ops on the published
allow-list load, files and assets must stay inside the module, and every module the plugin itself builds or
exports passes. Each hostile module is a real payload: with ``trust_module=true`` it does what it was built to
do (reads, lists or writes), without it it is refused in one line before TensorFlow opens anything."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from embedx.plugin_api import EmbedderUnavailable, EmbedxError

SECRET = "hunter2\nswordfish\n"


@pytest.fixture(scope="module")
def reference(modules, tmp_path_factory):
    """Every kind of module the plugin builds or exports (the test modules are reused, not rebuilt)."""
    pytest.importorskip("embedx_swivel", reason="the reference modules include embedx-swivel's exports")
    pytest.importorskip("embedx_elmo_train", reason="the reference modules include embedx-elmo-train's exports")
    from embedx_tfhub.testing.reference_modules import build_reference_modules

    return build_reference_modules(tmp_path_factory.mktemp("reference"), test_modules=modules)


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


def _module(tf, folder, body, dim=2):
    """A text-embedding SavedModel whose call returns ``body(texts)`` (a ``[dim]`` vector per text) or, when
    ``body`` returns a list, runs it first and returns zeros."""

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts):
            out = body(texts)
            if isinstance(out, list):
                with tf.control_dependencies(out):
                    return tf.zeros([tf.shape(texts)[0], dim])
            return tf.tile(tf.reshape(tf.cast(out, tf.float32), [1, dim]), [tf.shape(texts)[0], 1])

    tf.saved_model.save(Module(), str(folder))
    return str(folder)


def _copy(folder, dest: Path) -> Path:
    shutil.copytree(folder, dest, symlinks=True)
    return dest


def _edit_assets(folder: Path, rename: dict[str, str]) -> None:
    """Rename asset file names in ``saved_model.pb`` (what a hostile sender edits; the graph is untouched)."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString((folder / "saved_model.pb").read_bytes())
    for asset in model.meta_graphs[0].asset_file_def:
        asset.filename = rename.get(asset.filename, asset.filename)
    (folder / "saved_model.pb").write_bytes(model.SerializeToString())


def _refused(extract, folder, tmp_path) -> str:
    """The one-line refusal of extracting through ``folder``: no secret in it, nothing stored."""
    with pytest.raises(EmbedderUnavailable) as info:
        extract(["hunter2"], "tfhub-text", model=str(folder))
    message = str(info.value)
    assert "\n" not in message and str(folder) in message and "trust_module=true" in message
    assert "hunter2" not in message and "swordfish" not in message
    assert not (tmp_path / "features.h5").exists()
    return message


def test_every_module_the_plugin_builds_passes_and_the_list_is_what_they_use(reference):
    from embedx_tfhub.allowed_ops import ALLOWED_OPS, TWINS
    from embedx_tfhub.safe_module import scan
    from embedx_tfhub.testing.reference_modules import module_ops

    assert {"elmo", "text", "bert", "swivel", "elmo-export", "bert-converted", "tf1-text", "tf1-elmo"} <= set(reference)
    for name, folder in reference.items():
        assert scan(folder) == [], name
    used = set().union(*(module_ops(folder) for folder in reference.values()))
    assert used == ALLOWED_OPS - TWINS  # derived: nothing on the list that no module needs
    assert not [op for op in ALLOWED_OPS if "Dataset" in op or "Iterator" in op or "Reader" in op or "PyFunc" in op
                or op.endswith(("File", "Files"))]


@pytest.mark.parametrize("attack", ["absolute", "dotdot", "symlink"])
def test_an_asset_outside_the_module_is_refused_before_it_is_read(extract, reference, secret, tmp_path, attack):
    folder = _copy(reference["swivel"], tmp_path / "sender" / "module")
    if attack == "symlink":
        (folder / "assets" / "tokens.txt").unlink()
        (folder / "assets" / "tokens.txt").symlink_to(secret)
    else:
        name = str(secret) if attack == "absolute" else os.path.relpath(secret, folder / "assets")
        _edit_assets(folder, {"tokens.txt": name})
    # the payload is real: trusted, the secret's lines become the vocabulary, and "hunter2" gets a word's vector
    _, trusted = extract(["hunter2"], "tfhub-text", model=str(folder), trust_module="true",
                         store=tmp_path / "trusted.h5")
    assert np.abs(trusted.doc(["hunter2"], "doc")).sum() > 0  # an untampered module: an OOV bucket, zeros
    message = _refused(extract, folder, tmp_path)
    assert {"absolute": "is not a relative path", "dotdot": "is not a relative path",
            "symlink": "symbolic link to"}[attack] in message


def test_a_graph_smuggled_into_dataset_from_graph_is_refused(extract, tf, hub, secret, tmp_path):
    written = tmp_path / "written-by-the-module"

    def leak(line):
        with tf.control_dependencies([tf.io.write_file(str(written), line)]):
            return tf.identity(line)

    inner = tf.data.TextLineDataset(str(secret)).map(leak).take(1)
    graph = inner._as_serialized_graph(external_state_policy=tf.data.experimental.ExternalStatePolicy.IGNORE).numpy()

    def body(texts):
        unfoldable = tf.strings.join([tf.constant(graph), tf.strings.substr(texts[0], 0, 0)])  # not a constant
        dataset = tf.raw_ops.DatasetFromGraph(graph_def=unfoldable)
        line = tf.raw_ops.DatasetToSingleElement(dataset=dataset, output_types=[tf.string], output_shapes=[[]])[0]
        return tf.strings.unicode_decode(line, "UTF-8")[:4]  # the file's first bytes, as features

    folder = _module(tf, tmp_path / "smuggler", body, dim=4)
    assert not written.exists()
    features = hub.load(folder)(tf.constant(["x"])).numpy()  # trusted, it reads the file and writes another
    assert features[0].tolist() == [float(ord(c)) for c in "hunt"] and written.read_text() == "hunter2"
    written.unlink()
    message = _refused(extract, folder, tmp_path)
    assert "op DatasetFromGraph" in message and "in function __inference" in message
    assert not written.exists()


def test_listing_a_folder_with_matching_files_dataset_is_refused(extract, tf, hub, tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (private / name).write_text("x")

    def body(texts):
        variant = tf.raw_ops.MatchingFilesDataset(patterns=[str(private / "*")])
        listed = tf.data.experimental.from_variant(variant, tf.TensorSpec([], tf.string))
        return tf.stack([listed.reduce(0, lambda n, _: n + 1), 0])

    folder = _module(tf, tmp_path / "lister", body)
    assert hub.load(folder)(tf.constant(["x"])).numpy()[0, 0] == 3  # trusted, it counts the folder's files
    assert "op MatchingFilesDataset" in _refused(extract, folder, tmp_path)


def test_reading_writing_listing_or_saving_outside_the_module_is_refused(tf, tmp_path, secret):
    from embedx_tfhub.safe_module import scan

    marker = tmp_path / "written"
    bodies = {
        "ReadFile": lambda texts: [tf.io.read_file(str(secret))],
        "WriteFile": lambda texts: [tf.io.write_file(str(marker), "pwned")],
        "MatchingFiles": lambda texts: [tf.io.matching_files(str(tmp_path / "*"))],
        "SaveV2": lambda texts: [tf.raw_ops.SaveV2(prefix=str(tmp_path / "ckpt"), tensor_names=["v"],
                                                   shape_and_slices=[""], tensors=[tf.constant([1.0])])],
        "PyFunc": lambda texts: [tf.numpy_function(lambda x: x, [texts], tf.string)],
    }
    for op, body in bodies.items():
        found = scan(_module(tf, tmp_path / op, body))
        expected = "is not only the module's saver" if op == "SaveV2" else f"op {op} "
        assert any(expected in p for p in found), (op, found)
    assert not marker.exists()


def test_a_table_read_from_a_constant_path_or_from_the_input_is_refused(tf, tmp_path, secret):
    from embedx_tfhub.safe_module import scan

    def table_from(filename):
        table = tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64)
        init = tf.raw_ops.InitializeTableFromTextFileV2(table_handle=table, filename=filename, key_index=-2,
                                                        value_index=-1)
        with tf.control_dependencies([init]):
            return [tf.raw_ops.LookupTableFindV2(table_handle=table, keys=tf.constant(["x"]),
                                                 default_value=tf.constant(-1, tf.int64))]

    constant = scan(_module(tf, tmp_path / "constant", lambda texts: table_from(tf.constant(str(secret)))))
    assert any("InitializeTableFromTextFileV2" in p and "takes its file name from Const" in p for p in constant)
    from_input = scan(_module(tf, tmp_path / "input", lambda texts: table_from(texts[0])))
    assert any("takes its file name from StridedSlice" in p for p in from_input), from_input

    class Loader(tf.Module):  # the file name is a function argument: whoever calls the module picks the file
        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def __call__(self, path):
            return table_from(path)[0]

    tf.saved_model.save(Loader(), str(tmp_path / "argument"))
    assert any("can be called with a file name of the caller's choosing" in p for p in scan(tmp_path / "argument"))


def test_a_table_bound_to_a_constant_instead_of_its_asset_is_refused(reference, tmp_path):
    """The saved object graph binds the table initialiser's captured file name: to an asset, never a constant."""
    from tensorflow.core.protobuf import saved_model_pb2

    from embedx_tfhub.safe_module import scan

    folder = _copy(reference["swivel"], tmp_path / "module")
    model = saved_model_pb2.SavedModel()
    model.ParseFromString((folder / "saved_model.pb").read_bytes())
    meta_graph = model.meta_graphs[0]
    objects = meta_graph.object_graph_def
    initializer = next(f.signature.name for f in meta_graph.graph_def.library.function
                       if any(n.op == "InitializeTableFromTextFileV2" for n in f.node_def))
    constant = next(i for i, node in enumerate(objects.nodes) if node.WhichOneof("kind") == "constant")
    objects.concrete_functions[initializer].bound_inputs[0] = constant
    (folder / "saved_model.pb").write_bytes(model.SerializeToString())
    assert any(f"binds function {initializer}" in p and "to a constant, not an asset" in p for p in scan(folder))


@pytest.mark.parametrize("where", ["assets/tokens.txt", "variables/variables.data-00000-of-00001", "saved_model.pb"])
def test_a_fifo_in_the_module_is_refused_without_hanging(extract, reference, tmp_path, where):
    from embedx_tfhub.safe_module import scan

    folder = _copy(reference["swivel"], tmp_path / "module")
    (folder / where).unlink()
    os.mkfifo(folder / where)
    outcome: list = []

    def attempt():
        try:
            outcome.append(scan(folder) if where == "saved_model.pb" else _refused(extract, folder, tmp_path))
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=120)
    if worker.is_alive():  # unblock the reader before failing
        os.close(os.open(folder / where, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"the check hung on a FIFO at {where}")
    found = outcome[0]
    assert not isinstance(found, BaseException), found
    assert f"{where} is a FIFO, not a regular file" in (found if isinstance(found, str) else found[0])


def test_a_link_out_of_the_module_is_refused(reference, tmp_path, secret):
    from embedx_tfhub.safe_module import scan

    folder = _copy(reference["swivel"], tmp_path / "module")
    data = folder / "variables" / "variables.data-00000-of-00001"
    data.unlink()
    data.symlink_to(secret)  # variable values read from another file
    assert any("is a symbolic link to" in p and "outside the module" in p for p in scan(folder))
    data.unlink()
    data.symlink_to(folder / "assets" / "tokens.txt")  # inside the module: allowed (the graph is what decides)
    assert not [p for p in scan(folder) if "symbolic link" in p]


def test_a_module_that_writes_a_file_is_refused_unless_trusted(extract, tf, tmp_path):
    marker = tmp_path / "written-by-the-module"
    folder = _module(tf, tmp_path / "writer", lambda texts: [tf.io.write_file(str(marker), "pwned")])
    message = _refused(extract, folder, tmp_path)
    assert "op WriteFile (node 'WriteFile') in function __inference" in message and not marker.exists()
    # The user's explicit trust is an embedder option: the check is skipped and the module runs as written.
    try:
        extract(["hello"], "tfhub-text", model=folder, trust_module="true")
    except EmbedxError as exc:  # whatever it returns, it was not refused by the check
        assert "allow-list" not in str(exc)
    assert marker.read_text() == "pwned"


def test_a_damaged_saved_model_is_refused_not_crashed(tmp_path):
    from embedx_tfhub.safe_module import check_module

    (tmp_path / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff\xff garbage")
    with pytest.raises(EmbedderUnavailable, match="cannot be parsed"):
        check_module(tmp_path)


def test_trusting_a_module_skips_the_check(tf, tmp_path):
    from embedx_tfhub import handles

    folder = _module(tf, tmp_path / "reader", lambda texts: [tf.io.read_file(str(tmp_path / "x"))])
    with pytest.raises(EmbedderUnavailable, match="op ReadFile"):
        handles.resolve(folder)
    assert handles.resolve(folder, trust_module=True) == folder


def test_the_readme_publishes_the_allow_list():
    import re

    from embedx_tfhub.allowed_ops import ALLOWED_OPS

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Trust: what a module may contain", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    listed = set(re.findall(r"`(\w+)`", "\n".join(row.split("|")[2] for row in table)))
    assert listed == ALLOWED_OPS and f"{len(ALLOWED_OPS)} ops" in section
