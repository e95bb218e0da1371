"""One timed measurement of each kind: the embedder alone, its peer, the extract path, the pipeline ceiling.

Each returns a record (a flat dict, fields documented in :mod:`.schema`) and, where it computes
vectors, the default document output in input order for the agreement check. Wall time is
``perf_counter``; CPU time is this process's (every thread); device work is synchronised
before a clock is read.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedx.bench.throughput.hardware import Probe, sync
from embedx.contract.embedder import DOCUMENT, Embedder, Embeddings


def _rates(record: dict[str, Any], texts: int, tokens: int, seconds: float, cpu: float) -> dict[str, Any]:
    record.update(texts=texts, tokens=tokens, seconds=round(seconds, 6), cpu_seconds=round(cpu, 6),
                  texts_s=texts / seconds if seconds > 0 else None,
                  tokens_s=tokens / seconds if seconds > 0 else None)
    return record


def _percentiles(times: list[float]) -> dict[str, Any]:
    if not times:
        return {"batches": 0, "batch_ms_p50": None, "batch_ms_p95": None}
    ms = np.asarray(times) * 1000
    return {"batches": len(times), "batch_ms_p50": round(float(np.percentile(ms, 50)), 3),
            "batch_ms_p95": round(float(np.percentile(ms, 95)), 3)}


def doc_output(embedder: Embedder) -> str | None:
    """The first requested document output: the one compared with the peer."""
    specs = {o.name: o for o in embedder.output_specs()}
    for name in embedder.requested_outputs or type(embedder).default_outputs:
        if name in specs and specs[name].level == DOCUMENT:
            return name
    return None


def model(embedder: Embedder, texts: list[str], tokens: list[int], batch_size: int, device: str,
          keep: str | None = None) -> tuple[dict[str, Any], np.ndarray | None]:
    """``embed_batch`` over ``texts`` longest first in batches of ``batch_size``, as ``extract`` orders them."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    kept: np.ndarray | None = None
    times = []
    with Probe(device) as probe:
        sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            t0 = time.perf_counter()
            result = embedder.embed_batch([texts[i] for i in rows])
            sync(device)
            times.append(time.perf_counter() - t0)
            if keep is not None:
                outputs = result.outputs if isinstance(result, Embeddings) else result
                values = np.asarray(outputs[keep], dtype=np.float32)
                if kept is None:
                    kept = np.zeros((len(texts),) + values.shape[1:], dtype=np.float32)
                kept[rows] = values
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    record = _rates({"kind": "model", "batch_size": batch_size}, len(texts), sum(tokens), wall, cpu)
    record.update(**_percentiles(times), **probe.result)
    return record, kept


def peer(runner: Any, texts: list[str], tokens: list[int], batch_size: int | None, device: str,
         keep: bool = False) -> tuple[dict[str, Any], np.ndarray | None]:
    """The peer over ``texts`` in input order, in one call (it batches and sorts, or not, as it does)."""
    with Probe(device) as probe:
        sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        vectors = runner.encode(texts, batch_size)
        sync(device)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    record = _rates({"kind": "peer", "batch_size": batch_size}, len(texts), sum(tokens), wall, cpu)
    record.update(**_percentiles([]), **probe.result)
    return record, (np.asarray(vectors, dtype=np.float32) if keep else None)


def extract(registry: Any, embedder_id: str, texts: list[str], tokens: list[int], batch_size: int, device: str,
            workdir: Path, kind: str = "extract") -> dict[str, Any]:
    """``embedx.extract`` of ``texts`` into a fresh file (an input table included, as the CLI writes one)."""
    from embedx.pipeline.extraction import extract as run_extract

    folder = Path(workdir) / f"{kind}-{time.perf_counter_ns()}"
    folder.mkdir(parents=True)
    try:
        with Probe(device) as probe:
            wall, cpu = time.perf_counter(), time.process_time()
            report = run_extract(texts, embedder_id, folder / "features.h5", name="bench", registry=registry,
                                 batch_size=batch_size)
            sync(device)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if report.computed != len(texts):
        raise RuntimeError(f"extract computed {report.computed} of {len(texts)} texts: the texts are not distinct")
    record = _rates({"kind": kind, "batch_size": batch_size}, len(texts), sum(tokens), wall, cpu)
    record.update(**_percentiles([]), **probe.result)
    record["extract"] = {"total_s": round(report.seconds_total, 6), "compute_s": round(report.seconds_compute, 6),
                         "staging_s": round(report.seconds_staging, 6), "commit_s": round(report.seconds_commit, 6)}
    return record
