#!/bin/sh
# The committed throughput results: one command per family, from the repository root with .venv active.
# Each command's load conditions (uptime, the busiest processes) are appended to load.txt beside this file.
# Needs the modules of benchmarks/tfhub_throughput.py: it builds the Swivel-format GloVe module and the
# converted MiniLM itself; the trained ELMo comes from
#   embedx elmo train dataset:mr --out runs/throughput-models/elmo --max-train-tokens 60000 --heldout 200
set -e
HERE=benchmarks/results/throughput
load() { { echo "== $1 $(date -u +%H:%M:%S)"; uptime; ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -6; } >> $HERE/load.txt; }
step() { name=$1; shift; load "before $name"; "$@"; load "after $name"; }
step glove       python benchmarks/extract_glove.py
step hashing     embedx bench throughput -e hashing-ngrams --out $HERE/hashing
step minilm      python benchmarks/bert_throughput.py --max-texts 1000
step flair       embedx bench throughput -e flair-minilm-doc -e flair-minilm-word --max-texts 300 --out $HERE/flair
step tfhub       python benchmarks/tfhub_throughput.py --elmo runs/throughput-models/elmo/module --max-texts 500
step minilm-quiet embedx bench throughput -e minilm-l6 --max-texts 2000 --sweep batch --no-cold --repeats 3 --out $HERE/minilm-quiet
