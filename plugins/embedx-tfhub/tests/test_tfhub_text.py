"""Text-embedding modules, handles, the TF Hub cache, and the offline error."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from embedx.plugin_api import EmbedderUnavailable, RegistryError
from embedx_tfhub import handles
from embedx_tfhub.testing.text_module import WORDS
from embedx_tfhub.text_embedding import PRESETS

TEXTS = ["The film was good!", "a dull, boring movie", "", "zzz unknown words"]
SWIVEL_URL = PRESETS["gnews-swivel-20dim"][0]


def test_text_module_vectors_match_the_module(extract, modules, hub, tf):
    report, stored = extract(TEXTS, "tfhub-text", model=modules["text"])
    assert report.computed == 4
    vectors = stored.doc(TEXTS, "doc")
    module = hub.load(modules["text"])
    np.testing.assert_allclose(vectors, module(tf.constant(TEXTS)).numpy(), atol=1e-6)
    assert vectors.shape == (4, 20)
    assert not vectors[[2, 3]].any()  # "" and unknown words: OOV buckets, zero rows
    # sqrt-n combiner over the tokens, punctuation removed, no lowercasing ("The" is out of vocabulary)
    rng = np.random.default_rng(0)
    table = {w: rng.normal(0, 1, 20) for w in WORDS}  # what build_text_module draws by default
    expected = (table["film"] + table["was"] + table["good"]) / np.sqrt(4)
    np.testing.assert_allclose(vectors[0], expected, atol=1e-5)


def test_tf1_style_default_signature_is_used_when_the_module_is_not_callable(modules, monkeypatch):
    from embedx_tfhub.text_embedding import TextEmbedding

    embedder = TextEmbedding(model=modules["text"])
    embedder.requested_outputs = ("doc",)
    real = handles.load(modules["text"])

    class SignaturesOnly:  # what hub.load returns for a TF1 Hub format module: signatures, no __call__
        signatures = real.signatures

    monkeypatch.setattr(handles, "load", lambda handle, trust_module=False: SignaturesOnly())
    embedder.load()
    np.testing.assert_allclose(embedder.embed_batch(TEXTS).outputs["doc"], real(np.array(TEXTS)).numpy(), atol=1e-6)


@pytest.mark.parametrize("embedder", ["gnews-swivel-20dim", "nnlm-en-dim50", "nnlm-en-dim128"])
def test_presets_fail_offline_at_once_with_a_clear_error(extract, embedder, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty-cache"))
    started = time.perf_counter()
    with pytest.raises(EmbedderUnavailable) as info:
        extract(["a text"], embedder)
    assert time.perf_counter() - started < 10
    message = str(info.value)
    url = PRESETS[embedder][0]
    assert url in message and "not in the TF Hub cache" in message
    assert str(tmp_path / "empty-cache" / hashlib.sha1(url.encode()).hexdigest()) in message


def test_a_cached_url_loads_offline_from_tfhub_cache_dir(extract, modules, hub, tmp_path, monkeypatch):
    cache = tmp_path / "tfhub-cache"
    folder = cache / hashlib.sha1(SWIVEL_URL.encode("utf8")).hexdigest()
    shutil.copytree(modules["text"], folder)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    assert hub.resolve(SWIVEL_URL) == str(folder)  # the folder tensorflow_hub itself computes, offline
    report, stored = extract(TEXTS, "gnews-swivel-20dim")
    _, direct = extract(TEXTS, "tfhub-text", model=modules["text"], store=tmp_path / "direct.h5")
    np.testing.assert_array_equal(stored.doc(TEXTS, "doc"), direct.doc(TEXTS, "doc"))
    assert handles.identity(SWIVEL_URL) == {"handle": SWIVEL_URL}


def test_a_lock_left_by_a_dead_process_does_not_make_tfhub_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / (hashlib.sha1(SWIVEL_URL.encode()).hexdigest() + ".lock")
    import socket

    lock.write_text(f"{socket.gethostname()}.{dead.pid}.0123abcd")
    started = time.perf_counter()
    with pytest.raises(EmbedderUnavailable):
        handles.resolve(SWIVEL_URL)
    assert time.perf_counter() - started < 10  # tensorflow_hub would otherwise wait up to 10 minutes
    assert not lock.exists()


def test_local_handles_are_checked_and_hashed(registry, modules, tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        registry.create("tfhub-text", {"model": str(tmp_path / "missing")})
    with pytest.raises(RegistryError, match="no SavedModel"):
        registry.create("tfhub-text", {"model": str(tmp_path)})
    copy = shutil.copytree(modules["text"], tmp_path / "copy")
    # the module's content, not its place, keys the cache
    assert handles.identity(str(copy)) == handles.identity(modules["text"])
    assert "module_sha256" in handles.identity(str(copy))


def test_cli_offline_error_is_one_clear_line_without_tensorflow_noise(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("a text\nanother\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")} | {"TFHUB_CACHE_DIR": str(tmp_path / "c")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "embedx.cli", "extract", str(texts), "-e", "nnlm-en-dim50",
                           "-o", str(tmp_path / "f.h5"), "--no-progress"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert time.perf_counter() - started < 60  # TensorFlow's import, then an immediate failure
    assert done.returncode == 2, done.stderr
    assert "https://tfhub.dev/google/nnlm-en-dim50/2 is not in the TF Hub cache" in done.stderr
    noise = [line for line in done.stderr.splitlines() if "cuda" in line.lower() or "absl" in line or "oneDNN" in line]
    assert not noise, done.stderr


def test_the_old_option_name_handle_still_works_with_a_warning(extract, modules):
    first, _ = extract(TEXTS, "tfhub-text", model=modules["text"])
    with pytest.warns(FutureWarning, match="'handle' is now called 'model'"):
        again, _ = extract(TEXTS, "tfhub-text", handle=modules["text"])
    assert again.set_name == first.set_name and again.computed == 0
