#!/usr/bin/env bash
# Reproduces the shipped default checkpoint model/checkpoints/edge-t3.pt on CPU (one core per run;
# measured ~75 min T1 (8000 steps) + ~15 min T3 on the 2-core machine, docs/tracking.md 2.1):
#   phase 1a: edge-t1 from scratch on the synthetic data, T1A steps (LR 1e-3, x0.1 after 75 %);
#   phase 1b: the same run resumed to T1B steps (the LR schedule is recomputed for T1B steps, so the
#             LR goes back to 1e-3 until 75 % of T1B, then x0.1): exactly the run that was shipped;
#   phase 2:  edge-t3 initialised from the T1 checkpoint (the paper's two-phase recipe), T3 steps;
# then the weights (no optimizer state) are copied into the package. Every phase is scored on the
# `synthetic` benchmark (runs/<phase>-eval.json).
#
# Usage: bash tools/make_default_checkpoint.sh [T1A] [T1B] [T3] [SUFFIX]
#   defaults 4000 8000 1000 (the shipped run). SUFFIX "-ann" trains the ANN twin
#   (edge-t1-ann -> edge-t3-ann) with the identical recipe and ships nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
T1A=${1:-4000}
T1B=${2:-8000}
T3=${3:-1000}
SUFFIX=${4:-}
export OMP_NUM_THREADS=1
ST=.venv/bin/spiketrack
COMMON="--batch 16 --backbone-lr-mult 1.0 --center-jitter 1.0 --scale-jitter 0.25 --threads 1 --no-progress --resume"
OUT1=runs/default-t1$SUFFIX
OUT3=runs/default-t3$SUFFIX
$ST train --config edge-t1$SUFFIX --data synthetic --out $OUT1 --steps "$T1A" --lr 1e-3 --ckpt-every 100 $COMMON
$ST eval --checkpoint $OUT1/last.pt --dataset synthetic --json > runs/t1-$T1A$SUFFIX-eval.json
if [ "$T1B" -gt "$T1A" ]; then
    $ST train --config edge-t1$SUFFIX --data synthetic --out $OUT1 --steps "$T1B" --lr 1e-3 --ckpt-every 100 $COMMON
    $ST eval --checkpoint $OUT1/last.pt --dataset synthetic --json > runs/t1-$T1B$SUFFIX-eval.json
fi
$ST train --config edge-t3$SUFFIX --data synthetic --out $OUT3 --steps "$T3" --lr 4e-4 --ckpt-every 50 \
    --init-from $OUT1/last.pt $COMMON
$ST eval --checkpoint $OUT3/last.pt --dataset synthetic --json > runs/t3-$T1B$SUFFIX-eval.json
if [ -z "$SUFFIX" ]; then
    .venv/bin/python -c "from spiketrack.model.checkpoint import export_weights as e; e('$OUT3/last.pt', 'model/checkpoints/edge-t3.pt')"
    echo "wrote model/checkpoints/edge-t3.pt"
fi
