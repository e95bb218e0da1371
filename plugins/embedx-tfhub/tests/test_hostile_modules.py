"""Hostile TF Hub / SavedModel folders (issue 10's trust policy): graph ops that read or write
files outside the module, or save a checkpoint to a path of their choosing, are refused before
``hub.load``; the modules the plugin itself builds and exports still load."""

from __future__ import annotations

import pytest

from embedx.plugin_api import EmbedderUnavailable, EmbedxError


def _module(tf, folder, body):
    """A text-embedding SavedModel whose call runs ``body(texts)`` first (the hostile part)."""

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts):
            with tf.control_dependencies(body(texts)):
                return tf.zeros([tf.shape(texts)[0], 2])

    tf.saved_model.save(Module(), str(folder))
    return str(folder)


def test_a_module_that_writes_a_file_is_refused_before_it_runs(extract, tf, hub, tmp_path):
    from embedx_tfhub.safe_module import scan

    marker = tmp_path / "written-by-the-module"
    folder = _module(tf, tmp_path / "writer", lambda texts: [tf.io.write_file(str(marker), "pwned")])
    hub.load(folder)(tf.constant(["x"]))  # the payload is real: calling the module writes the file
    assert marker.exists()
    marker.unlink()
    assert any("WriteFile" in p for p in scan(folder))
    with pytest.raises(EmbedderUnavailable, match=r"WriteFile op .*trust_module=true"):
        extract(["hello"], "tfhub-text", model=folder)
    assert not marker.exists()
    # The user's explicit trust is an embedder option: the scan is skipped and the module runs as written.
    try:
        extract(["hello"], "tfhub-text", model=folder, trust_module="true")
    except EmbedxError as exc:  # whatever it returns, it was not refused by the scan
        assert "WriteFile op" not in str(exc)
    assert marker.exists()


@pytest.mark.parametrize("kind", ["read", "glob", "save"])
def test_modules_that_read_list_or_save_outside_themselves_are_refused(tf, tmp_path, kind):
    from embedx_tfhub.safe_module import scan

    secret = tmp_path / "secret.txt"
    secret.write_text("another file's bytes")
    bodies = {
        "read": lambda texts: [tf.io.read_file(str(secret))],
        "glob": lambda texts: [tf.io.matching_files(str(tmp_path / "*"))],
        "save": lambda texts: [tf.raw_ops.SaveV2(prefix=str(tmp_path / "ckpt"), tensor_names=["v"],
                                                 shape_and_slices=[""], tensors=[tf.constant([1.0])])],
    }
    found = scan(_module(tf, tmp_path / kind, bodies[kind]))
    expected = {"read": "ReadFile", "glob": "MatchingFiles", "save": "not the module's saver"}[kind]
    assert any(expected in p for p in found), found


def test_the_plugins_own_modules_pass(modules):
    from embedx_tfhub.safe_module import scan

    for name, folder in modules.items():
        assert scan(folder) == [], name


def test_a_damaged_saved_model_is_refused_not_crashed(tmp_path):
    from embedx_tfhub.safe_module import check_module

    (tmp_path / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff\xff garbage")
    with pytest.raises(EmbedderUnavailable, match="cannot be parsed"):
        check_module(tmp_path)


def test_trusting_a_module_skips_the_scan(tf, tmp_path):
    from embedx_tfhub import handles

    folder = _module(tf, tmp_path / "reader", lambda texts: [tf.io.read_file(str(tmp_path / "x"))])
    with pytest.raises(EmbedderUnavailable, match="ReadFile"):
        handles.resolve(folder)
    assert handles.resolve(folder, trust_module=True) == folder
