#!/usr/bin/env bash
# Reproduces the shipped checkpoints on CPU (one core per run; measured times in docs/tracking.md 2.1
# and docs/quant.md): the float edge-t3 model/checkpoints/edge-t3.pt (phases 1-2) and, with QAT > 0,
# the shipped default, its int8 QAT model/checkpoints/edge-t3-qat8.pt (phase 3):
#   phase 1: edge-t1 from scratch on the synthetic data, trained in stages T1_STAGES (comma list,
#            e.g. 4000,8000,16000): the first stage runs from step 0, each next stage resumes the
#            same run to its step count. The LR schedule is recomputed for each stage's total
#            (LR 1e-3 before 75 % of that total, x0.1 after), so a stage that starts before its 75 %
#            point goes back to 1e-3 (as all three shipped stages do); this is exactly how the
#            shipped run was trained, one stage at a time;
#   phase 2: edge-t3 initialised from the final T1 checkpoint (the paper's two-phase recipe; the MRM's
#            per-timestep modules of t = 1, 2 start as copies of t = 0), T3 steps;
# then the weights (no optimizer state) are copied into the package. Every stage is scored on the
# `synthetic` benchmark (runs/t1-<steps>[-ann]-eval.json, runs/t3-<T1 steps>-<T3 steps>[-ann]-eval.json)
# with the variant's tracker defaults. A stage the run has already passed is skipped, so an
# interrupted script can simply be started again.
#
#   phase 3 (only with QAT > 0): Brevitas quantisation-aware fine-tuning of the float edge-t3 just
#            copied into the package (`spiketrack quantize --qat-steps`), the recipe of docs/quant.md
#            ("Stem frozen"): weight plan QAT_BITS, the stem frozen at its post-training values
#            (--qat-freeze stem), AdamW LR 1e-4, batch 16, centre / scale jitter 1.0 / 0.25, on
#            mix:synthetic@1,synthetic-hard@1, a QAT_SCHEDULE-step schedule (LR x0.1 at half of it)
#            stopped after QAT steps (--stop-after; resumable: an interrupted run continues to step
#            QAT). The shipped default is QAT 150 of QAT_SCHEDULE 200 (the drop at step 100), QAT_BITS 8.
#            The step-QAT checkpoint (runs/default-qat<bits>-<QAT>/qat-run/last.pt) is copied, weights
#            only and with its recipe and the parent's SHA-256 in extra["qat"], to
#            model/checkpoints/edge-t3-qat<bits>.pt, and scored as the integer network on synthetic,
#            synthetic-val, synthetic-hard and synthetic-hard-val next to its float parent and the
#            parent's post-training quantisation (runs/qat-*-eval.json; four times 24 sequences each:
#            hours on one core).
#
# Usage: bash tools/make_default_checkpoint.sh [T1_STAGES] [T3] [SUFFIX] [QAT] [QAT_BITS] [QAT_SCHEDULE]
#   defaults 4000,8000,16000 2000 "" 0 8 200 (the shipped float run; add "" 150 for the shipped QAT
#   default). SUFFIX "-ann" trains the ANN twin (edge-t1-ann -> edge-t3-ann) with the identical recipe
#   and ships nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
T1_STAGES=${1:-4000,8000,16000}
T3=${2:-2000}
SUFFIX=${3:-}
QAT=${4:-0}
QAT_BITS=${5:-8}
QAT_SCHEDULE=${6:-200}
export OMP_NUM_THREADS=1
ST=.venv/bin/spiketrack
PY=.venv/bin/python
# --scene-cache 5000 keeps every synthetic training scene in memory (~5.5 GB): speed only.
COMMON="--batch 16 --backbone-lr-mult 1.0 --center-jitter 1.0 --scale-jitter 0.25 --threads 1 --no-progress
        --resume --scene-cache 5000"
