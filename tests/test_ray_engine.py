"""The Ray engine against the local path: same batches in, identical results out, same errors.

One local 2-CPU Ray instance serves the whole module (starting Ray costs seconds). Its workers
see the fake plugin through ``EMBEDX_PLUGIN_MODULES``, as a cluster's workers see plugins.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedx.embedder import Embeddings, Ragged
from embedx.engines.ray_engine import RayEngine, fingerprint
from embedx.errors import EmbedderOutputError, EmbedderUnavailable, OptionError

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="make install installs embedx[ray]; without it this module cannot run")
    assert not ray.is_initialized()
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"PYTHONPATH": path, "EMBEDX_PLUGIN_MODULES": "fakes"}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _texts(n: int) -> list[str]:
    words = ["gripping", "dull", "a", "film", "far", "too", "long", "funny", "ÿ\u00e9", ""]
    return [" ".join(words[(i * k) % len(words)] for k in range(i % 9)) for i in range(n)]


def _batches(texts: list[str], size: int) -> list[tuple[list[str], str]]:
    return [(texts[i:i + size], f"batch {i // size + 1}") for i in range(0, len(texts), size)]


def _same(local, remote) -> None:
    assert isinstance(remote, Embeddings) and list(remote.truncated) == list(local.truncated)
    assert set(remote.outputs) == set(local.outputs)
    assert np.array_equal(remote.outputs["doc"], local.outputs["doc"])
    assert remote.outputs["doc"].dtype == local.outputs["doc"].dtype
    here, there = local.outputs["tokens"], remote.outputs["tokens"]
    assert isinstance(there, Ragged) and there.tokens == here.tokens
    assert all(np.array_equal(a, b) for a, b in zip(here.arrays, there.arrays, strict=True))


def test_pool_returns_the_local_results_in_order_then_the_local_error(ray_cluster, registry):
    options = {"fail_on": "BOOM", "max_length": 5}
    local, _ = registry.create("word-stats", options)
    local.requested_outputs = ("doc", "tokens")
    texts = _texts(150)
    batches = _batches(texts, 4) + [(["fine", "a BOOM here"], "batch 39 (input lines 7, 9)")]
    expected = fingerprint(local, registry.entry("word-stats").cls.versioned)
    got = []
    with RayEngine("word-stats", options, ["doc", "tokens"], plugin="fakes", workers=2, expected=expected) as engine:
        with pytest.raises(EmbedderOutputError) as failed:
            for result in engine.map(iter(batches)):
                got.append(result)
        # the pool survives a failing batch, and a second map reuses the loaded actors
        again = list(engine.map(iter(batches[:3])))
        assert [o.name for o in engine.output_specs()] == ["doc", "tokens"]
    message = str(failed.value)
    assert "'word-stats' (plugin 'fakes') raised on batch 39 (input lines 7, 9)" in message
    assert "cannot embed 'BOOM'" in message and "nothing from this batch was saved" in message
    assert len(got) == len(batches) - 1
    for (batch, _), result in zip(batches, got, strict=False):
        _same(local.embed_batch(batch), result)
    for (batch, _), result in zip(batches[:3], again, strict=True):
        _same(local.embed_batch(batch), result)


def test_a_worker_that_would_compute_something_else_is_refused(ray_cluster, registry):
    with RayEngine("word-stats", {}, ["doc"], plugin="fakes", workers=1,
                   expected='{"identity": {"model": "another file"}, "versions": {}}') as engine:
        with pytest.raises(EmbedderUnavailable, match="could not load on Ray node .*would compute something else"):
            list(engine.map(iter([(["a text"], "batch 1")])))


def test_a_pool_larger_than_the_cluster_is_refused_at_once(ray_cluster):
    with pytest.raises(OptionError, match="3 workers need 3 CPUs, the Ray cluster has 2"):
        RayEngine("word-stats", {}, ["doc"], workers=3).start()
    with pytest.raises(OptionError, match="--gpus-per-worker"):
        RayEngine("word-stats", {}, ["doc"], workers=1, gpus_per_worker=1).start()


def test_without_ray_the_engine_is_one_line_with_the_install_command():
    code = ("import sys; sys.modules['ray'] = None\n"
            "from embedx.engines.ray_engine import RayEngine\n"
            "from embedx.errors import EmbedxError\n"
            "try:\n    RayEngine('hashing-ngrams').start()\nexcept EmbedxError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--engine ray" in done.stdout and "pip install 'embedx[ray]'" in done.stdout
