"""What ``backend=onnx-int8`` costs in accuracy and buys in speed: MiniLM features, fp32 vs int8, on MR and SMS spam.

    python benchmarks/int8_accuracy.py [--texts 4000] [--folds 5]

For each dataset, ``--texts`` texts drawn at random (seed 0) (MR: movie-review polarity; SMS spam) are embedded
by ``minilm-l6`` with ``backend=torch`` (fp32) and ``backend=onnx-int8`` (2 threads each), then a
logistic regression is scored by stratified k-fold cross-validation on each feature set, with the
same folds. Prints extraction texts/s, accuracy (mean and std over folds), and the cosine between
the fp32 and int8 vectors, plus one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    import embedx
    from embedx import datasets

    results = {}
    for name in ("mr", "sms-spam"):
        data = datasets.load(name, fetch=True)
        pick = np.random.default_rng(0).permutation(len(data.texts))[:args.texts]  # the files are sorted by label
        texts, labels = [data.texts[i] for i in pick], np.asarray(data.labels)[pick]
        unique = list(dict.fromkeys(texts))
        features, rates = {}, {}
        with tempfile.TemporaryDirectory() as tmp:
            for backend in ("torch", "onnx-int8"):
                options = {"backend": backend, "threads": args.threads}
                embedx.extract(unique[:32], "minilm-l6", Path(tmp) / "warm.h5", options=options)  # load, export
                path = Path(tmp) / f"{backend}.h5"
                started, cpu = time.perf_counter(), time.process_time()
                report = embedx.extract(unique, "minilm-l6", path, options=options)
                rates[backend] = (len(unique) / (time.perf_counter() - started),
                                  len(unique) / (time.process_time() - cpu))
                with embedx.open_store(path) as store:
                    features[backend] = store.feature_set(report.set_name).vectors(texts)
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)
        row = {"texts": len(texts), "cosine_min": float((features["torch"] * features["onnx-int8"]).sum(1).min()),
               "cosine_mean": float((features["torch"] * features["onnx-int8"]).sum(1).mean())}
        for backend, x in features.items():
            scores = cross_val_score(LogisticRegression(max_iter=2000, C=1.0), x, labels, cv=folds)
            row[backend] = {"accuracy": float(scores.mean()), "std": float(scores.std()),
                            "texts_s": rates[backend][0], "texts_per_cpu_s": rates[backend][1]}
        results[name] = row
        print(f"{name}: {len(texts):,} texts; fp32 accuracy {row['torch']['accuracy']:.4f} ± "
              f"{row['torch']['std']:.4f}, "
              f"int8 {row['onnx-int8']['accuracy']:.4f} ± {row['onnx-int8']['std']:.4f}; extraction "
              f"{row['torch']['texts_s']:.0f} vs {row['onnx-int8']['texts_s']:.0f} texts/s wall "
              f"({row['torch']['texts_per_cpu_s']:.0f} vs {row['onnx-int8']['texts_per_cpu_s']:.0f} per CPU-second); "
              f"cosine fp32/int8 min {row['cosine_min']:.4f}, mean {row['cosine_mean']:.4f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
