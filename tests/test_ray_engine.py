"""The Ray engine against the local path: same batches in, identical results out, same errors.

One local 2-CPU Ray instance serves the whole module (starting Ray costs seconds). Its workers
see the fake plugin through ``EMBEDX_PLUGIN_MODULES``, as a cluster's workers see plugins.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import embedx
from embedx.contract.embedder import Embeddings, Ragged
from embedx.contract.errors import EmbedderOutputError, EmbedderUnavailable, OptionError
from embedx.pipeline.engines.ray_engine import EmbedWorker, RayEngine, fingerprint

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="make install installs embedx[ray]; without it this module cannot run")
    assert not ray.is_initialized()
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    saved = os.environ.get("RAY_worker_niceness")
    os.environ["RAY_worker_niceness"] = "0"  # as embedx's own local instances: workers at the tests' priority
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"PYTHONPATH": path, "EMBEDX_PLUGIN_MODULES": "fakes"}})
    finally:
        if saved is None:
            os.environ.pop("RAY_worker_niceness")
        else:
            os.environ["RAY_worker_niceness"] = saved
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


def test_a_worker_that_would_compute_something_else_refuses_to_load(registry):
    """The actor class itself, in this process: what it reports when its model differs from the driver's."""
    worker = EmbedWorker("word-stats", {}, ["doc"], '{"identity": {"model": "another file"}, "versions": {}}')
    payload = worker({"index": np.array([0]), "texts": [json.dumps(["a text"]).encode("utf-8")]})["payload"][0]
    with pytest.raises(EmbedderUnavailable, match="could not load on Ray node .*would compute something else"):
        RayEngine("word-stats", plugin="fakes")._unpack(payload, "batch 1")
    same = EmbedWorker("word-stats", {}, ["doc"], fingerprint(registry.create("word-stats")[0], ()))
    payload = same({"index": np.array([0]), "texts": [json.dumps(["a text"]).encode("utf-8")]})["payload"][0]
    assert RayEngine("word-stats")._unpack(payload, "batch 1").outputs["doc"].shape == (1, 4)


def test_a_pool_larger_than_the_cluster_is_refused_at_once(ray_cluster):
    with pytest.raises(OptionError, match="3 workers need 3 CPUs, the Ray cluster has 2"):
        RayEngine("word-stats", {}, ["doc"], workers=3).start()
    with pytest.raises(OptionError, match="--gpus-per-worker"):
        RayEngine("word-stats", {}, ["doc"], workers=1, gpus_per_worker=1).start()


