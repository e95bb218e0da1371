#!/bin/bash
# Parts 2 and 3 of the --full comparison: bash bench-full.sh trec | email-spam (from the repository root).
# One dataset per process and one thread each, so two parts can share a 2-core machine without
# oversubscription. The committed journal is copied into the run folder first, so the run resumes.
set -eu
p=$1
export TF_CPP_MIN_LOG_LEVEL=2 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
mkdir -p runs/bench-full-$p
[ -f runs/bench-full-$p/journal.jsonl ] || cp benchmarks/results/compare-full/journal-$p.jsonl runs/bench-full-$p/journal.jsonl
LM="flair-char-lm:forward=runs/flair-lm/forward/best-lm.pt:backward=runs/flair-lm/backward/best-lm.pt"
FINETUNERS=(--finetuner minilm-finetune --finetuner minilm-finetune-top2 --finetuner keras-elmo-trained
            --finetuner keras-hub-finetune:handle=runs/swivel-20d/module)
PACKAGED=(-e glove-6b-50d -e hashing-ngrams -e minilm-l6 -e text-stats -e flair-minilm-doc -e flair-minilm-word)
# first without ELMo's features, so the fine-tuners run early; then everything (resumes what is done)
embedx bench compare --full --out runs/bench-full-$p --datasets $p --layer-sweep none \
  "${PACKAGED[@]}" -e $LM -e gnews-swivel-20dim:model=runs/swivel-20d/module "${FINETUNERS[@]}"
embedx bench compare --full --out runs/bench-full-$p --datasets $p --layer-sweep none \
  "${PACKAGED[@]}" -e elmo-trained -e $LM -e gnews-swivel-20dim:model=runs/swivel-20d/module "${FINETUNERS[@]}"
