#!/usr/bin/env bash
# Reproduces the shipped default checkpoint model/checkpoints/edge-t3.pt on CPU:
# phase 1 trains edge-t1 on the synthetic data, phase 2 fine-tunes edge-t3 from it (the paper's
# two-phase recipe, docs/tracking.md), then the weights (no optimizer state) are copied into the package.
# The T1 and T3 checkpoints are both scored on the `synthetic` benchmark (runs/<name>-eval.json).
#
# Usage: bash tools/make_default_checkpoint.sh [T1_STEPS] [T3_STEPS] [SUFFIX]
#   SUFFIX "-ann" trains the ANN twin (edge-t1-ann -> edge-t3-ann) with the identical recipe and
#   ships nothing (the twin is a comparison, model/checkpoints holds the spiking model only).
set -euo pipefail
cd "$(dirname "$0")/.."
T1_STEPS=${1:-4000}
T3_STEPS=${2:-1000}
SUFFIX=${3:-}
export OMP_NUM_THREADS=1
ST=.venv/bin/spiketrack
COMMON="--batch 16 --backbone-lr-mult 1.0 --center-jitter 1.0 --scale-jitter 0.25 --threads 1 --no-progress --resume"
$ST train --config edge-t1$SUFFIX --data synthetic --out runs/default-t1$SUFFIX --steps "$T1_STEPS" --lr 1e-3 \
    --ckpt-every 100 $COMMON
$ST eval --checkpoint runs/default-t1$SUFFIX/last.pt --dataset synthetic --json > runs/default-t1$SUFFIX-eval.json
$ST train --config edge-t3$SUFFIX --data synthetic --out runs/default-t3$SUFFIX --steps "$T3_STEPS" --lr 4e-4 \
    --ckpt-every 50 --init-from runs/default-t1$SUFFIX/last.pt $COMMON
$ST eval --checkpoint runs/default-t3$SUFFIX/last.pt --dataset synthetic --json > runs/default-t3$SUFFIX-eval.json
if [ -z "$SUFFIX" ]; then
    .venv/bin/python -c "from spiketrack.model.checkpoint import export_weights as e; e('runs/default-t3/last.pt', 'model/checkpoints/edge-t3.pt')"
    echo "wrote model/checkpoints/edge-t3.pt"
fi
cat runs/default-t1$SUFFIX-eval.json runs/default-t3$SUFFIX-eval.json
