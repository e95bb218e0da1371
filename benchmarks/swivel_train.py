"""Swivel on the largest corpus this machine has offline: counting speed, training time, quality.

The corpus is assembled once from what ships in packages (no network beyond package registries):
gensim's test data (the Lee news background corpus, the head of a Wikipedia dump as raw wiki
markup, run through gensim's wiki filter, and ``head500.noblanks.cor``, a stemmed, stop-word-free
Wikipedia excerpt) and the texts of every embedx dataset (MR reviews, tweets, SMS, TREC questions,
and the bodies of the SpamAssassin emails with headers and HTML tags removed), one document per
line, into ``WORK/corpus.txt``. Then exactly what ``embedx swivel train`` runs: vocabulary pass,
co-occurrence pass, sharding, Adagrad training, WordSim-353 evaluation against random vectors of
the same vocabulary. Printed: tokens per source and in all, vocabulary, counting time and tokens/s,
training time, Spearman vs random, nearest neighbours, peak memory (max RSS of this process).

    python benchmarks/swivel_train.py [--max-vocab 20000] [--epochs 20] [--dim 100] [--out DIR]

The defaults (those of ``embedx swivel train``) take about 3-5 minutes on 2 shared cores;
``--quick`` (5,000 words, 5 epochs) under one.
"""

from __future__ import annotations

import argparse
import bz2
import json
import re
import resource
import sys
import time
from pathlib import Path

TAG = re.compile(r"<[^>]*>|&[a-zA-Z]+;|&#\d+;")  # HTML tags and entities
SOFT_BREAK, ESCAPE = re.compile(r"=\r?\n"), re.compile(r"=[0-9A-Fa-f]{2}")  # quoted-printable


def _wiki(path: str):
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    with bz2.open(path) as handle:
        for _title, text, _pid in extract_pages(handle):
            yield from filter_wiki(text).split("\n\n")


def _email_body(raw: str) -> str:
    """Drop the header block, HTML, quoted-printable escapes, and lines that look like base64."""
    parts = raw.replace("\r\n", "\n").split("\n\n", 1)
    body = SOFT_BREAK.sub("", parts[1] if len(parts) > 1 else "")
    body = TAG.sub(" ", ESCAPE.sub(" ", body))
    return " ".join(line for line in body.split("\n") if not (len(line) > 40 and " " not in line.strip()))


def sources():
    """(name, iterable of documents) for every offline text source."""
    from gensim.test.utils import datapath

    def lines(path, opener=open):
        with opener(path, "rt", encoding="utf-8") as handle:
            yield from handle

    yield "gensim lee_background.cor", lines(datapath("lee_background.cor"))
    yield (
        "gensim enwiki dump head (wiki-filtered)",
        _wiki(datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")),
    )
    yield "gensim head500.noblanks.cor (stemmed)", lines(datapath("head500.noblanks.cor.bz2"), bz2.open)
    from embedx import datasets

    for name in ("mr", "tweets", "sms-spam", "trec", "email-spam"):
        try:
            texts = datasets.load(name, fetch=True).texts
        except Exception as exc:  # a registry out of reach: use what is there
            print(f"  (skipping dataset {name}: {exc})", file=sys.stderr)
            continue
        yield f"embedx dataset {name}", (map(_email_body, texts) if name == "email-spam" else texts)


def assemble(target: Path) -> dict[str, int]:
    """Write every source as one document per line; return whitespace tokens per source."""
    if target.exists() and target.with_suffix(".json").exists():
        return json.loads(target.with_suffix(".json").read_text())
    target.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with open(target.with_suffix(".tmp"), "w", encoding="utf-8") as out:
        for name, documents in sources():
            n = 0
            for doc in documents:
                words = doc.split()
                if words:
                    out.write(" ".join(words) + "\n")
                    n += len(words)
            counts[name] = n
    target.with_suffix(".tmp").replace(target)
    target.with_suffix(".json").write_text(json.dumps(counts, indent=2))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/swivel-bench"), help="where the corpus is cached")
    parser.add_argument("--max-vocab", type=int, default=20_000)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--shard-size", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write vectors, report and module here")
    parser.add_argument("--quick", action="store_true", help="5,000 words, 5 epochs")
    args = parser.parse_args()
    if args.quick:
        args.max_vocab, args.epochs = 5_000, 5

    from embedx_swivel.pipeline import CountSettings, train_corpus
    from embedx_swivel.train import SwivelConfig
    from embedx_tfhub.corpus import Corpus

    started = time.perf_counter()
    per_source = assemble(args.work / "corpus.txt")
    print(f"corpus ({time.perf_counter() - started:.1f} s to assemble or reuse): {args.work / 'corpus.txt'}")
    for name, n in per_source.items():
        print(f"  {n:>10,} tokens  {name}")
    result = train_corpus(Corpus.of([args.work / "corpus.txt"]), args.out,
                          CountSettings(window=args.window, min_count=args.min_count, max_vocab=args.max_vocab),
                          SwivelConfig(dim=args.dim, epochs=args.epochs, shard_size=args.shard_size, seed=args.seed),
                          overwrite=True, progress=sys.stderr.isatty())
    r = result.report
    c, t, s, e = r["corpus"], r["timings"], r["shards"], r["evaluation"]
    print(f"tokens       {c['tokens']:,} (after the tokenizer) in {c['documents']:,} documents, "
          f"{c['distinct_words']:,} distinct")
    print(f"vocabulary   {c['vocabulary']:,} words (min_count {args.min_count}, max {args.max_vocab:,}) covering "
          f"{c['vocabulary_tokens'] / c['tokens']:.1%} of tokens; {s['words_trained']:,} trained")
    print(f"counting     {t['counting_s']:.1f} s = vocabulary {t['vocabulary_s']:.1f} s + co-occurrences "
          f"{t['cooccurrence_s']:.1f} s: {t['counting_tokens_per_s']:,.0f} tokens/s over both passes; "
          f"{c['cooccurrence_nonzero']:,} non-zero cells from {c['cooccurrence_pairs']:,} pairs (window {args.window})")
    print(f"training     {t['training_s']:.1f} s: {s['num_shards']}x{s['num_shards']} blocks of {s['shard_size']}, "
          f"{s['steps']:,} steps, {t['training_s'] / s['steps']:.2f} s/step, dim {args.dim}; loss per cell "
          f"{r['epoch_losses'][0]:.4f} -> {r['epoch_losses'][-1]:.4f}")
    print(f"wordsim353   Spearman {e['spearman']:.3f} on {e['pairs_used']}/{e['pairs_total']} pairs; random vectors "
          f"of the same words {e['random_mean']:+.3f} (seeds: {', '.join(f'{x:+.3f}' for x in e['random_spearman'])})")
    for word, near in e["neighbours"].items():
        print(f"  {word:>11}: " + ", ".join(w for w, _ in near))
    if args.out:
        print(f"export       {t.get('export_s', 0):.1f} s -> {args.out / 'module'}")
    print(f"peak memory  {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB (max RSS)")
    print(f"total        {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
