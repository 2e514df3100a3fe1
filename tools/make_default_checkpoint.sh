#!/usr/bin/env bash
# Reproduces the shipped default checkpoint model/checkpoints/edge-t3.pt on CPU:
# phase 1 trains edge-t1 on the synthetic data, phase 2 fine-tunes edge-t3 from it (the paper's
# two-phase recipe, docs/tracking.md), then the weights (no optimizer state) are copied into the package.
# Usage: bash tools/make_default_checkpoint.sh [T1_STEPS] [T3_STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
T1_STEPS=${1:-2000}
T3_STEPS=${2:-400}
export OMP_NUM_THREADS=1
ST=.venv/bin/spiketrack
$ST train --config edge-t1 --data synthetic --out runs/default-t1 --steps "$T1_STEPS" --batch 16 --lr 1e-3 \
    --backbone-lr-mult 1.0 --ckpt-every 100 --threads 1 --no-progress --resume
$ST train --config edge-t3 --data synthetic --out runs/default-t3 --steps "$T3_STEPS" --batch 16 --lr 4e-4 \
    --backbone-lr-mult 1.0 --ckpt-every 50 --threads 1 --no-progress --resume --init-from runs/default-t1/last.pt
.venv/bin/python -c "from spiketrack.model.checkpoint import export_weights as e; e('runs/default-t3/last.pt', 'model/checkpoints/edge-t3.pt')"
echo "wrote model/checkpoints/edge-t3.pt"
