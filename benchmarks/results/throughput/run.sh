#!/bin/sh
# The committed throughput results: one command per family, from the repository root with .venv active.
# Each command's load conditions (uptime, the busiest processes) are appended to load.txt beside this file.
set -e
HERE=benchmarks/results/throughput
load() { { echo "== $1 $(date -u +%H:%M:%S)"; uptime; ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -6; } >> $HERE/load.txt; }
: > $HERE/load.txt
step() { name=$1; shift; load "before $name"; "$@"; load "after $name"; }
step glove   python benchmarks/extract_glove.py
step hashing embedx bench throughput -e hashing-ngrams --out $HERE/hashing
step minilm  python benchmarks/bert_throughput.py --max-texts 1000
step flair   embedx bench throughput -e flair-minilm-doc -e flair-minilm-word --max-texts 300 --out $HERE/flair
step tfhub   python benchmarks/tfhub_throughput.py --elmo runs/throughput-models/elmo/module --max-texts 500
