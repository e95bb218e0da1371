"""Train the ELMo biLM on the offline corpora, export it, and see what its layers are worth on tweets and TREC.

Stage 1 (``train``, resumable): exactly ``embedx elmo train`` with its defaults on gensim's
``lee_background.cor`` and ``head500.noblanks.cor`` and the texts of MR, SMS spam and email spam
(about 3.9 million whitespace tokens; tweets and TREC are left out because they are what stage 2
evaluates on), into ``runs/elmo``, then the module into ``runs/elmo/module``, where the
``elmo-trained`` embedder and the ``keras-elmo-trained`` fine-tuner of ``embedx bench compare``
look for it. Printed: corpus, parameters, tokens trained, wall time, tokens/s against the machine's
fp32 matrix-multiply rate measured in the same run (with the model's analytic FLOPs per token),
held-out perplexity before and after against a unigram model of the same training text.

Stage 2 (``layers``): the splits ``embedx bench compare`` uses (seeds 0-2, 500 texts per class, 100
tokens) and its protocol (5-fold cross-validation on train+validation, refit, one test score),
ELMo's three layers mean-pooled (``layers_mean``) and the module's ``default`` through the cache;
logistic regression on each layer alone and on ``default``, the ``layer-mix`` head (ELMo's scalar
mix + linear classifier) whose learned softmax weights per layer are printed, and logistic
regression on GloVe, MiniLM, hashing and the Swivel module of ``benchmarks/swivel_train.py``
(``--peers``; one that cannot run is named and skipped) on the same splits.

    python benchmarks/elmo_train.py                 # stage 1 then stage 2
    python benchmarks/elmo_train.py train           # only training (Ctrl-C saves a checkpoint; re-run resumes)
    python benchmarks/elmo_train.py layers --datasets tweets,trec
    python benchmarks/elmo_train.py train --max-train-tokens 200000   # shorter; may be raised later to resume
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

DATASETS = ("mr", "sms-spam", "email-spam")


def corpus_sources() -> list[str]:
    from gensim.test.utils import datapath

    return [datapath("lee_background.cor"), datapath("head500.noblanks.cor"), *(f"dataset:{d}" for d in DATASETS)]


def gemm_gflops(size: int = 2048, repeats: int = 3) -> float:
    """fp32 matrix multiply rate of this machine now (numpy), the limit the training speed is read against."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def training_flops_per_token(model: dict) -> float:
    """Multiply-adds of one token's forward pass (char CNN, highway, projection, 4 LSTMP, sampled softmax) x 2 x 3."""
    p, h, c, e = model["projection_dim"], model["cell_dim"], model["max_chars"], model["char_dim"]
    n_filters = sum(n for _, n in model["filters"])
    cnn = sum((c - w + 1) * w * e * n for w, n in model["filters"])
    highway = model["highway"] * n_filters * 2 * n_filters
    lstm = 4 * (2 * p * 4 * h + h * p)
    softmax = 2 * p * (1 + model["n_samples"])
    return 2 * 3 * (cnn + highway + n_filters * p + lstm + softmax)


