"""Train forward and backward Flair character language models offline, with flair's own trainer.

Flair's published character LMs (news-forward, ...) come from a server this machine cannot
reach. This script makes small real ones from text that is available offline: gensim's
``lee_background.cor`` (300 news articles, natural text) and the training part of the MR movie
reviews (``embedx.datasets``, seed-0 split; its validation/test texts are never seen). It builds
flair's ``TextCorpus`` layout (``train/`` split files, ``valid.txt``, ``test.txt``), a character
dictionary from the corpus (``embedx_flair.build_char_dictionary``: flair's
``Dictionary.load("chars")`` would download), and trains each direction with
``LanguageModelTrainer`` for a fixed number of epochs, so the cost is predictable. It writes
``OUT/forward/best-lm.pt`` and ``OUT/backward/best-lm.pt`` (load them with
``embedx extract -e flair-char-lm -O forward=... -O backward=...``) and prints, per direction,
the wall time, the final validation perplexity of the saved model and its parameter count.

``--evaluate`` then extracts ``flair-char-lm`` document vectors through embedx for MR (all of
the training and test parts unless ``--eval-train``/``--eval-test`` cut them) with the trained
pair and with an untrained pair of the same shape, and compares logistic regression accuracy
on the test part.

    python benchmarks/flair_char_lm.py                 # ~2.5-3.5 min: hidden 256, 3 epochs, both directions
    python benchmarks/flair_char_lm.py --evaluate      # + ~1 min: MR accuracy, trained vs untrained
    python benchmarks/flair_char_lm.py --epochs 1 --hidden 128 --out runs/flair-lm-small
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("USE_TF", "0")  # flair -> transformers would import TensorFlow otherwise


def corpus_texts(seed: int) -> tuple[list[str], list[str]]:
    """(news documents, MR training-part texts), both available offline."""
    from gensim.test.utils import datapath

    from embedx import datasets

    news = [line.strip() for line in Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()]
    datasets.fetch("mr")
    splits = datasets.split("mr", seed=seed)
    mr = splits.dataset.texts
    return [t for t in news if t], [mr[i] for i in splits.train]


def char_dictionary(lines: list[str]):
    """The corpus's characters seen at least twice (flair's Dictionary.load("chars") would download)."""
    from embedx_flair import build_char_dictionary

    return build_char_dictionary(lines, min_count=2)


def write_corpus(folder: Path, lines: list[str], splits: int, seed: int) -> dict[str, int]:
    """flair's TextCorpus layout: ``train/train_split_*`` plus ``valid.txt`` and ``test.txt`` (5% each)."""
    lines = list(lines)
    random.Random(seed).shuffle(lines)
    held = max(1, len(lines) // 20)
    parts = {"valid.txt": lines[:held], "test.txt": lines[held:2 * held]}
    train = lines[2 * held:]
    (folder / "train").mkdir(parents=True, exist_ok=True)
    for i in range(splits):
        parts[f"train/train_split_{i + 1}"] = train[i::splits]
    for name, chunk in parts.items():
        (folder / name).write_text("\n".join(chunk) + "\n", encoding="utf-8")
    return {"train_chars": sum(len(t) + 1 for t in train), "valid_chars": sum(len(t) + 1 for t in parts["valid.txt"])}


def train_direction(corpus_dir: Path, dictionary, forward: bool, out: Path, args) -> dict:
    """Train one direction with flair's LanguageModelTrainer; return its cost and quality."""
    import torch
    from flair.models import LanguageModel
    from flair.trainers.language_model_trainer import LanguageModelTrainer, TextCorpus

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    corpus = TextCorpus(corpus_dir, dictionary, forward, character_level=True)
    model = LanguageModel(dictionary, forward, hidden_size=args.hidden, nlayers=args.layers,
                          embedding_size=args.embedding_size, dropout=args.dropout)
    trainer = LanguageModelTrainer(model, corpus)
    valid_data = trainer._batchify(corpus.valid, args.batch_size)
    untrained = trainer.evaluate(valid_data, args.batch_size, args.sequence_length)
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train(out, sequence_length=args.sequence_length, mini_batch_size=args.batch_size,
                  learning_rate=args.learning_rate, max_epochs=args.epochs, num_workers=0, patience=args.patience)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    for stale in out.glob("epoch_*.pt"):  # per-epoch resume checkpoints with optimizer state; not needed here
        stale.unlink()
    best = LanguageModel.load_language_model(out / "best-lm.pt")
    judge = LanguageModelTrainer(best, corpus)
    valid = judge.evaluate(valid_data, args.batch_size, args.sequence_length)
    return {"direction": "forward" if forward else "backward", "wall_seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1), "epochs": args.epochs,
            "valid_perplexity": round(math.exp(valid), 3), "untrained_valid_perplexity": round(math.exp(untrained), 1),
            "parameters": sum(p.numel() for p in best.parameters()),
            "model": str(out / "best-lm.pt")}


def evaluate(args, forward: Path, backward: Path, dictionary, seed: int) -> dict:
    """Logistic regression on flair-char-lm doc vectors: trained LMs against untrained ones of the same shape."""
    import numpy as np
    import torch
    from flair.models import LanguageModel
    from sklearn.linear_model import LogisticRegression

    import embedx
    from embedx import datasets

    splits = datasets.split("mr", seed=seed)
    labels = splits.dataset.labels
    train_idx, test_idx = splits.train[:args.eval_train], splits.test[:args.eval_test]
    texts = splits.dataset.texts
    x_texts, y_train = [texts[i] for i in train_idx], labels[train_idx]
    t_texts, y_test = [texts[i] for i in test_idx], labels[test_idx]
    results = {}
    torch.manual_seed(seed)  # the untrained pair's random weights
    with tempfile.TemporaryDirectory() as tmp:
        untrained = {}
        for direction in ("forward", "backward"):
            lm = LanguageModel(dictionary, direction == "forward", hidden_size=args.hidden, nlayers=args.layers,
                               embedding_size=args.embedding_size, dropout=args.dropout)
            untrained[direction] = Path(tmp) / f"untrained-{direction}.pt"
            lm.save(untrained[direction])
        for name, (fw, bw) in {"trained": (forward, backward),
                               "untrained": (untrained["forward"], untrained["backward"])}.items():
            options = {"forward": str(fw), "backward": str(bw)}
            started = time.perf_counter()
            store = Path(tmp) / f"{name}.h5"
            x = embedx.embed(x_texts, "flair-char-lm", store, options=options)
            t = embedx.embed(t_texts, "flair-char-lm", store, options=options)
            seconds = time.perf_counter() - started
            mean, std = x.mean(0), x.std(0) + 1e-6
            head = LogisticRegression(max_iter=2000, C=1.0).fit((x - mean) / std, y_train)
            accuracy = float(np.mean(head.predict((t - mean) / std) == y_test))
            results[name] = {"accuracy": round(accuracy, 4), "extract_seconds": round(seconds, 1),
                             "texts_per_second": round((len(x_texts) + len(t_texts)) / seconds, 1)}
    return {"train_texts": len(x_texts), "test_texts": len(t_texts), **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/flair-lm"))
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--splits", type=int, default=4, help="train files; each ends with a validation and save")
    parser.add_argument("--sequence-length", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=20.0, help="SGD, flair's default")
    parser.add_argument("--patience", type=int, default=2, help="splits without improvement before the LR anneals")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; one is fastest for a small LSTM's per-character steps on a shared machine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate", action="store_true", help="then compare trained vs untrained LM features on MR")
    parser.add_argument("--eval-train", type=int, default=None, help="MR training texts for --evaluate (default all)")
    parser.add_argument("--eval-test", type=int, default=None, help="MR test texts for --evaluate (default all)")
    args = parser.parse_args()
    started = time.perf_counter()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    news, mr_train = corpus_texts(args.seed)
    lines = news + mr_train
    dictionary = char_dictionary(lines)
    report: dict = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    "corpus": {"documents": len(lines), "characters_in_dictionary": len(dictionary)},
                    "threads": torch.get_num_threads(), "directions": []}
    work = Path(tempfile.mkdtemp(prefix="flair-lm-corpus-"))
    try:
        report["corpus"].update(write_corpus(work, lines, args.splits, args.seed))
        print(json.dumps(report["corpus"]), flush=True)
        for forward in (True, False):
            out = args.out / ("forward" if forward else "backward")
            if out.exists():
                shutil.rmtree(out)
            result = train_direction(work, dictionary, forward, out, args)
            report["directions"].append(result)
            print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["total_training_seconds"] = round(sum(d["wall_seconds"] for d in report["directions"]), 1)
    report["load_average_1min"] = os.getloadavg()[0]  # other work on the machine slows training down
    if args.evaluate:
        report["evaluation"] = evaluate(args, args.out / "forward" / "best-lm.pt", args.out / "backward" / "best-lm.pt",
                                        dictionary, args.seed)
        print(json.dumps(report["evaluation"]), flush=True)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "summary.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"training: {report['total_training_seconds']} s for both directions, {report['total_seconds']} s in all; "
          f"summary in {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