def test_without_ray_extract_engine_ray_is_one_line_with_the_install_command(tmp_path):
    """Ray made unimportable in a fresh process: the CLI refuses before reading input or creating the file."""
    (tmp_path / "t.txt").write_text("a film\n", encoding="utf-8")
    code = ("import sys; sys.modules['ray'] = None\n"
            "sys.argv = ['embedx', 'extract', 't.txt', '-e', 'hashing-ngrams', '-o', 'f.h5', '--engine', 'ray']\n"
            "import embedx.cli\n"
            "embedx.cli.main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "--engine ray" in done.stderr and "pip install 'embedx[ray]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "f.h5").exists()


def _stored(path: Path, set_name: str, input_name: str) -> dict:
    with embedx.open_store(path) as store:
        fs = store.feature_set(set_name)
        table = store.input(input_name)
        tokens = fs.tokens(input=input_name, output="tokens")
        return {"set_keys": sorted(fs.group["keys"][:].tolist()), "table_keys": table.keys.tolist(),
                "texts": table.texts, "lines": table.lines.tolist(), "empty": table.empty.tolist(),
                "label": table.column("label").tolist(), "outputs": fs.outputs,
                "doc": fs.vectors(input=input_name, output="doc"), "truncated": fs.truncated(input=input_name).tolist(),
                "tokens": [t for t, _ in tokens], "token_vectors": [v for _, v in tokens]}


def _assert_identical(a: dict, b: dict) -> None:
    for name in ("set_keys", "table_keys", "texts", "lines", "empty", "label", "outputs", "truncated", "tokens"):
        assert a[name] == b[name], name
    assert a["doc"].dtype == b["doc"].dtype and np.array_equal(a["doc"], b["doc"])
    assert all(np.array_equal(x, y) for x, y in zip(a["token_vectors"], b["token_vectors"], strict=True))


def test_extract_on_ray_writes_what_the_single_process_writes(ray_cluster, registry, tmp_path):
    texts = _texts(400)
    texts[50:60] = texts[0:10]  # duplicates are computed once either way
    labels = [f"l{i % 3}" for i in range(len(texts))]
    settings = {"options": {"max_length": 6}, "outputs": ["doc", "tokens"], "batch_size": 7, "registry": registry,
                "name": "reviews", "columns": {"label": labels}}
    local = embedx.extract(texts, "word-stats", tmp_path / "local.h5", **settings)
    remote = embedx.extract(texts, "word-stats", tmp_path / "ray.h5", engine="ray", workers=2, **settings)
    assert (remote.set_name, remote.computed, remote.unique, remote.truncated_input) == \
        (local.set_name, local.computed, local.unique, local.truncated_input)
    _assert_identical(_stored(tmp_path / "local.h5", local.set_name, "reviews"),
                      _stored(tmp_path / "ray.h5", remote.set_name, "reviews"))
    # nothing new: nothing computed, and no pool is started (5 workers do not fit the 2-CPU cluster)
    again = embedx.extract(texts, "word-stats", tmp_path / "ray.h5", engine="ray", workers=5, **settings)
    assert again.computed == 0 and again.cached == local.unique


def test_options_that_need_ray_are_refused_for_the_local_engine(registry, tmp_path):
    with pytest.raises(OptionError, match="--workers only apply to --engine ray"):
        embedx.extract(["a"], "word-stats", tmp_path / "f.h5", workers=2, registry=registry)
    with pytest.raises(OptionError, match="--engine 'spark': choose local or ray"):
        embedx.extract(["a"], "word-stats", tmp_path / "f.h5", engine="spark", registry=registry)
    assert not (tmp_path / "f.h5").exists()


def _segments(out: Path) -> int:
    """Durable segment files written so far (one per 50 computed rows here)."""
    folder = out.with_name(out.name + ".segments")
    return len([f for f in folder.iterdir() if not f.name.startswith(".")]) if folder.is_dir() else 0


def _cli(corpus: Path, out: Path, address: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "embedx.cli", "extract", str(corpus), "-e", "hashing-ngrams", "-o", str(out),
            "-O", "dim=256", "--batch-size", "10", "--checkpoint-rows", "50", "--no-progress", "--json",
            "--engine", "ray", "--workers", "2", "--ray-address", address, *extra]


@pytest.mark.slow
def test_cli_driver_killed_mid_run_then_rerun_gives_the_single_process_result(ray_cluster, tmp_path):
    lines = [" ".join(f"w{(i * 7 + k) % 501}" for k in range(3 + i % 11)) for i in range(2500)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "ray.h5"
    driver = subprocess.Popen(_cli(corpus, out, ray_cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and driver.poll() is None and _segments(out) < 4:
        time.sleep(0.05)
    assert driver.poll() is None, f"the run ended before it could be killed: {driver.communicate()}"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done = subprocess.run(_cli(corpus, out, ray_cluster), capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 0 < report["computed"] < report["unique"], "the killed run's finished batches were not kept"
    local = embedx.extract(lines, "hashing-ngrams", tmp_path / "local.h5", name="corpus", options={"dim": 256},
                           batch_size=10)
    with embedx.open_store(out) as a, embedx.open_store(tmp_path / "local.h5") as b:
        fa, fb = a.feature_set(report["set_name"]), b.feature_set(local.set_name)
        assert report["set_name"] == local.set_name
        assert sorted(fa.group["keys"][:].tolist()) == sorted(fb.group["keys"][:].tolist())
        assert a.input("corpus").texts == b.input("corpus").texts == lines
        assert np.array_equal(fa.vectors(input="corpus"), fb.vectors(input="corpus"))


def test_a_local_extract_never_imports_ray(tmp_path):
    (tmp_path / "t.txt").write_text("a film\nanother film\n", encoding="utf-8")
    code = ("import sys\n"
            "sys.argv = ['embedx', 'extract', 't.txt', '-e', 'hashing-ngrams', '-o', 'f.h5', '--no-progress']\n"
            "import embedx.cli\n"
            "try:\n    embedx.cli.main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print('RAY', 'ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "RAY False"


def test_write_on_workers_writes_what_the_single_process_writes(ray_cluster, registry, tmp_path):
    texts = _texts(300)
    texts[40:50] = texts[0:10]
    labels = [f"l{i % 3}" for i in range(len(texts))]
    settings = {"options": {"max_length": 6}, "outputs": ["doc", "tokens"], "batch_size": 7, "registry": registry,
                "name": "reviews", "columns": {"label": labels}}
    embedx.extract(texts[:120], "word-stats", tmp_path / "local.h5", **settings | {"columns": {"label": labels[:120]}})
    local = embedx.extract(texts, "word-stats", tmp_path / "local.h5", **settings)
    # two runs each: the second appends after token rows the first committed
    embedx.extract(texts[:120], "word-stats", tmp_path / "ray.h5", engine="ray", workers=2, write_on_workers=True,
                   **settings | {"columns": {"label": labels[:120]}})
    remote = embedx.extract(texts, "word-stats", tmp_path / "ray.h5", engine="ray", workers=2, write_on_workers=True,
                            **settings)
    assert (remote.set_name, remote.computed, remote.truncated_input) == \
        (local.set_name, local.computed, local.truncated_input), remote.notes
    _assert_identical(_stored(tmp_path / "local.h5", local.set_name, "reviews"),
                      _stored(tmp_path / "ray.h5", remote.set_name, "reviews"))
    quarantine = tmp_path / "ray.h5.quarantine"
    assert not quarantine.exists(), (remote.notes, sorted(p.name for p in quarantine.iterdir()))
    with pytest.raises(OptionError, match="--write-on-workers only applies to --engine ray"):
        embedx.extract(["a"], "word-stats", tmp_path / "f.h5", write_on_workers=True, registry=registry)


def test_a_forged_worker_segment_is_refused_and_set_aside(registry, tmp_path):
    """What the driver does with a worker's segment (no Ray needed): anything but the batch it sent is refused."""
    from embedx.contract.errors import StoreError
    from embedx.pipeline.keys import content_keys
    from embedx.pipeline.output_checks import BatchChecker, OutputShape
    from embedx.store.keyindex import binary_to_hex
    from embedx.store.segment import write_set_segment
    from embedx.store.transaction import writer

    embedder, _ = registry.create("word-stats", {})
    embedder.requested_outputs = ("doc",)
    shapes = [OutputShape("doc", "document", 4)]
    meta = {"embedder": "word-stats", "plugin": "fakes", "config_hash": "c" * 64, "config": {}, "dtype": "float32",
            "compression": None, "outputs": [s.as_dict() for s in shapes]}
    checker = BatchChecker("word-stats", "fakes", shapes, np.dtype("float32"))
    texts = ["a film", "far too long", "funny"]
    keys = binary_to_hex(content_keys(texts))
    arrays, truncated = checker.check(embedder.embed_batch(texts), 3, "batch 1")
    path = tmp_path / "f.h5"
    with writer(path) as tx:
        tx.open_set("s", lambda: meta)
        directory, name, seq = tx.reserve_segment()
        forged = dict(arrays, keys=keys[[1, 0, 2]], truncated=truncated)  # another text's vectors under a key
        file = write_set_segment(directory, name, meta, seq, seq, forged, {}).file
        with pytest.raises(StoreError, match="refused the segment a worker wrote .*its keys are not the keys"):
            tx.adopt(file, seq, seq, keys)
        assert not (directory / file).exists() and (tmp_path / "f.h5.quarantine" / file).exists()
        other = write_set_segment(directory, name, meta | {"dtype": "float16"}, seq, seq,
                                  dict(arrays, keys=keys, truncated=truncated), {}).file
        with pytest.raises(StoreError, match="configuration, outputs or dtype differ"):
            tx.adopt(other, seq, seq, keys)
        with pytest.raises(StoreError, match="is not a file of the segment folder"):
            tx.adopt("../../etc/passwd", seq, seq, keys)
        with pytest.raises(StoreError, match="is not that of segment"):
            tx.adopt(file.replace(f"{seq:08d}-", f"{seq + 1:08d}-"), seq, seq, keys)
        with pytest.raises(StoreError, match="needs a folder every worker and the driver share"):
            tx.adopt(f"set@s@{seq:08d}-{seq:08d}@0123abcd.h5", seq, seq, keys)
        _, _, seq = tx.reserve_segment()
        good = write_set_segment(directory, name, meta, seq, seq, dict(arrays, keys=keys, truncated=truncated), {})
        assert tx.adopt(good.file, seq, seq, keys).tolist() == truncated.tolist()
        tx.commit()
    with embedx.open_store(path) as store:
        assert store.feature_set("s").group["keys"][:].tolist() == keys.tolist()


class _WorkersInProcess:
    """The Ray pool's --write-on-workers side without Ray: the real ``EmbedWorker._write`` in this process
    (token bases handed out in order, as the ``TokenBases`` actor does), and ``spoil`` applied to the
    first segment of the first group: what a damaged, forged or foreign worker file looks like to the driver."""

    workers = 2

    def __init__(self, registry, spoil, segment_bytes, settings, resolved, write):
        self.registry, self.spoil, self.resolved = registry, spoil, resolved
        self.write = dict(write, segment_bytes=segment_bytes)
        self.bases = dict(self.write.pop("start"))
        self.embedder_id = settings.embedder
        self.spoiled: list[str] = []

    def start(self):
        from embedx.pipeline.engines import ray_engine

        worker = object.__new__(EmbedWorker)
        worker.embedder, _ = self.registry.create(self.embedder_id, {"max_length": 6})
        worker.embedder.requested_outputs = tuple(self.resolved.outputs)
        worker.embedder.load()
        worker.specs, worker.write = tuple(worker.embedder.output_specs()), self.write
        worker.checker = ray_engine._worker_checker(worker.embedder, self.write)
        worker._claim = self._claim
        self.worker = worker

    def _claim(self, job, counts, last=True):
        bases = dict(self.bases)
        for name, count in counts.items():
            self.bases[name] = self.bases.get(name, 0) + count
        return bases

    def output_specs(self):
        return self.worker.specs

    def map(self, items):
        for _, _, job in items:
            result = self.worker._write(job)
            if not self.spoiled:
                first = result["segments"][0]
                self.spoiled.append(first["file"])
                first["file"] = self.spoil(Path(self.write["directory"]), first["file"])
            yield result

    def close(self, drain=True):
        pass


def _damaged(folder: Path, file: str) -> str:
    data = (folder / file).read_bytes()
    (folder / file).write_bytes(data[:len(data) // 2])  # cut short, as by a failing shared disk
    return file


def _wrong_keys(folder: Path, file: str) -> str:
    import h5py

    with h5py.File(folder / file, "r+") as handle:  # another text's row under a key
        keys = handle["keys"][:]
        handle["keys"][:2] = keys[[1, 0]]
    return file


def _foreign(folder: Path, file: str) -> str:
    return sorted(p.name for p in folder.glob("set@*.h5") if p.name != file)[0]  # a segment of an earlier run


@pytest.mark.parametrize("segment_bytes", [None, 1])  # one segment per group; one per batch
@pytest.mark.parametrize("spoil", [_damaged, _wrong_keys, _foreign])
def test_a_refused_worker_segment_is_computed_again_not_lost(registry, tmp_path, monkeypatch, spoil, segment_bytes):
    """Whatever a worker's file turns out to be, the driver sets it aside and computes its rows itself."""
    from embedx.pipeline import extraction

    texts = _texts(90)
    settings = {"options": {"max_length": 6}, "outputs": ["doc", "tokens"], "batch_size": 7, "registry": registry,
                "name": "reviews", "columns": {"label": [f"l{i % 3}" for i in range(90)]}}
    first = settings | {"columns": {"label": [f"l{i % 3}" for i in range(30)]}}
    embedx.extract(texts[:30], "word-stats", tmp_path / "local.h5", **first)
    local = embedx.extract(texts, "word-stats", tmp_path / "local.h5", **settings)
    embedx.extract(texts[:30], "word-stats", tmp_path / "w.h5", **first)
    pools = []

    def pool(registry_, settings_, resolved, write):
        pools.append(_WorkersInProcess(registry, spoil, segment_bytes, settings_, resolved, write))
        return pools[-1]

    monkeypatch.setattr(extraction, "RayEngineAdapter", pool)
    monkeypatch.setattr(extraction, "check_engine", lambda *args: None)
    report = embedx.extract(texts, "word-stats", tmp_path / "w.h5", engine="ray", workers=2, write_on_workers=True,
                            **settings)
    assert report.computed == local.computed > 0
    assert any("computed again on the driver" in note for note in report.notes)
    _assert_identical(_stored(tmp_path / "local.h5", local.set_name, "reviews"),
                      _stored(tmp_path / "w.h5", report.set_name, "reviews"))
    if spoil is not _foreign:
        assert (tmp_path / "w.h5.quarantine" / pools[0].spoiled[0]).exists()
    batches = -(-local.computed // 7)
    with embedx.open_store(tmp_path / "w.h5") as store:  # the first run's segment, then the workers' as written
        assert store.feature_set(report.set_name).group.attrs["segments"] == 1 + (2 if segment_bytes is None
                                                                                 else batches)


def test_token_bases_hand_each_segment_of_a_group_the_rows_before_it():
    """A group writing several segments claims once per segment; its last claim lets the next group go."""
    import asyncio

    from embedx.pipeline.engines.ray_engine import TokenBases

    async def claims():
        bases = TokenBases({"tokens": 10}, first=4)
        later = asyncio.ensure_future(bases.claim(5, {"tokens": 1}))  # waits for group 4 to finish
        first = await bases.claim(4, {"tokens": 3}, last=False)
        await asyncio.sleep(0)
        assert not later.done()
        second = await bases.claim(4, {"tokens": 2}, last=True)
        return first, second, await later, bases.bases

    assert asyncio.run(claims()) == ({"tokens": 10}, {"tokens": 13}, {"tokens": 15}, {"tokens": 16})
