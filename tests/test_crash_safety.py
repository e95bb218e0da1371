"""kill -9 a real `embedx extract` at random moments; re-running must give exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import embedx
from embedx.store import layout as L
from embedx.store.catalog import expire_retired
from embedx.store.open import open_checked

EMBEDX = [sys.executable, "-m", "embedx.cli"]


def make_corpus(path: Path, rows: int = 12000) -> None:
    """``path`` holds all rows; ``half-<name>`` the first half, so a second stage extends an existing file."""
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 8))) for _ in range(3000)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) for _ in range(rows)]
    lines[100:110] = lines[0:10]  # duplicates must stay deduplicated across crashes
    path.write_text("\n".join(lines) + "\n")
    (path.parent / f"half-{path.name}").write_text("\n".join(lines[: rows // 2]) + "\n")


def command(corpus: Path, out: Path) -> list[str]:
    return [*EMBEDX, "extract", str(corpus), "-e", "hashing-ngrams", "-o", str(out), "--batch-size", "50",
            "--checkpoint-rows", "100", "--no-progress", "-O", "ngram_max=3", "-O", "dim=512"]


def check_consistent(path: Path) -> None:
    """Whatever a kill left behind opens cleanly and has no duplicated keys or half rows."""
    if not path.exists():
        return
    with open_checked(path) as handle:
        for group in handle["sets"].values():
            keys = group["keys"][:]
            assert len(set(keys.tolist())) == len(keys)
            assert group["doc/values"].shape[0] == len(keys) == group["truncated"].shape[0]
            assert group.attrs["rows"] == len(keys)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    corpus = base / "corpus.txt"
    make_corpus(corpus)
    ref = base / "reference.h5"
    started = time.perf_counter()
    subprocess.run(command(corpus, ref), check=True, capture_output=True)
    return corpus, ref, time.perf_counter() - started


def wait_for(predicate, proc, timeout: float = 60.0) -> bool:
    """Poll until ``predicate()`` holds (True) or the process ends first (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def segments(out: Path, merged: bool = False) -> int:
    """Segment files in the store's folder (``merged``: only those a commit merged from several)."""
    try:
        names = [p.name for p in L.segment_dir(out).glob("set@*.h5")]
    except FileNotFoundError:
        return 0
    if merged:
        names = [n for n in names if n.split("@")[2].split("-")[0] != n.split("@")[2].split("-")[1]]
    return len(names)


def run_with_kills(corpus: Path, out: Path, rng: random.Random, attempts: int, during_commit: bool = False) -> int:
    """Start the extraction ``attempts`` times and SIGKILL it mid-run; return how many kills landed.

    Each kill waits until the run has made progress (a new durable segment, or with
    ``during_commit`` a merged segment or the new index being written), then a random moment more,
    so kills land inside the work whatever the machine's speed.
    """
    kills = 0
    for _ in range(attempts):
        before, merged = segments(out), segments(out, merged=True)
        proc = subprocess.Popen(command(corpus, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if during_commit:  # a merged segment exists, or the new index is being written: kill at once
            ready = wait_for(lambda m=merged: segments(out, merged=True) > m
                             or any(out.parent.glob(f".{out.name}.tmp-*")), proc)
        else:
            ready = wait_for(lambda b=before: segments(out) > b, proc)
            time.sleep(rng.uniform(0.0, 0.2))
        if ready and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        check_consistent(out)
    return kills


def read_all(path: Path, corpus: Path) -> np.ndarray:
    with embedx.open_store(path) as store:
        (info,) = store.sets()
        return store.feature_set(info.name).vectors(input=corpus.stem)


def test_killed_runs_resume_to_the_uninterrupted_result(reference, tmp_path):
    corpus, ref, duration = reference
    out = tmp_path / "killed.h5"
    rng = random.Random(1234)
    # Stage 1 creates the file under kills; stage 2 extends the existing file, killed while
    # computing and while the new file is being built beside the old one.
    half = corpus.parent / f"half-{corpus.name}"
    kills = run_with_kills(half, out, rng, attempts=3)
    kills += run_with_kills(half, out, rng, attempts=1, during_commit=True)
    kills += run_with_kills(corpus, out, rng, attempts=3)
    kills += run_with_kills(corpus, out, rng, attempts=1, during_commit=True)
    assert kills >= 4, f"only {kills} of 8 kills landed inside a run"
    final = subprocess.run(command(corpus, out), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    check_consistent(out)
    assert np.array_equal(read_all(out, corpus), read_all(ref, corpus))
    with h5py.File(out, "r") as a, h5py.File(ref, "r") as b:
        (ga,), (gb,) = a["sets"].values(), b["sets"].values()
        assert sorted(ga["keys"][:].tolist()) == sorted(gb["keys"][:].tolist())
    assert not Path(str(out) + ".lock").exists()  # removed by the clean exit
    committed = {Path(json.loads(t)["file"]).name for t in h5py.File(out, "r")["segments"].asstr()[:]}
    retired = expire_retired(L.segment_dir(out))  # what the previous index mapped, kept for its readers
    names = {p.name for p in L.segment_dir(out).iterdir()}
    assert names - {"retired.json", "store.json", "readers.lease"} == committed | retired  # no leftovers
    with h5py.File(out, "r") as f:  # the folder records the store the index names
        assert json.loads((L.segment_dir(out) / "store.json").read_text())["store"] == f.attrs["store_id"]


def test_second_writer_fails_at_once_and_corrupts_nothing(reference, tmp_path):
    corpus, _, duration = reference
    out = tmp_path / "shared.h5"
    first = subprocess.Popen(command(corpus, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not Path(str(out) + ".lock").exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        started = time.perf_counter()
        second = subprocess.run(command(corpus, out), capture_output=True, text=True)
        assert second.returncode == 2, second.stderr
        assert "is being written by another embedx process" in second.stderr
        # Refused before reading the input (tests/test_segment_store.py checks that exactly): far
        # quicker than a whole run, even on a loaded machine.
        assert time.perf_counter() - started < max(10.0, duration / 2)
    finally:
        assert first.wait(timeout=120) == 0
    check_consistent(out)
    with embedx.open_store(out) as store:
        assert store.sets()[0].rows == 11990


def test_ctrl_c_keeps_finished_batches_and_says_how_to_resume(reference, tmp_path):
    corpus, ref, duration = reference
    out = tmp_path / "interrupted.h5"
    proc = subprocess.Popen(command(corpus, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(max(0.6, duration * 0.5))
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130 and "re-run the same command to resume" in stderr
    check_consistent(out)
    resumed = subprocess.run([*command(corpus, out), "--json"], capture_output=True, text=True, check=True)
    report = json.loads(resumed.stdout)
    assert report["cached"] > 0 and report["cached"] + report["computed"] == report["unique"]
    assert np.array_equal(read_all(out, corpus), read_all(ref, corpus))


def test_compaction_killed_at_random_moments_loses_and_duplicates_nothing(reference, tmp_path):
    corpus, ref, _ = reference
    lines = corpus.read_text().splitlines()
    out = tmp_path / "compact.h5"
    for stop in (1500, 3000, 4500, 6000):  # four runs: four committed segments
        part = tmp_path / f"part{stop}.txt"
        part.write_text("\n".join(lines[:stop]) + "\n")
        subprocess.run(command(part, out), check=True, capture_output=True)
    expected = read_all(out, part)
    rng = random.Random(5)
    for _ in range(3):
        proc = subprocess.Popen([*EMBEDX, "compact", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        check_consistent(out)
        assert np.array_equal(read_all(out, part), expected)
    done = subprocess.run([*EMBEDX, "compact", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "-> 1," in done.stdout or "1 segment(s) -> 1" in done.stdout
    check_consistent(out)
    assert np.array_equal(read_all(out, part), expected)