OUT1=runs/default-t1$SUFFIX
step_of() {  # the step stored in a run's last.pt (0 when there is none)
    if [ -f "$1/last.pt" ]; then
        $PY -c "import sys; from spiketrack.model.checkpoint import load_checkpoint; print(load_checkpoint(sys.argv[1])['step'])" "$1/last.pt"
    else
        echo 0
    fi
}
for S in ${T1_STAGES//,/ }; do
    if [ "$(step_of $OUT1)" -ge "$S" ]; then
        echo "T1 stage $S: already done"
        continue
    fi
    $ST train --config edge-t1$SUFFIX --data synthetic --out $OUT1 --steps "$S" --lr 1e-3 --ckpt-every 100 $COMMON
    $ST eval --checkpoint $OUT1/last.pt --dataset synthetic --json > runs/t1-$S$SUFFIX-eval.json
done
T1=$(step_of $OUT1)
OUT3=runs/default-t3$SUFFIX-from-$T1
$ST train --config edge-t3$SUFFIX --data synthetic --out $OUT3 --steps "$T3" --lr 4e-4 --ckpt-every 50 \
    --init-from $OUT1/last.pt $COMMON
$ST eval --checkpoint $OUT3/last.pt --dataset synthetic --json > runs/t3-$T1-$T3$SUFFIX-eval.json
if [ -z "$SUFFIX" ]; then
    $PY -c "from spiketrack.model.checkpoint import export_weights as e; e('$OUT3/last.pt', 'model/checkpoints/edge-t3.pt')"
    echo "wrote model/checkpoints/edge-t3.pt"
fi
if [ -z "$SUFFIX" ] && [ "$QAT" -gt 0 ]; then
    if [ "$QAT" -gt "$QAT_SCHEDULE" ]; then
        echo "QAT ($QAT) must not exceed QAT_SCHEDULE ($QAT_SCHEDULE)" >&2
        exit 2
    fi
    PARENT=model/checkpoints/edge-t3.pt
    OUTQ=runs/default-qat$QAT_BITS-$QAT
    DONE=$(step_of $OUTQ/qat-run)
    if [ "$DONE" -lt "$QAT" ]; then
        QARGS="--checkpoint $PARENT --out $OUTQ --qat-steps $QAT_SCHEDULE --stop-after $((QAT - DONE))
               --bits $QAT_BITS --qat-lr 1e-4 --qat-freeze stem --data mix:synthetic@1,synthetic-hard@1 --batch 16
               --center-jitter 1.0 --scale-jitter 0.25 --scene-cache 5000 --threads 1 --check-frames 2"
        if [ "$DONE" -gt 0 ]; then QARGS="$QARGS --resume"; fi
        $ST quantize $QARGS --json > runs/qat$QAT_BITS-$QAT-quantize.json
    fi
    QCK=model/checkpoints/edge-t3-qat$QAT_BITS.pt
    $PY - "$OUTQ/qat-run/last.pt" "$QCK" "$PARENT" "$QAT_SCHEDULE" <<'PYEOF'
import hashlib, sys
from spiketrack.model.checkpoint import export_weights, load_checkpoint
src, dst, parent, schedule = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ck = load_checkpoint(src)
train = ck["extra"]["train"]
qat = dict(ck["extra"]["qat"], steps=ck["step"], schedule_steps=schedule, lr_drop=train["lr_drop"] or 0.5,
           batch=train["batch"], center_jitter=train["center_jitter"], scale_jitter=train["scale_jitter"],
           seed=train["seed"], parent_sha256=hashlib.sha256(open(parent, "rb").read()).hexdigest())
export_weights(src, dst, extra={"qat": qat})
PYEOF
    echo "wrote $QCK"
    # the integer network of the copied checkpoint against the golden model (exits 1 on a mismatch)
    $ST quantize --checkpoint $QCK --out $OUTQ/artifact --check-frames 2 --json > runs/qat$QAT_BITS-$QAT-check.json
    for D in synthetic synthetic-val synthetic-hard synthetic-hard-val; do
        $ST eval --checkpoint $PARENT --dataset $D --json > runs/qat-parent-$D-eval.json
        $ST eval --checkpoint $PARENT --dataset $D --quantized --weight-bits $QAT_BITS --json \
            > runs/ptq$QAT_BITS-$D-eval.json
        $ST eval --checkpoint $QCK --dataset $D --json > runs/qat$QAT_BITS-$QAT-$D-eval.json
    done
fi
