"""Loaders for the public tracking benchmarks' folder layouts, and the ``--data`` spec parser.

Layouts (as distributed):

LaSOT
    ``ROOT/<category>/<category>-<k>/img/00000001.jpg ...`` with ``groundtruth.txt``
    (x,y,w,h per line, comma separated), ``full_occlusion.txt`` and ``out_of_view.txt``
    (one line of comma-separated 0/1 flags). ROOT may also be a single category folder.
GOT-10k
    ``ROOT/{train,val,test}/list.txt`` and ``ROOT/<split>/<seq>/00000001.jpg ...`` with
    ``groundtruth.txt`` (x,y,w,h, comma separated), ``absence.label`` (0/1 per line) and
    ``cover.label`` (0..8 per line). The test split has only the first frame's box.
    ROOT may also be a split folder itself.
OTB
    ``ROOT/<seq>/img/0001.jpg ...`` and ``ROOT/<seq>/groundtruth_rect.txt`` (x,y,w,h; comma,
    whitespace or tab separated). Sequences with several targets ship
    ``groundtruth_rect.1.txt`` etc.; the first one is used.

Every loader returns a list of :class:`~spiketrack.model.data.sequence.Sequence` whose frames
load lazily. Missing folders raise FileNotFoundError naming the path.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spiketrack.model.data.sequence import Sequence, valid_boxes

IMG_EXT = (".jpg", ".jpeg", ".png", ".bmp")


def parse_box_line(line: str) -> list[float]:
    """One ``x,y,w,h`` line (comma, whitespace, tab or semicolon separated) -> four floats.

    Raises ValueError with a short reason (the caller adds where the line came from).
    """
    parts = [p for p in re.split(r"[,\s;]+", line.strip()) if p != ""]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"cannot parse box {line.strip()!r}") from None
    if len(vals) != 4:
        raise ValueError(f"expected 4 numbers x,y,w,h, got {len(vals)}")
    return vals


def read_boxes(path: str | Path) -> np.ndarray:
    """Read an x,y,w,h text file (comma, whitespace, tab or semicolon separated) as [N, 4].

    Empty fields and ``nan`` become NaN. Raises ValueError naming the file and line on junk.
    """
    rows = []
    for k, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(parse_box_line(line))
        except ValueError as e:
            raise ValueError(f"{path}:{k}: {e}") from None
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _read_flags(path: Path) -> np.ndarray:
    text = path.read_text()
    return np.array([int(float(t)) for t in re.split(r"[,\s]+", text.strip()) if t], dtype=np.int64)


def _frames(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXT)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


# ----------------------------------------------------------------------------- LaSOT
def _lasot_sequence(d: Path) -> Sequence:
    frames = _frames(d / "img")
    boxes = read_boxes(_require(d / "groundtruth.txt", "LaSOT ground truth"))
    n = len(boxes)
    absent = np.zeros(n, bool)
    for flag in ("full_occlusion.txt", "out_of_view.txt"):
        if (d / flag).exists():
            f = _read_flags(d / flag)[:n]
            absent[: len(f)] |= f.astype(bool)
    vis = ~absent & valid_boxes(boxes)
    return Sequence(d.name, frames[:n] if len(frames) >= n else frames, boxes, vis,
                    meta={"dataset": "lasot", "category": d.parent.name})


def load_lasot(root: str | Path, split_file: str | Path | None = None) -> list[Sequence]:
    """All LaSOT sequences under ROOT (category folders, or one category folder)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"LaSOT folder not found: {root}")
    dirs = [p.parent for p in sorted(root.glob("*/groundtruth.txt"))]
    dirs += [p.parent for p in sorted(root.glob("*/*/groundtruth.txt"))]
    if split_file is not None:
        keep = set(Path(split_file).read_text().split())
        dirs = [d for d in dirs if d.name in keep]
    if not dirs:
        raise FileNotFoundError(f"no LaSOT sequences (*/img + groundtruth.txt) under {root}")
    return [_lasot_sequence(d) for d in dirs]


