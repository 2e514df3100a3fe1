"""One-pass evaluation: run the tracker over a benchmark, write toolkit result files, score, plot.

Result files go under ``out_dir``:

- ``lasot/<seq>.txt``: one ``x,y,w,h`` line per frame (LaSOT / OTB toolkit format);
- ``got10k/<seq>/<seq>_001.txt`` (boxes) and ``got10k/<seq>/<seq>_time.txt`` (seconds per
  frame), the GOT-10k toolkit format;
- ``summary.json``, ``success.png`` and ``precision.png``.

Frames whose ground truth is NaN / empty / absent are skipped by the metrics (see
:mod:`spiketrack.model.metrics`). A sequence whose first frame has no valid box cannot be
initialised and is skipped with a note in the summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from spiketrack.model import metrics as M
from spiketrack.model.data.sequence import Sequence, valid_boxes
from spiketrack.model.tracker import SpikeTrackTracker


def run_sequence(tracker: SpikeTrackTracker, seq: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """OPE on one sequence: returns (boxes [N, 4], tracker seconds per frame [N])."""
    n = len(seq)
    boxes = np.zeros((n, 4))
    times = np.zeros(n)
    for i in range(n):
        img = seq.frame(i)
        t0 = time.perf_counter()
        if i == 0:
            tracker.init(img, seq.boxes[0])
            boxes[0] = seq.boxes[0]
        else:
            boxes[i] = tracker.update(img)
        times[i] = time.perf_counter() - t0
    return boxes, times


def write_results(out_dir: Path, name: str, boxes: np.ndarray, times: np.ndarray) -> None:
    lasot = out_dir / "lasot"
    got = out_dir / "got10k" / name
    lasot.mkdir(parents=True, exist_ok=True)
    got.mkdir(parents=True, exist_ok=True)
    np.savetxt(lasot / f"{name}.txt", boxes, fmt="%.3f", delimiter=",")
    np.savetxt(got / f"{name}_001.txt", boxes, fmt="%.3f", delimiter=",")
    np.savetxt(got / f"{name}_time.txt", times, fmt="%.6f")


def plot_curves(summary: dict, success_path: Path, precision_path: Path, label: str = "SpikeTrack") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(M.SUCCESS_THRESHOLDS, summary["success_curve"], label=f"{label} [{summary['auc']:.3f}]")
    ax.set(xlabel="Overlap threshold", ylabel="Success rate", title="Success plot of OPE", xlim=(0, 1), ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(success_path, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(M.PRECISION_THRESHOLDS, summary["precision_curve"], label=f"{label} [{summary['precision']:.3f}]")
    ax.set(xlabel="Location error threshold (px)", ylabel="Precision", title="Precision plot of OPE",
           xlim=(0, 50), ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(precision_path, dpi=120)
    plt.close(fig)


def evaluate(tracker: SpikeTrackTracker, sequences: list[Sequence], out_dir: str | Path, *,
             absent: str = "exclude", plot: str | Path | None = None, progress: bool = True,
             label: str = "SpikeTrack") -> dict:
    """Run OPE over ``sequences``; write result files and plots; return the summary dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores, skipped = [], []
    total_time, total_frames = 0.0, 0
    it = sequences
    if progress:
        from tqdm import tqdm

        it = tqdm(sequences, desc="eval", unit="seq", dynamic_ncols=True)
    for seq in it:
        if len(seq) == 0 or not valid_boxes(seq.boxes[:1])[0]:
            skipped.append(seq.name)
            continue
        boxes, times = run_sequence(tracker, seq)
        write_results(out_dir, seq.name, boxes, times)
        total_time += float(times[1:].sum())
        total_frames += len(seq) - 1
        size = seq.meta.get("resolution")
        if size is None:
            h, w = seq.frame(0).shape[:2]
            size = (w, h)
        s = M.score_sequence(boxes, seq.boxes[: len(boxes)], seq.visible[: len(boxes)], image_size=tuple(size),
                             absent=absent, name=seq.name)
        if s is None:
            skipped.append(seq.name)
        else:
            scores.append(s)
    summary = M.summarize(scores)
    summary["fps"] = total_frames / total_time if total_time > 0 else float("nan")
    summary["tracker"] = {k: getattr(tracker, k) for k in ("update_interval", "update_threshold", "size_lr")
                          if hasattr(tracker, k)}
    summary["frames"] = int(sum(s.n_frames for s in scores))
    summary["evaluated_frames"] = int(sum(s.n_evaluated for s in scores))
    summary["skipped_sequences"] = skipped
    summary["absent_policy"] = absent
    summary["per_sequence"] = {s.name: {"auc": s.auc, "precision": float(s.precision[M.PRECISION_AT]),
                                        "ao": float(np.mean(s.got_ious)) if len(s.got_ious) else None}
                               for s in scores}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    success_path = Path(plot) if plot else out_dir / "success.png"
    stem = success_path.stem
    stem = stem.replace("success", "precision") if "success" in stem else stem + "_precision"
    precision_path = success_path.with_name(stem + (success_path.suffix or ".png"))
    success_path.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(summary, success_path, precision_path, label)
    summary["plots"] = [str(success_path), str(precision_path)]
    return summary


JSON_KEYS = ("auc", "precision", "norm_precision", "ao", "sr50", "sr75", "fps", "sequences", "frames")
