"""The machine: its matrix-multiply peak, what else is running, and probes read around a measurement.

The peak is measured, not looked up: fp32 GEMM on the CPU (numpy, and torch when the embedder
already imported it), dense fp16 / bf16 (and fp32) on CUDA. Probes reset and read the peak
resident memory (``VmHWM``, reset through ``/proc/self/clear_refs`` on Linux), the peak CUDA
memory (torch's allocator), and sample SM utilisation (NVML through ``pynvml`` when importable,
else ``nvidia-smi``) in a thread.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

# -- the peak -------------------------------------------------------------------------------------

def gemm(device: str, dtypes: list[str], size: int, repeats: int = 5, when: str = "") -> list[dict[str, Any]]:
    """One record per library and dtype: FLOP/s of a ``size`` x ``size`` matrix product, best of ``repeats``."""
    records = []
    if device == "cpu":
        records.append(_numpy_gemm(size, repeats))
        if "torch" in sys.modules:  # never imported just for this: an embedder that uses torch already did
            records.append(_torch_gemm("cpu", "float32", size, repeats))
    else:
        for dtype in dict.fromkeys(["float32", *dtypes]):
            records.append(_torch_gemm(device, dtype, size, repeats))
    for record in records:
        record["when"] = when
    return records


def _numpy_gemm(size: int, repeats: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return _record("numpy", "cpu", "float32", size, times, threads=_blas_threads())


def _torch_gemm(device: str, dtype: str, size: int, repeats: int) -> dict[str, Any]:
    import torch

    where = torch.device(device)
    kind = getattr(torch, dtype)
    saved = torch.backends.cuda.matmul.allow_tf32 if where.type == "cuda" else None
    if where.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, not TF32
    try:
        gen = torch.Generator(device="cpu").manual_seed(0)
        a = torch.randn(size, size, generator=gen).to(device=where, dtype=kind)
        b = torch.randn(size, size, generator=gen).to(device=where, dtype=kind)
        a @ b
        sync(device)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            sync(device)
            times.append(time.perf_counter() - started)
    finally:
        if saved is not None:
            torch.backends.cuda.matmul.allow_tf32 = saved
    return _record("torch", device, dtype, size, times, threads=torch.get_num_threads())


def _record(library: str, device: str, dtype: str, size: int, times: list[float], threads: int | None) -> dict:
    flops = 2.0 * size ** 3
    return {"library": library, "device": device, "dtype": dtype, "size": size, "threads": threads,
            "flops_s": flops / min(times), "flops_s_median": flops / sorted(times)[len(times) // 2]}


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info

        counts = [p.get("num_threads") for p in threadpool_info() if p.get("user_api") == "blas"]
        return counts[0] if counts else None
    except Exception:
        return None


def peak_flops(records: list[dict[str, Any]], device: str, dtype: str) -> float | None:
    """The best FLOP/s measured for ``dtype`` on ``device`` (fp32 on a CPU, whatever the model's dtype)."""
    want = "float32" if device == "cpu" else dtype
    values = [r["flops_s"] for r in records if r["device"] == device and r["dtype"] == want]
    return max(values) if values else None


# -- the machine ----------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """CPU model and count, load average, and the processes using the CPU now (others share this machine)."""
    import numpy as np

    info: dict[str, Any] = {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "platform": platform.platform(),
                            "python": platform.python_version(), "numpy": np.__version__,
                            "load_average": _load(), "busy_processes": busy_processes()}
    for module in ("torch", "tensorflow", "onnxruntime"):
        if module in sys.modules:
            info[module] = getattr(sys.modules[module], "__version__", None)
    return info


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def busy_processes(limit: int = 5, threshold: float = 5.0) -> list[dict[str, Any]]:
    """Other processes above ``threshold`` % CPU (``ps``), so a report can say the machine was shared."""
    if shutil.which("ps") is None:
        return []
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) < 3 or int(parts[0]) == os.getpid():
            continue
        try:
            cpu = float(parts[1])
        except ValueError:
            continue
        if cpu >= threshold:
            rows.append({"pid": int(parts[0]), "cpu_percent": cpu, "command": parts[2][:40]})
        if len(rows) == limit:
            break
    return rows


def snapshot() -> dict[str, Any]:
    """Load average and busy processes now (taken before and after each embedder)."""
    return {"time": time.time(), "load_average": _load(), "busy_processes": busy_processes()}


# -- probes around one measurement ----------------------------------------------------------------

def sync(device: str) -> None:
    """Wait for queued device work, so a timer around it measures it."""
    if device.startswith("cuda") and "torch" in sys.modules:
        sys.modules["torch"].cuda.synchronize(device)


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _rss_peak_mb() -> float:
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Probe:
    """Around one measurement: peak RSS of this process, peak CUDA memory, mean SM utilisation."""

    def __init__(self, device: str):
        self.device = device
        self.cuda = device.startswith("cuda") and "torch" in sys.modules
        self.result: dict[str, Any] = {}

    def __enter__(self) -> Probe:
        self._rss_reset = _reset_rss_peak()
        if self.cuda:
            sys.modules["torch"].cuda.reset_peak_memory_stats(self.device)
        self._utilisation = Utilisation(self.device).__enter__() if self.device.startswith("cuda") else None
        return self

    def __exit__(self, *exc: Any) -> None:
        sync(self.device)
        self.result["peak_rss_mb"] = round(_rss_peak_mb(), 1)
        self.result["peak_rss_scope"] = "measurement" if self._rss_reset else "process"
        if self.cuda:
            self.result["gpu_peak_mb"] = round(sys.modules["torch"].cuda.max_memory_allocated(self.device) / 2**20, 1)
        if self._utilisation is not None:
            self._utilisation.__exit__(*exc)
            self.result["sm_util_mean"] = self._utilisation.mean
            self.result["sm_util_source"] = self._utilisation.source


class Utilisation:
    """Mean GPU utilisation (% of time a kernel ran) sampled every 0.1 s in a thread while the block runs."""

    def __init__(self, device: str):
        self.index = int(device.partition(":")[2] or 0)
        self.samples: list[float] = []
        self.source: str | None = None
        self._stop = threading.Event()
        self._read = self._reader()
        self._thread: threading.Thread | None = None

    def _reader(self) -> Any:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            self.source = "nvml"
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:
            pass
        if shutil.which("nvidia-smi"):
            self.source = "nvidia-smi"
            cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", str(self.index)]
            return lambda: float(subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.split()[0])
        return None

    def __enter__(self) -> Utilisation:
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.samples.append(self._read())
            except Exception:
                return

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None
