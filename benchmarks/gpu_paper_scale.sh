#!/usr/bin/env bash
# On a GPU machine (one prepared script, results committed with provenance): the paper's ResNet-18 on Fashion-MNIST
# as the paper's networks take CIFAR (fashion-mnist-3x32: zero-padded to 32x32, three channels; random crops and
# flips), through the same chapters as the CPU's residual evidence: clean and adversarially trained (PGD-linf 8/255,
# the paper's 10 steps of 2/255), three seeds, 1,000 test inputs each, the paper's attack. A further setting of the
# paper's kind beside WideResNet-10-1 on the CPU.
#
#   EPOCHS=15 bash benchmarks/gpu_paper_scale.sh [SWEEP ...]      # the paper trains 100 epochs; fit what time allows
#
# Sweeps run one job at a time in this process where Snakemake is missing (flatrob sweep --sequential), resume
# where they stopped, and write data/sweeps/<name>/ (commit it, with the machine's provenance in every run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EPOCHS=${EPOCHS:-15}
ONLY="$*"
RECIPE=(-p dataset fashion-mnist-3x32 -p architecture resnet18 -p augment true -p n_train 0 -p epochs "$EPOCHS"
        -p lr 0.1 -p batch_size 128 -p device cuda -p seed 0,1,2 -p n_samples 1000)
ADV=(-p adv_steps 10 -p adv_step_size 0.00784313725490196)

sweep() {  # name chapter args...
  local name=$1 chapter=$2
  shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "== $(date -u +%FT%TZ) sweep $name"
  "$PY" -m flatrob sweep "$chapter" "$@" --name "$name" --sequential
}

sweep uncanny-valley-resnet18-gpu uncanny-valley "${RECIPE[@]}" "${ADV[@]}"
sweep gradient-masking-resnet18-gpu gradient-masking "${RECIPE[@]}"
sweep last-layer-scaling-resnet18-gpu last-layer-scaling "${RECIPE[@]}"
sweep basin-resnet18-gpu basin "${RECIPE[@]}" "${ADV[@]}"
sweep confidence-flatness-resnet18-gpu confidence-flatness "${RECIPE[@]}"
sweep detector-resnet18-gpu detector "${RECIPE[@]}" "${ADV[@]}"
echo "== $(date -u +%FT%TZ) done"