# ----------------------------------------------------------------------------- GOT-10k
def _got10k_sequence(d: Path, split: str) -> Sequence:
    frames = _frames(d)
    boxes = read_boxes(_require(d / "groundtruth.txt", "GOT-10k ground truth"))
    n = len(frames)
    full = np.full((n, 4), np.nan)
    full[: min(n, len(boxes))] = boxes[:n]
    vis = valid_boxes(full)
    cover = None
    if (d / "absence.label").exists():
        a = _read_flags(d / "absence.label")[:n]
        vis[: len(a)] &= a == 0
    if (d / "cover.label").exists():
        cover = _read_flags(d / "cover.label")[:n]
        vis[: len(cover)] &= cover > 0
    meta = {"dataset": "got10k", "split": split}
    if cover is not None:
        meta["cover"] = cover
    return Sequence(d.name, frames, full, vis, meta=meta)


def load_got10k(root: str | Path, split: str | None = None) -> list[Sequence]:
    """GOT-10k sequences of one split (default: ``val`` if present, else ``train``).

    ROOT is the dataset folder (with ``train/val/test``) or a split folder. For ``test``
    only the first frame is annotated; later rows are NaN.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"GOT-10k folder not found: {root}")
    if (root / "list.txt").exists() and split is None:
        split_dir = root
    else:
        if split is None:
            split = "val" if (root / "val").is_dir() else "train"
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"GOT-10k split folder not found: {split_dir}")
    split = split or split_dir.name
    if (split_dir / "list.txt").exists():
        names = (split_dir / "list.txt").read_text().split()
    else:
        names = sorted(p.parent.name for p in split_dir.glob("*/groundtruth.txt"))
    if not names:
        raise FileNotFoundError(f"no GOT-10k sequences under {split_dir}")
    return [_got10k_sequence(split_dir / n, split) for n in names]


# ----------------------------------------------------------------------------- OTB
def load_otb(root: str | Path) -> list[Sequence]:
    """OTB sequences under ROOT (``<seq>/img`` + ``<seq>/groundtruth_rect*.txt``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"OTB folder not found: {root}")
    seqs = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        gts = sorted(d.glob("groundtruth_rect*.txt"))
        if not gts:
            continue
        boxes = read_boxes(gts[0])
        frames = _frames(d / "img")
        n = min(len(frames), len(boxes))
        seqs.append(Sequence(d.name, frames[:n], boxes[:n], meta={"dataset": "otb"}))
    if not seqs:
        raise FileNotFoundError(f"no OTB sequences (<seq>/img + groundtruth_rect.txt) under {root}")
    return seqs


# ----------------------------------------------------------------------------- specs
def load_eval_dataset(spec: str, max_seqs: int | None = None,
                      max_frames: int | None = None) -> tuple[str, list[Sequence]]:
    """Parse ``synthetic | synthetic-val | synthetic-hard | synthetic-hard-val | lasot:DIR | got10k:DIR[:split] |
    otb:DIR`` into (kind, sequences): the first ``max_seqs`` sequences, each cut to its first
    ``max_frames`` frames."""
    from spiketrack.model.data.synthetic import (benchmark_sequences, hard_sequences, hard_validation_sequences,
                                                  validation_sequences)

    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "synthetic":
        seqs = benchmark_sequences(max_seqs)
    elif kind == "synthetic-val":
        seqs = validation_sequences(max_seqs)
    elif kind == "synthetic-hard":
        seqs = hard_sequences(max_seqs)
    elif kind == "synthetic-hard-val":
        seqs = hard_validation_sequences(max_seqs)
    elif kind == "lasot" and rest:
        seqs = load_lasot(rest)
    elif kind == "got10k" and rest:
        path, split = rest, None
        m = re.match(r"^(.*):(train|val|test)$", rest)
        if m:
            path, split = m.group(1), m.group(2)
        seqs = load_got10k(path, split)
    elif kind == "otb" and rest:
        seqs = load_otb(rest)
    else:
        raise ValueError(f"unknown dataset spec {spec!r}; use synthetic, synthetic-val, synthetic-hard, "
                         "synthetic-hard-val, lasot:DIR, got10k:DIR or otb:DIR")
    if max_seqs is not None:
        seqs = seqs[:max_seqs]
    if max_frames is not None:
        seqs = [s.head(max_frames) for s in seqs]
    return kind, seqs
