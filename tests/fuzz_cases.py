"""Seeded mutations of a valid feature file, run through ``info``, ``export`` and ``extract``.

Run by ``test_fuzz.py`` in a child process, because a damaged HDF5 file can crash libhdf5
itself: the child writes the case it is on to a progress file before each case, so a crash or
a hang names its case. Each case must end in exit 0 (correct shape) or one clear error
(exit 2, no traceback). Usage: ``python fuzz_cases.py WORKDIR SEED SECONDS MAX_CASES``.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np

TEXTS = ["a gripping film", "dull and far too long", "", "a gripping film", "caf\u00e9 \u200b ok", "x " * 40]
NEW_TEXT = "a brand new text\n"


def build_valid(path: Path) -> None:
    """Through the public API, so the file is whatever the current store writes."""
    import embedx

    embedx.extract(TEXTS, "word-stats", path, name="t", outputs=["doc", "tokens"],
                   columns={"label": ["pos", "neg", "neg", "pos", "pos", "neg"], "n": [1, 2, 3, 4, 5, 6]})
    embedx.extract(TEXTS, "hashing-ngrams", path, name="t", options={"dim": 16})


def copy_store(valid: Path, target: Path) -> list[Path]:
    """Copy the feature file and its segment folder (if the store writes one) under a new name."""
    target.parent.mkdir()
    shutil.copy(valid, target)
    files = [target]
    segments = valid.with_name(valid.name + ".segments")
    if segments.is_dir():
        copied = shutil.copytree(segments, target.with_name(target.name + ".segments"))
        files += sorted(p for p in Path(copied).iterdir() if p.suffix == ".h5")
    return files


def mutate_bytes(data: bytearray, rng: random.Random) -> str:
    kind = rng.choice(["flip", "flip", "flip", "truncate", "zero", "splice"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "zero":
        start = rng.randrange(len(data))
        data[start:start + rng.randint(1, 512)] = bytes(min(len(data) - start, rng.randint(1, 512)))
    else:  # copy one block over another: plausible-looking but misplaced metadata
        a, b, n = rng.randrange(len(data)), rng.randrange(len(data)), rng.randint(8, 256)
        block = data[a:a + n]
        data[b:b + len(block)] = block
    return kind


def _random_value(rng: random.Random):
    return rng.choice([
        lambda: rng.choice([0, -1, 10**12, 2**62, 7]),
        lambda: rng.choice(["", "{", "[]", "{}", "[1, 2", '[{"name": "doc"}]', "null", "\ud7ff" * 3, "x" * 5000]),
        lambda: json.dumps([{"name": "doc", "level": rng.choice(["document", "token", "x"]),
                             "dim": rng.choice([0, 4, 2, -1, 10**9]), "per_layer": rng.random() < 0.3}]),
        lambda: np.float64(rng.choice([np.nan, np.inf, 1.5])),
        lambda: np.arange(rng.randint(0, 5)),
        lambda: b"\xff\xfe bytes",
    ])()


def mutate_attrs(path: Path, rng: random.Random) -> str:
    """One structural or attribute edit made with h5py (a file a buggy tool could write)."""
    with h5py.File(path, "r+") as f:
        objects: list[str] = ["/"]
        f.visit(objects.append)
        name = rng.choice(objects)
        obj = f[name]
        kind = rng.choice(["set-attr", "set-attr", "del-attr", "del-object", "swap-dataset"])
        if kind == "set-attr":
            keys = list(obj.attrs) or ["rows"]
            obj.attrs[rng.choice(keys + ["rows", "config", "outputs", "columns"])] = _random_value(rng)
        elif kind == "del-attr" and len(obj.attrs):
            del obj.attrs[rng.choice(list(obj.attrs))]
        elif kind == "del-object" and name != "/":
            del f[name]
        elif kind == "swap-dataset" and isinstance(obj, h5py.Dataset):
            shape = tuple(max(0, n + rng.choice([-1, 0, 1])) for n in obj.shape)
            dtype = rng.choice(["f4", "f2", "i8", "S32", "u1", h5py.string_dtype()])
            del f[name]
            f.create_dataset(name, shape=shape, dtype=dtype)
        return f"{kind} {name}"


def run(workdir: Path, seed: int, seconds: float, max_cases: int) -> dict:
    from typer.testing import CliRunner

    import fakes
    from embedx import registry as registry_module
    from embedx.cli import app

    registry_module.set_registry(registry_module.build_registry(extra_plugins=[("fakes", fakes)]))
    progress = workdir / "progress"
    valid = workdir / "valid.h5"
    build_valid(valid)
    source = workdir / "new.txt"
    source.write_text(NEW_TEXT)
    runner = CliRunner()
    baseline = workdir / "baseline.npy"
    assert runner.invoke(app, ["export", str(valid), "-e", "word-stats", "-o", str(baseline)]).exit_code == 0
    expected = np.load(baseline)
    counts = {"cases": 0, "refused": 0, "accepted": 0, "silent_value_changes": 0, "by_kind": {}}
    failures: list[str] = []
    start = time.monotonic()
    rng = random.Random(seed)
    while counts["cases"] < max_cases and time.monotonic() - start < seconds:
        case = counts["cases"]
        case_rng = random.Random(rng.random())
        target = workdir / f"case{case}" / valid.name  # segment paths include the file name
        files = copy_store(valid, target)
        victim = case_rng.choice(files)  # the index file or one of its segment files, if any
        if case_rng.random() < 0.6:
            data = bytearray(victim.read_bytes())
            kind = mutate_bytes(data, case_rng)
            victim.write_bytes(bytes(data))
        else:
            kind = mutate_attrs(victim, case_rng)
        kind = f"{kind} in {victim.name}"
        progress.write_text(f"case {case} (seed {seed}): {kind}")
        label = kind.split()[0] + ("" if victim == target else " (segment)")
        counts["by_kind"][label] = counts["by_kind"].get(label, 0) + 1
        out = target.parent / "out.npy"
        for args in (["info", str(target)], ["export", str(target), "-e", "word-stats", "-o", str(out)],
                     ["extract", str(source), "-e", "word-stats", "-o", str(target), "--no-progress"],
                     ["info", str(target)]):
            result = runner.invoke(app, args)
            clean = result.exception is None or isinstance(result.exception, SystemExit)
            if not clean or result.exit_code not in (0, 2) or "Traceback" in result.output:
                failures.append(f"case {case} ({kind}): `embedx {args[0]}` exit {result.exit_code}: "
                                f"{result.exception!r} {result.output[-300:]}")
                break
            if args[0] == "export" and result.exit_code == 0:
                got = np.load(out)
                if got.shape != expected.shape:
                    failures.append(f"case {case} ({kind}): export gave shape {got.shape}, expected {expected.shape}")
                elif not np.array_equal(got, expected):
                    counts["silent_value_changes"] += 1
            if result.exit_code == 2:
                counts["refused"] += 1
                break  # the file was refused: later commands would only repeat it
        else:
            counts["accepted"] += 1
        shutil.rmtree(target.parent, ignore_errors=True)
        counts["cases"] += 1
    counts["seconds"] = round(time.monotonic() - start, 1)
    counts["failures"] = failures
    progress.write_text("done")
    return counts


if __name__ == "__main__":
    workdir, seed, seconds, max_cases = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    summary = run(workdir, seed, seconds, max_cases)
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