def unigram_perplexity(out: Path, corpus) -> dict:
    """Perplexity of an add-one unigram model of the training text on the same held-out sequences."""
    from embedx_elmo_train.sequences import Vocabulary, _training_sequences, text_key

    words = (out / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    heldout = [line.split(" ") for line in (out / "heldout.txt").read_text(encoding="utf-8").split("\n")[:-1]]
    vocab, keys = Vocabulary(words), {text_key(s) for s in heldout}
    settings = json.loads((out / "settings.json").read_text())["training"]
    counts: Counter[int] = Counter()
    for source in corpus.sources:
        from embedx_tfhub.corpus import Corpus

        for seq in _training_sequences(Corpus.of([source]), settings["sequence_tokens"], keys):
            counts.update(vocab.ids(seq))
    total = sum(counts.values()) + len(vocab)
    nll = n = 0
    for seq in heldout:
        for i in vocab.ids(seq)[1:]:  # what the forward LM predicts: the tokens and </S>
            nll -= math.log((counts[i] + 1) / total)
            n += 1
    return {"perplexity": math.exp(nll / n), "predictions": n}


def train_stage(args) -> None:
    from embedx_elmo_train.export import export_elmo
    from embedx_elmo_train.train import TrainSettings, train_bilm
    from embedx_tfhub.corpus import Corpus

    out = Path(args.out)
    corpus = Corpus.of(corpus_sources())
    peak_before = gemm_gflops()
    started = time.perf_counter()
    result = train_bilm(corpus, out, {}, TrainSettings(max_train_tokens=args.max_train_tokens),
                        log=lambda text: print(text, flush=True))
    wall = time.perf_counter() - started
    meta = export_elmo(out, out / "module", overwrite=True)
    peak_after = gemm_gflops()
    r = result.report
    flops = training_flops_per_token(r["model"]) * r["tokens_per_second"]
    peak = (peak_before + peak_after) / 2
    unigram = unigram_perplexity(out, corpus)
    c, p = r["corpus"], r["parameters"]
    print(f"\ncorpus      {c['tokens']:,} training tokens ({c['documents']:,} documents), vocabulary "
          f"{c['vocabulary']:,} "
          f"({c['unk_rate']:.1%} of tokens outside it), held out {c['heldout_tokens']:,} tokens")
    print(f"parameters  {p['encoder']:,} in the encoder (exported) + {p['softmax']:,} in the softmax")
    print(f"trained     {r['tokens_trained']:,} tokens ({r['tokens_trained'] / c['tokens']:.2f} of the corpus), "
          f"{r['steps']:,} steps, {r['train_seconds']:.0f} s of training steps; this invocation {wall:.0f} s wall")
    print(f"speed       {r['tokens_per_second']:,.0f} tokens/s = {flops / 1e9:.1f} GFLOP/s, "
          f"{flops / 1e9 / peak:.0%} of the fp32 GEMM rate measured now ({peak:.0f} GFLOP/s)")
    before, after = r["perplexity_before"], r["perplexity_after"]
    print(f"perplexity  before {before['mean']:.1f} -> after {after['mean']:.1f} (forward {after['forward']:.1f}, "
          f"backward {after['backward']:.1f}); unigram model of the same text {unigram['perplexity']:.1f} "
          f"(biLM forward / unigram = {after['forward'] / unigram['perplexity']:.2f})")
    print(f"module      {out / 'module'} (step {meta['step']:,})")
    summary = {"report": {k: v for k, v in r.items() if k != "curve"}, "unigram": unigram, "gemm_gflops": peak,
               "training_gflops": flops / 1e9, "wall_seconds": wall}
    (out / "benchmark.json").write_text(json.dumps(summary, indent=1, default=float))


def layers_stage(args) -> None:
    import numpy as np

    import embedx
    from embedx import datasets
    from embedx.bench.specs import parse_spec
    from embedx.contract.errors import EmbedxError
    from embedx.contract.options import option_specs
    from embedx.heads.data import MemoryData
    from embedx.heads.metrics import scores
    from embedx.heads.selection import Protocol, choose_and_fit
    from embedx.heads.training import build_head
    from embedx.registry import get_registry

    module = Path(args.out) / "module"
    cache = Path(args.out) / "features.h5"
    results = {}
    for name in args.datasets.split(","):
        ds = datasets.load(name, fetch=True)
        splits = {seed: datasets.split(ds, seed=seed, samples_per_class=args.samples_per_class, max_tokens=100)
                  for seed in args.seeds}
        texts = next(iter(splits.values())).dataset.texts
        used = sorted({int(i) for s in splits.values() for i in np.concatenate([s.train, s.validation, s.test])})
        chosen = [texts[i] for i in used]
        started = time.perf_counter()
        embedx.extract(chosen, "elmo-trained", cache, options={"model": str(module)},
                       outputs=["default", "layers_mean"])
        seconds = time.perf_counter() - started
        with embedx.open_store(cache) as store:
            fset = store.feature_set("elmo-trained")
            layers, default = fset.vectors(chosen, output="layers_mean"), fset.vectors(chosen, output="default")
        variants = {"elmo layer 0 (word_emb x2)": ("logreg", layers[:, 0]),
                    "elmo layer 1 (lstm_outputs1)": ("logreg", layers[:, 1]),
                    "elmo layer 2 (lstm_outputs2)": ("logreg", layers[:, 2]),
                    "elmo default (module's equal mix)": ("logreg", default),
                    "elmo layer-mix (learned ScalarMix)": ("layer-mix", layers)}
        for peer in filter(None, args.peers.split(",")):
            spec = parse_spec(peer)
            try:
                report = embedx.extract(chosen, spec.id, cache, options=dict(spec.options))
            except EmbedxError as exc:
                print(f"[{name}] {spec.label}: not run ({exc})", flush=True)
                continue
            with embedx.open_store(cache) as store:
                variants[spec.label] = ("logreg", store.feature_set(report.set_name).vectors(chosen))
        rows = {i: r for r, i in enumerate(used)}

        def pick(indices, rows=rows):
            return np.array([rows[int(i)] for i in indices], dtype=np.int64)

        y, classes = ds.label_ids, list(ds.label_names)
        y_used = y[used]
        table = {}
        for label, (head_id, X) in variants.items():
            accs, weights, picked = [], [], []
            data = MemoryData(X, y_used, classes)
            seeded = "seed" in option_specs(get_registry().heads[head_id].cls)
            for seed, split in splits.items():
                fit = choose_and_fit(lambda combo, head_id=head_id: build_head(head_id, combo),
                                     {"seed": seed} if seeded else {}, {},
                                     data, pick(split.train), pick(split.validation), Protocol(args.selection, 5, seed))
                test = data.subset(pick(split.test))
                accs.append(scores(test.y, fit.head.predict(test), len(classes))["accuracy"])
                picked.append(fit.chosen)
                if "layer_weights" in fit.report.extra:
                    weights.append(fit.report.extra["layer_weights"])
            table[label] = {"accuracy": accs, "layer_weights": weights, "chosen": picked}
            extra = f"  weights {np.round(np.mean(weights, 0), 3).tolist()}" if weights else ""
            print(f"[{name}] {label:40s} test accuracy {np.mean(accs):.3f} ± {np.std(accs):.3f}{extra}", flush=True)
        results[name] = {"texts": len(chosen), "extract_seconds": seconds, "selection": args.selection,
                         "variants": table}
        print(f"[{name}] {len(chosen):,} texts; ELMo features in {seconds:.0f} s (0 if cached)", flush=True)
    (Path(args.out) / "layers.json").write_text(json.dumps(results, indent=1, default=str))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", nargs="?", choices=["all", "train", "layers"], default="all")
    parser.add_argument("--out", default="runs/elmo")
    parser.add_argument("--max-train-tokens", type=int, default=1_200_000)
    parser.add_argument("--datasets", default="tweets,trec")
    parser.add_argument("--samples-per-class", type=int, default=500)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--selection", choices=["cv", "validation"], default="cv",
                        help="how heads choose their settings (as in embedx bench compare)")
    parser.add_argument("--peers", default="glove-6b-50d,minilm-l6,hashing-ngrams,"
                        "gnews-swivel-20dim:model=runs/swivel-20d/module",
                        help="other embedders scored with logistic regression on the same splits "
                             "(comma-separated specs)")
    args = parser.parse_args(argv)
    if args.stage in ("all", "train"):
        train_stage(args)
    if args.stage in ("all", "layers"):
        layers_stage(args)


if __name__ == "__main__":
    sys.exit(main())
