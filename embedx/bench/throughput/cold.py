"""Start-up, measured in fresh processes: time to first vector, and a whole run end to end.

Imports and model loading are paid once per process, so they are only seen in a new one. Each
run here starts ``python`` and is timed from just before the spawn (the interpreter's start is
included):

- ``first-vector``: build the embedder from the registry (or its peer), load it, embed one text;
  the time is taken when that vector exists;
- ``end-to-end``: the embedder through the real command line (``embedx extract FILE -e ID -O ...``,
  HDF5 written), or the peer loading, encoding every text at its own default batch size, and
  saving an ``.npy``; the time is the whole process, exit included.

Peak resident memory is the child's own ``VmHWM`` (``wait4``'s would include this process's memory,
inherited over the fork); CPU time comes from ``wait4`` on that one child. The child sees this
process's environment, so plugins loaded through ``EMBEDX_PLUGIN_MODULES`` are there too;
embedders only in an in-memory registry cannot be run here, and the run records why.

    python -m embedx.bench.throughput.cold '{"task": ..., ...}'     (the child's side)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run_child(task: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run one task in a fresh process; its JSON line merged with wall time, peak RSS and CPU time."""
    with tempfile.TemporaryDirectory(prefix="embedx-cold-") as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        if task["task"] == "end-to-end" and task["side"] == "embedder":
            cmd = [
                sys.executable,
                "-m",
                "embedx.bench.throughput.cold",
                "--cli",
                str(Path(tmp) / "hwm"),
                "extract",
                task["texts_file"],
                "-e",
                task["id"],
                "-o",
                str(Path(tmp) / "features.h5"),
                "--no-progress",
                "--json",
            ]
            for key, value in task["options"].items():
                cmd += ["-O", f"{key}={value}"]
        else:
            task = {**task, "out": str(Path(tmp) / "vectors.npy")}
            cmd = [sys.executable, "-m", "embedx.bench.throughput.cold", json.dumps({**task, "t0": time.time()})]
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            started = time.perf_counter()
            child = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=dict(os.environ))
            try:
                _, status, usage = _wait(child, timeout)
            except TimeoutError:
                child.kill()
                child.wait()
                return {"error": f"timed out after {timeout:.0f} s"}
            wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        text = out.read_text(errors="replace")
        if code != 0:
            tail = err.read_text(errors="replace").strip().splitlines()[-3:]
            return {"error": f"exit {code}: {' | '.join(tail)[:500]}"}
        # wait4's ru_maxrss would carry this (large) process's RSS over the fork: the child reports its own VmHWM
        record = {"process_s": round(wall, 4), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 4)}
        if task["task"] == "end-to-end" and task["side"] == "embedder":
            report = json.loads(text)
            record.update(seconds=record["process_s"], texts=report["computed"],
                          extract_total_s=round(report["seconds_total"], 4),
                          peak_rss_mb=float((Path(tmp) / "hwm").read_text()))
        else:
            record.update(json.loads(text.strip().splitlines()[-1]))
            if task["task"] == "end-to-end":
                record["seconds"] = record["process_s"]  # the whole process, exit included, as for the command
        return record


def _wait(child: subprocess.Popen, timeout: float) -> tuple[int, int, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
            return pid, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.005)


# -- the child ------------------------------------------------------------------------------------

def _child(task: dict[str, Any]) -> dict[str, Any]:
    t0 = task["t0"]
    from embedx.bench.throughput.families import family_of, peer_for
    from embedx.registry import get_registry

    embedder, _ = get_registry().create(task["id"], task["options"])
    embedder.requested_outputs = tuple(task["outputs"])
    if task["side"] == "embedder":  # first-vector only: end to end is the command line itself
        reason = embedder.unavailable_reason()
        if reason:
            raise SystemExit(f"cannot run here: {reason}")
        embedder.load()
        embedder.embed_batch([task["text"]])
        return {"seconds": round(time.time() - t0, 4), "texts": 1}
    runner, reason = peer_for(family_of(embedder), embedder)
    if runner is None:
        raise SystemExit(f"no peer: {reason}")
    runner.load()
    if task["task"] == "first-vector":
        runner.encode([task["text"]], runner.default_batch_size or 1)
        return {"seconds": round(time.time() - t0, 4), "texts": 1}
    texts = [json.loads(line)["text"] for line in Path(task["texts_file"]).read_text(encoding="utf-8").splitlines()]
    import numpy as np

    np.save(task["out"], runner.encode(texts, runner.default_batch_size))
    return {"inner_s": round(time.time() - t0, 4), "texts": len(texts)}


def peak_rss_mb() -> float:
    """This process's peak resident memory since its exec (VmHWM)."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    if sys.argv[1] == "--cli":  # the command line itself, with its peak memory written at exit
        import atexit

        hwm = Path(sys.argv[2])
        atexit.register(lambda: hwm.write_text(str(peak_rss_mb())))
        sys.argv = ["embedx", *sys.argv[3:]]
        from embedx.cli import main as cli

        cli()
        sys.exit()
    result = _child(json.loads(sys.argv[1]))
    print(json.dumps(result | {"peak_rss_mb": peak_rss_mb()}), flush=True)


if __name__ == "__main__":
    main()
