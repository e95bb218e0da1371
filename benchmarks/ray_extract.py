"""`--engine ray` with a pool of workers against the single process, same input, same run.

For GloVe-6B-50d (batches of 256) and MiniLM-L6 (batches of 32), extract the same synthetic
corpus twice into fresh files: once in this process, once on a pool of Ray actors (a local Ray
instance started once, as `ray.init` would on a laptop). Printed per embedder: wall time of both, the Ray run's overhead
per run and per batch, whether the two files hold identical vectors, keys and input tables,
and, for the pool alone on the same batches, the time until its first result (worker start plus
one model load per worker) and the steady-state time per batch against the in-process loop.
A last measurement sends tiny batches of a near-free embedder through warm workers to get
the fixed cost of one batch's round trip (driver -> queue -> actor -> driver).

    python benchmarks/ray_extract.py [--workers 2] [--glove-texts 50000] [--minilm-texts 1000]
    python benchmarks/ray_extract.py --ceiling 100000   # driver MB/s with and without --write-on-workers

On a 2-core machine a speed-up is not expected: two single-threaded workers compete with the
driver (which checks and writes every batch) for the same cores that the single process uses
with two threads. The figures are the fixed costs a user pays for the pool.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

import embedx
from embedx.pipeline.engines.ray_engine import RayEngine
from embedx.registry import get_registry

WORDS = ("the a film movie story plot actor actress scene music score director camera light dark funny sad "
         "gripping dull long short slow fast brilliant awful good bad great terrible moving cold warm clever "
         "stupid beautiful ugly honest fake real dream night day city love war family friend enemy hero").split()


def corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) for _ in range(n)]


def extract(texts: list[str], embedder: str, path: Path,
            **engine) -> tuple[float, embedx.pipeline.extraction.ExtractReport]:
    started = time.perf_counter()
    report = embedx.extract(texts, embedder, path, name="bench", **engine)
    return time.perf_counter() - started, report


def read_back(path: Path, set_name: str) -> tuple[np.ndarray, list[str], list[bytes]]:
    """Vectors in input order, the input table's texts, and the set's stored keys (sorted)."""
    with embedx.open_store(path) as store:
        fs = store.feature_set(set_name)
        vectors = fs.vectors(input="bench")
        texts = store.input("bench").texts
        keys = sorted(fs.group["keys"][:].tolist())
    return vectors, texts, keys


def compare(embedder: str, texts: list[str], workers: int, batch_size: int, where: Path) -> dict:
    local_time, local = extract(texts, embedder, where / f"{embedder}-local.h5", batch_size=batch_size)
    ray_time, remote = extract(texts, embedder, where / f"{embedder}-ray.h5", batch_size=batch_size, engine="ray",
                               workers=workers)
    a, a_texts, a_keys = read_back(where / f"{embedder}-local.h5", local.set_name)
    b, b_texts, b_keys = read_back(where / f"{embedder}-ray.h5", remote.set_name)
    batches = -(-remote.computed // batch_size)
    return {
        "embedder": embedder, "texts": len(texts), "computed": remote.computed, "batches": batches,
        "local_s": round(local_time, 2), "ray_s": round(ray_time, 2), "ray_over_local": round(ray_time / local_time, 2),
        "overhead_per_run_s": round(ray_time - local_time, 2),
        "overhead_per_batch_ms": round(1000 * (ray_time - local_time) / max(batches, 1), 2),
        "same_set": local.set_name == remote.set_name, "same_input_table": a_texts == b_texts,
        "same_keys": a_keys == b_keys, "array_equal": bool(np.array_equal(a, b)),
        "max_abs_diff": float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0,
    }


def pool_profile(embedder: str, texts: list[str], workers: int, size: int) -> dict:
    """The pool alone on the batches extract forms (longest texts first): start-up, then steady state per batch."""
    entry = get_registry().entry(embedder)
    unique = sorted(set(texts), key=lambda t: -len(t))
    batches = [(unique[i:i + size], f"batch {i // size + 1}") for i in range(0, len(unique), size)]
    local, _ = get_registry().create(embedder, {})
    local.requested_outputs = tuple(entry.cls.default_outputs)
    t0 = time.perf_counter()
    local.load()
    t1 = time.perf_counter()
    for batch, _ in batches:
        local.embed_batch(batch)
    local_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    with RayEngine(embedder, {}, list(entry.cls.default_outputs), workers=workers) as engine:
        results = engine.map(iter(batches))
        next(results)
        t3 = time.perf_counter()
        for _ in results:
            pass
        steady_s = time.perf_counter() - t3
    rest = max(len(batches) - 1, 1)
    return {"local_load_s": round(t1 - t0, 2), "pool_first_result_s": round(t3 - t2, 2),
            "local_ms_per_batch": round(1000 * local_s / len(batches), 2),
            "ray_steady_ms_per_batch": round(1000 * steady_s / rest, 2),
            "steady_overhead_ms_per_batch": round(1000 * (steady_s / rest - local_s / len(batches)), 2)}


def round_trip(n: int) -> dict:
    """Fixed cost of one batch: tiny batches of a near-free embedder, local against one warm worker."""
    texts = corpus(n, seed=7)
    embedder, _ = get_registry().create("hashing-ngrams", {"dim": 64})
    embedder.requested_outputs = ("doc",)
    started = time.perf_counter()
    for text in texts:
        embedder.embed_batch([text])
    local = time.perf_counter() - started
    out = {"batches": n, "local_ms_per_batch": round(1000 * local / n, 3)}
    for workers in (1, 2):
        with RayEngine("hashing-ngrams", {"dim": 64}, ["doc"], workers=workers) as engine:
            list(engine.map(iter([([t], "warm-up") for t in texts[:workers * 4]])))
            started = time.perf_counter()
            list(engine.map(iter([([t], f"batch {i}") for i, t in enumerate(texts)])))
            remote = time.perf_counter() - started
        out[f"ray_{workers}w_ms_per_batch"] = round(1000 * remote / n, 3)
        out[f"overhead_{workers}w_ms_per_batch"] = round(1000 * (remote - local) / n, 3)
    return out


def ceiling(texts: list[str], workers: int, where: Path) -> dict:
    """The driver's ceiling: GloVe ``--outputs tokens`` on the pool, the driver writing segments or only checking them.

    MB/s is feature data (token vectors) committed per second of the whole extract call, pool start included;
    the ceiling is MB per second of the driver's own CPU time (all its threads), which caps a large pool."""
    row: dict = {"texts": len(texts), "workers": workers}
    for flag in (False, True):
        path = where / f"ceiling-{flag}.h5"
        cpu = time.process_time()
        seconds, report = extract(texts, "glove-6b-50d", path, outputs=["tokens"], batch_size=256, engine="ray",
                                  workers=workers, write_on_workers=flag)
        with embedx.open_store(path) as store:
            mb = store.feature_set(report.set_name).group["tokens/values"].nbytes / 1e6
        cpu = time.process_time() - cpu  # the driver's own CPU time, every thread: what bounds it on a big pool
        key = "workers_write" if flag else "driver_writes"
        row[key] = {"seconds": round(seconds, 2), "feature_mb": round(mb, 1), "mb_per_s": round(mb / seconds, 1),
                    "driver_cpu_s": round(cpu, 2), "mb_per_driver_cpu_s": round(mb / cpu, 1),
                    "seconds_staging": round(report.seconds_staging, 2),
                    "seconds_commit": round(report.seconds_commit, 2), "load": os.getloadavg()[0]}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ceiling", type=int, default=0, metavar="TEXTS",
                        help="only measure the driver's ceiling with and without --write-on-workers on TEXTS texts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--glove-texts", type=int, default=50_000)
    parser.add_argument("--minilm-texts", type=int, default=1_000)
    parser.add_argument("--round-trips", type=int, default=300)
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.perf_counter()
    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")  # what embedx does for a local Ray: workers at our priority
    ray.init(num_cpus=max(os.cpu_count() or 1, args.workers), include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    init = time.perf_counter() - started
    results = {"machine": {"cpus": os.cpu_count(), "load_before": [round(x, 1) for x in load_before]},
               "ray_init_s": round(init, 2), "embedders": []}
    if args.ceiling:
        with tempfile.TemporaryDirectory(dir=".") as tmp:
            row = ceiling(corpus(args.ceiling, seed=2), args.workers, Path(tmp))
        ray.shutdown()
        print(json.dumps(results | {"ceiling": row}, indent=2))
        for key in ("driver_writes", "workers_write"):
            r = row[key]
            print(f"{key}: {r['feature_mb']} MB of token vectors committed in {r['seconds']} s = {r['mb_per_s']} MB/s; "
                  f"driver CPU {r['driver_cpu_s']} s = ceiling {r['mb_per_driver_cpu_s']} MB/s "
                  f"(staging {r['seconds_staging']} s, commit {r['seconds_commit']} s, load {r['load']:.1f})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for embedder, n, size in (("glove-6b-50d", args.glove_texts, 256), ("minilm-l6", args.minilm_texts, 32)):
            texts = corpus(n, seed=1)
            row = compare(embedder, texts, args.workers, size, Path(tmp))
            row.update(pool_profile(embedder, texts, args.workers, size))
            results["embedders"].append(row)
            print(json.dumps(row), flush=True)
    results["round_trip"] = round_trip(args.round_trips)
    results["machine"]["load_after"] = [round(x, 1) for x in os.getloadavg()]
    ray.shutdown()
    print(json.dumps(results, indent=2))
    print(f"\nRay start (once per process): {init:.1f} s; machine load average {load_before[0]:.1f} -> "
          f"{results['machine']['load_after'][0]:.1f} on {os.cpu_count()} cores (shared).")
    for row in results["embedders"]:
        print(f"{row['embedder']}: {row['texts']:,} texts in {row['batches']} batches. End to end: single process "
              f"{row['local_s']} s, Ray {args.workers} workers {row['ray_s']} s ({row['ray_over_local']}x), i.e. "
              f"{row['overhead_per_run_s']} s more per run ({row['overhead_per_batch_ms']} ms per batch). Pool alone: "
              f"first result after {row['pool_first_result_s']} s (local load() {row['local_load_s']} s), then "
              f"{row['ray_steady_ms_per_batch']} ms per batch against {row['local_ms_per_batch']} ms in-process "
              f"({row['steady_overhead_ms_per_batch']:+} ms). Identical: keys {row['same_keys']}, input table "
              f"{row['same_input_table']}, vectors array_equal {row['array_equal']} "
              f"(max |diff| {row['max_abs_diff']:.2e})")
    trip = results["round_trip"]
    print(f"round trip of one tiny batch: local {trip['local_ms_per_batch']} ms, Ray 1 worker "
          f"{trip['ray_1w_ms_per_batch']} ms, 2 workers {trip['ray_2w_ms_per_batch']} ms per batch")


if __name__ == "__main__":
    main()
