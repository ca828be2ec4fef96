#!/usr/bin/env bash
# The committed evidence of the paper's regime on the CPU: every experiment chapter on WideResNet-10-1 (residual
# blocks with batch norm) trained on all 59,945 Fashion-MNIST training images for 10 epochs, clean and adversarially
# (PGD-linf 8/255, 3 steps of 3/255 per batch: the paper takes 10 steps of 2/255 on a GPU), three seeds, 1,000 test
# inputs per seed; then the valley-conditions study over batch norm, residual connections, depth, width and training
# length. Each sweep is one `flatrob sweep` (Snakemake): an interrupted script resumes where it stopped, and a trained
# model is trained once (cache/) and shared by every chapter with the same recipe.
#
#   bash workflow/residual-evidence.sh [SWEEP ...]     # all sweeps, or the named ones, in this order
#
# Run it in a clean checkout (a git worktree of the commit to be credited), then commit data/sweeps/<name>/.
# Each run records its own time: the committed runs took about 22 hours of run time in all, one core a run and two
# runs at a time, so about 11 hours on two cores (the valley-conditions study alone about 11.5 and 6).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

RECIPE=(-p architecture wrn-10-1 -p n_train 0 -p epochs 10 -p lr 0.05 -p batch_size 128 -p seed 0,1,2)
ADV=(-p adv_steps 3 -p adv_step_size 0.011764705882352941)
INPUTS=(-p n_samples 1000)

sweep() {  # name chapter args...
  local name=$1 chapter=$2
  shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "== $(date -u +%FT%TZ) sweep $name"
  "$PY" -m flatrob sweep "$chapter" "$@" --name "$name" --cores 1
}

ONLY="$*"
sweep uncanny-valley-wrn-10-1 uncanny-valley "${RECIPE[@]}" "${ADV[@]}" "${INPUTS[@]}"
sweep gradient-masking-wrn-10-1 gradient-masking "${RECIPE[@]}" "${INPUTS[@]}"
sweep last-layer-scaling-wrn-10-1 last-layer-scaling "${RECIPE[@]}" "${INPUTS[@]}"
sweep basin-wrn-10-1 basin "${RECIPE[@]}" "${ADV[@]}" "${INPUTS[@]}"
sweep confidence-flatness-wrn-10-1 confidence-flatness "${RECIPE[@]}" "${INPUTS[@]}"
sweep detector-wrn-10-1 detector "${RECIPE[@]}" "${ADV[@]}" "${INPUTS[@]}"
# The detector along the attack's path (claim 11: where on the path does the stump separate?), the clean model only,
# 20 steps of 2/255 at 8/255 (the first 10 are the paper's attack); its models are then committed (data/models):
#   python -m flatrob models add data/sweeps/detector-path-wrn-10-1
sweep detector-path-wrn-10-1 detector "${RECIPE[@]}" "${INPUTS[@]}" -p trainings '[clean]'
# Where the adversarially trained valley lies (claim 7: "adversarial training shifts the valley"): both models along a
# ladder of budgets, 8/255, 12/255, 16/255, 0.1 and 0.2, with paths of 20 steps (each a quarter of its radius: well past
# the flip); the clean models come from data/models, the adversarially trained ones are then committed:
#   python -m flatrob models add data/sweeps/uncanny-valley-at-ladder
sweep uncanny-valley-at-ladder uncanny-valley "${RECIPE[@]}" "${ADV[@]}" "${INPUTS[@]}" -p attack_steps 20 \
  -p radii '[0.047058823529411764, 0.06274509803921569, 0.1, 0.2]'
# valley-conditions: when does the collapse appear? Four sweeps of the clean model, on all training images, three
# seeds, 500 inputs per seed, four PGD budgets at 8/255: batch norm x residual connections (and the small CNN) at 10
# epochs; the same networks at 2 epochs (training length); WideResNet-16-1 (depth) and WideResNet-10-2 (width) at 10.
# (valley-conditions-residual was first made with seeds 0,1 and then extended to 0,1,2 in the same folder.)
ALL=(-p n_train 0 -p lr 0.05 -p batch_size 128 -p n_samples 500 -p seed 0,1,2)
STUDY=wrn-10-1,wrn-10-1-plain-nobn,wrn-10-1-nobn,wrn-10-1-plain,small-cnn
sweep valley-conditions-residual valley-conditions "${ALL[@]}" -p epochs 10 -p architecture "$STUDY"
sweep valley-conditions-length valley-conditions "${ALL[@]}" -p epochs 2 -p architecture "$STUDY"
sweep valley-conditions-depth valley-conditions "${ALL[@]}" -p epochs 10 -p architecture wrn-16-1
sweep valley-conditions-width valley-conditions "${ALL[@]}" -p epochs 10 -p architecture wrn-10-2
# The design that lets each axis show an effect: batch norm crossed with a third training length (5 epochs, between
# the 2 and 10 above), and depth and width on a baseline that does not collapse (2 epochs), beside the collapsing
# one at 10 epochs above.
sweep valley-conditions-length-5 valley-conditions "${ALL[@]}" -p epochs 5 -p architecture wrn-10-1,wrn-10-1-nobn
sweep valley-conditions-size-2 valley-conditions "${ALL[@]}" -p epochs 2 -p architecture wrn-16-1,wrn-10-2
# A network with attention: the small vision transformer of the zoo, trained and attacked like the others; its models
# are then committed (python -m flatrob models add data/sweeps/valley-conditions-vit).
sweep valley-conditions-vit valley-conditions "${ALL[@]}" -p epochs 10 -p architecture vit
# The book's small CNN over the same three seeds at each chapter's defaults (4 epochs on all images, 300 inputs): the
# further setting the report shows beside the residual network.
SMALL=(-p seed 0,1,2)
sweep uncanny-valley-small-cnn uncanny-valley "${SMALL[@]}"
sweep basin-small-cnn basin "${SMALL[@]}"
sweep last-layer-scaling-small-cnn last-layer-scaling "${SMALL[@]}"
sweep gradient-masking-small-cnn gradient-masking "${SMALL[@]}"
sweep confidence-flatness-small-cnn confidence-flatness "${SMALL[@]}"
sweep detector-small-cnn detector "${SMALL[@]}"
echo "== $(date -u +%FT%TZ) done"
