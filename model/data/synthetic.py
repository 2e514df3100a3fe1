"""Procedural synthetic tracking sequences (numpy only, deterministic by seed).

Each scene is a parametric description, so any frame renders on demand in about a
millisecond and the ground truth for all frames is known without rendering:

- a cluttered, textured background (smooth colour noise, gratings, ~25 static textured
  shapes) that pans slowly (camera motion);
- a textured target (checker / stripes / blocks / rings / noise texture, rectangle or
  ellipse) moving along a smooth random trajectory with rotation (affine motion), scale
  change and aspect-ratio change;
- 0-3 similar-looking distractors (the target's texture with perturbed colours) with
  their own trajectories, drawn under the target;
- in about half the scenes an occluder that sweeps across the target (partial and full
  occlusion), drawn over it;
- in about a third of the scenes large trajectory amplitudes so the target leaves the
  view and comes back;
- global illumination change (gain and bias drifting over time) and mild pixel noise.

Ground truth is x, y, w, h of the target's axis-aligned extent clipped to the image.
A frame is *absent* (``visible`` False) when less than 10 % of the target's area is
visible (out of view and/or covered by the occluder); absent frames keep the clipped box
when it has an area and are 0, 0, 0, 0 otherwise (LaSOT style).

The fixed evaluation benchmark ``synthetic`` is :func:`benchmark_sequences`:
``BENCHMARK_SEQUENCES`` (24) sequences of ``BENCHMARK_FRAMES`` (100) frames of
256 x 256 pixels, scene seeds ``BENCHMARK_SEED + i``. Training scenes use the disjoint
seed range starting at ``TRAIN_SEED_BASE``.

``synthetic-hard`` (:class:`HardSyntheticScene`, :func:`hard_sequences`, validation twin
:func:`hard_validation_sequences`, training seeds from ``HARD_TRAIN_SEED_BASE``) adds the cases
the plain scenes rarely hold: near-identical distractors that walk beside the target or cross
it, a partial occluder that stays on part of the target, low contrast, fast scale change,
truncation at the image border and uneven motion (jumps of 15-20 px).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from spiketrack.model.data.sequence import Sequence

FRAME_SIZE = 256
BENCHMARK_SEQUENCES = 24
BENCHMARK_FRAMES = 100
BENCHMARK_SEED = 20_260_000
TRAIN_SEED_BASE = 1_000_000
VALIDATION_SEED = 30_260_000  #: ``synthetic-val``: same size as the benchmark, disjoint seeds (for tuning)
HARD_SEED = 40_260_000  #: ``synthetic-hard`` benchmark seeds
HARD_VALIDATION_SEED = 50_260_000  #: ``synthetic-hard-val``: its disjoint validation twin
HARD_TRAIN_SEED_BASE = 2_000_000  #: ``synthetic-hard`` training scenes
HARD_CASES = ("beside", "cross", "partial_occlusion", "low_contrast", "fast_scale", "border", "jumps")
VISIBLE_FRACTION = 0.1
_PAN = 24  # background margin for camera pan
_TEX = 32  # texture side


# ----------------------------------------------------------------------------- textures
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, ch: int = 3) -> np.ndarray:
    """Bilinearly upsampled random grid: smooth colour noise in [0, 1], shape [h, w, ch]."""
    grid = rng.random((cells + 1, cells + 1, ch)).astype(np.float32)
    ys = np.linspace(0, cells, h, dtype=np.float32)
    xs = np.linspace(0, cells, w, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), cells - 1)
    x0 = np.minimum(xs.astype(int), cells - 1)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - wy) * (1 - wx) + g01 * (1 - wy) * wx + g10 * wy * (1 - wx) + g11 * wy * wx)


def _texture(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """A random [_TEX, _TEX, 3] float32 texture with values in 0..255."""
    kinds = ("checker", "stripes", "blocks", "rings", "noise")
    kind = kind or kinds[rng.integers(len(kinds))]
    cols = rng.integers(0, 256, size=(3, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:_TEX, 0:_TEX].astype(np.float32)
    if kind == "checker":
        k = rng.integers(2, 6)
        sel = ((yy * k // _TEX + xx * k // _TEX) % 2).astype(int)
    elif kind == "stripes":
        a = rng.uniform(0, math.pi)
        f = rng.uniform(2, 6)
        sel = (np.floor((np.cos(a) * xx + np.sin(a) * yy) * f / _TEX) % 3).astype(int)
    elif kind == "blocks":
        sel = np.kron(rng.integers(0, 3, size=(4, 4)), np.ones((_TEX // 4, _TEX // 4), int))
    elif kind == "rings":
        r = np.hypot(yy - _TEX / 2, xx - _TEX / 2)
        sel = (np.floor(r * rng.uniform(3, 6) / _TEX) % 3).astype(int)
    else:
        n = _smooth_noise(rng, _TEX, _TEX, 4, 1)[..., 0]
        return (cols[0][None, None] * n[..., None] + cols[1][None, None] * (1 - n[..., None]))
    return cols[sel]


def _similar_texture(rng: np.random.Generator, tex: np.ndarray) -> np.ndarray:
    """A distractor texture: the same pattern with a colour shift and maybe a mirror."""
    t = tex + rng.normal(0, 25, size=(1, 1, 3)).astype(np.float32)
    if rng.random() < 0.5:
        t = t[:, ::-1]
    return np.clip(t, 0, 255)


# ----------------------------------------------------------------------------- geometry
def _half_extents(shape: str, w: float, h: float, ang: float) -> tuple[float, float]:
    c, s = abs(math.cos(ang)), abs(math.sin(ang))
    if shape == "ellipse":
        return math.hypot(w / 2 * c, h / 2 * s), math.hypot(w / 2 * s, h / 2 * c)
    return c * w / 2 + s * h / 2, s * w / 2 + c * h / 2


def _draw(img: np.ndarray, tex: np.ndarray, shape: str, cx: float, cy: float, w: float, h: float,
          ang: float) -> None:
    """Paint a textured rotated rectangle / ellipse into ``img`` (float32 HxWx3) in place."""
    H, W = img.shape[:2]
    ex, ey = _half_extents(shape, w, h, ang)
    x0, x1 = max(int(math.floor(cx - ex)), 0), min(int(math.ceil(cx + ex)), W)
    y0, y1 = max(int(math.floor(cy - ey)), 0), min(int(math.ceil(cy + ey)), H)
    if x1 <= x0 or y1 <= y0:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    c, s = math.cos(ang), math.sin(ang)
    u = (c * dx + s * dy) / w + 0.5
    v = (-s * dx + c * dy) / h + 0.5
    inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    if shape == "ellipse":
        inside &= (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    th, tw = tex.shape[:2]
    ti = np.clip((v[inside] * th).astype(int), 0, th - 1)
    tj = np.clip((u[inside] * tw).astype(int), 0, tw - 1)
    patch = img[y0:y1, x0:x1]
    patch[inside] = tex[ti, tj]


@dataclass
class _Mover:
    """A textured object on a smooth parametric trajectory."""

    tex: np.ndarray
    shape: str
    c0: np.ndarray  # [2] offset
    amp: np.ndarray  # [2 axes, 2 components]
    per: np.ndarray  # [2, 2] periods (frames)
    pha: np.ndarray  # [2, 2] phases
    size: float  # sqrt(w*h) at t = 0
    aspect: float  # w / h at t = 0
    scale_amp: float
    scale_per: float
    aspect_amp: float
    aspect_per: float
    rot_amp: float
    rot_per: float
    phase2: float

    def state(self, t: float) -> tuple[float, float, float, float, float]:
        arg = 2 * math.pi * t / self.per + self.pha
        c = self.c0 + (self.amp * np.sin(arg)).sum(axis=1)
        sc = math.exp(self.scale_amp * math.sin(2 * math.pi * t / self.scale_per + self.phase2))
        ar = self.aspect * math.exp(self.aspect_amp * math.sin(2 * math.pi * t / self.aspect_per))
        w = self.size * sc * math.sqrt(ar)
        h = self.size * sc / math.sqrt(ar)
        ang = self.rot_amp * math.sin(2 * math.pi * t / self.rot_per)
        return float(c[0]), float(c[1]), w, h, ang


def _mover(rng: np.random.Generator, tex: np.ndarray, size: int, start: np.ndarray, obj_size: float,
           amp_scale: float) -> _Mover:
    per = rng.uniform(60, 320, size=(2, 2))
    pha = rng.uniform(0, 2 * math.pi, size=(2, 2))
    amp = rng.uniform(0.05, amp_scale, size=(2, 2)) * size
    c0 = start - (amp * np.sin(pha)).sum(axis=1)
    return _Mover(
        tex=tex, shape="ellipse" if rng.random() < 0.35 else "rect", c0=c0, amp=amp, per=per, pha=pha,
        size=obj_size, aspect=math.exp(rng.uniform(-0.6, 0.6)),
        scale_amp=rng.uniform(0.0, 0.45), scale_per=rng.uniform(80, 300),
        aspect_amp=rng.uniform(0.0, 0.3), aspect_per=rng.uniform(80, 300),
        rot_amp=rng.uniform(0.0, 0.35), rot_per=rng.uniform(60, 240), phase2=0.0,
    )


class SyntheticScene:
    """One procedural scene; ``render(t)`` gives frame t, ``ground_truth(n)`` all boxes."""

    def __init__(self, seed: int, size: int = FRAME_SIZE):
        self.seed = int(seed)
        self.size = size
        rng = np.random.default_rng(self.seed)
        S = size + 2 * _PAN
        # background: smooth noise + grating + static textured clutter
        bg = _smooth_noise(rng, S, S, int(rng.integers(3, 9))) * 255.0
        yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
        a = rng.uniform(0, math.pi)
        grating = np.sin((np.cos(a) * xx + np.sin(a) * yy) * rng.uniform(0.05, 0.4))
        bg += (grating * rng.uniform(0, 40))[..., None]
        for _ in range(int(rng.integers(15, 35))):
            _draw(bg, _texture(rng), "ellipse" if rng.random() < 0.5 else "rect",
                  rng.uniform(0, S), rng.uniform(0, S), rng.uniform(8, 60), rng.uniform(8, 60),
                  rng.uniform(0, math.pi))
        self.bg = np.clip(bg, 0, 255).astype(np.float32)
        self.pan_amp = rng.uniform(0, _PAN, size=2)
        self.pan_per = rng.uniform(80, 400, size=2)
        # target
        self.exits = rng.random() < 0.35
        obj = rng.uniform(18, 56)
        start = rng.uniform(0.3, 0.7, size=2) * size
        tex = _texture(rng)
        self.target = _mover(rng, tex, size, start, obj, 0.55 if self.exits else 0.22)
        # distractors: similar texture, similar size, elsewhere
        self.distractors = []
        for _ in range(int(rng.integers(0, 4))):
            st = rng.uniform(0.1, 0.9, size=2) * size
            self.distractors.append(
                _mover(rng, _similar_texture(rng, tex), size, st, obj * rng.uniform(0.7, 1.3), 0.3))
        # occluder: sweeps across the target's neighbourhood during a window of frames
        self.occ = None
        if rng.random() < 0.5:
            t0 = rng.uniform(15, 80)
            dur = rng.uniform(20, 60)
            ow, oh = obj * rng.uniform(1.2, 2.5), obj * rng.uniform(1.2, 2.5)
            self.occ = dict(t0=t0, dur=dur, w=ow, h=oh, tex=_texture(rng, "noise"),
                            horizontal=bool(rng.random() < 0.5), off=rng.uniform(-0.3, 0.3) * obj)
        # illumination
        self.gain_amp = rng.uniform(0, 0.35)
        self.gain_per = rng.uniform(40, 200)
        self.bias_amp = rng.uniform(0, 30)
        self.noise_std = rng.uniform(0, 6)

    # --------------------------------------------------------------------- geometry
    def _occluder(self, t: float) -> tuple[float, float, float, float] | None:
        o = self.occ
        if o is None or not (o["t0"] <= t <= o["t0"] + o["dur"]):
            return None
        # centre follows the target along one axis and sweeps along the other
        cx, cy, w, h, _ = self.target.state(t)
        p = (t - o["t0"]) / o["dur"]  # 0 -> 1
        sweep = (p - 0.5) * 2 * (max(w, h) + max(o["w"], o["h"]))
        if o["horizontal"]:
            return cx + sweep, cy + o["off"], o["w"], o["h"]
        return cx + o["off"], cy + sweep, o["w"], o["h"]

    def target_box(self, t: float) -> tuple[np.ndarray, float]:
        """(clipped x,y,w,h, visible fraction of the target) at frame t."""
        cx, cy, w, h, ang = self.target.state(t)
        ex, ey = _half_extents(self.target.shape, w, h, ang)
        full = np.array([cx - ex, cy - ey, cx + ex, cy + ey])
        cl = np.clip(full, 0, self.size)
        area_full = (full[2] - full[0]) * (full[3] - full[1])
        cw, ch = max(cl[2] - cl[0], 0.0), max(cl[3] - cl[1], 0.0)
        frac = cw * ch / area_full
        occ = self._occluder(t)
        if occ is not None and cw * ch > 0:
            ox, oy, ow, oh = occ
            ix = max(0.0, min(cl[2], ox + ow / 2) - max(cl[0], ox - ow / 2))
            iy = max(0.0, min(cl[3], oy + oh / 2) - max(cl[1], oy - oh / 2))
            frac *= 1.0 - ix * iy / (cw * ch)
        box = np.array([cl[0], cl[1], cw, ch]) if cw * ch > 0 else np.zeros(4)
        return box, frac

    def ground_truth(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.zeros((n_frames, 4))
        vis = np.zeros(n_frames, bool)
        for t in range(n_frames):
            boxes[t], frac = self.target_box(t)
            vis[t] = frac >= VISIBLE_FRACTION
        return boxes, vis

    # --------------------------------------------------------------------- pixels
    def render(self, t: int) -> np.ndarray:
        S = self.size
        ox = int(round(_PAN + self.pan_amp[0] * math.sin(2 * math.pi * t / self.pan_per[0])))
        oy = int(round(_PAN + self.pan_amp[1] * math.sin(2 * math.pi * t / self.pan_per[1])))
        ox, oy = min(max(ox, 0), 2 * _PAN), min(max(oy, 0), 2 * _PAN)
        img = self.bg[oy:oy + S, ox:ox + S].copy()
        for d in self.distractors:
            _draw(img, d.tex, d.shape, *d.state(t))
        tg = self.target
        _draw(img, tg.tex, tg.shape, *tg.state(t))
        occ = self._occluder(t)
        if occ is not None:
            _draw(img, self.occ["tex"], "rect", occ[0], occ[1], occ[2], occ[3], 0.0)
        gain = 1.0 + self.gain_amp * math.sin(2 * math.pi * t / self.gain_per)
        bias = self.bias_amp * math.sin(2 * math.pi * t / (1.7 * self.gain_per))
        img = img * gain + bias
        if self.noise_std > 0:
            nrng = np.random.default_rng((self.seed, int(t)))
            img += nrng.normal(0, self.noise_std, size=(S, S, 1)).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)


class _Jumpy:
    """A mover whose position jumps by 15-20 px at random frames (uneven motion).

    The offset is piecewise constant in whole frames: every 4-12 frames it jumps by a vector of
    length 15-20 px, pointing back toward the smooth path once the offset exceeds 30 px.
    """

    def __init__(self, base: _Mover, rng: np.random.Generator, horizon: int = 1000):
        self.base = base
        self.shape, self.tex = base.shape, base.tex
        self.offsets = np.zeros((horizon + 1, 2))
        off, t = np.zeros(2), 0
        while t <= horizon:
            gap = int(rng.integers(4, 13))
            self.offsets[t:t + gap] = off
            t += gap
            a = rng.uniform(0, 2 * math.pi)
            step = rng.uniform(15, 20) * np.array([math.cos(a), math.sin(a)])
            if np.hypot(*off) > 30 and step @ off > 0:
                step = -step
            off = off + step

    def state(self, t: float) -> tuple[float, float, float, float, float]:
        cx, cy, w, h, ang = self.base.state(t)
        i = min(max(int(math.floor(t)), 0), len(self.offsets) - 1)
        return cx + float(self.offsets[i, 0]), cy + float(self.offsets[i, 1]), w, h, ang


class _Companion:
    """A distractor tied to the target: walks beside it, or crosses it during a window of frames.

    ``beside``: a fixed offset of 1.0-1.6 target sizes in a random direction plus a slow wobble.
    ``cross``: the offset sweeps linearly from one side of the target to the other between
    ``t0`` and ``t0 + dur`` (passing under the target), and stays beside it outside that window.
    """

    def __init__(self, target, tex: np.ndarray, shape: str, rng: np.random.Generator, mode: str):
        self.target, self.tex, self.shape, self.mode = target, tex, shape, mode
        a = rng.uniform(0, 2 * math.pi)
        self.dir = np.array([math.cos(a), math.sin(a)])
        self.dist = rng.uniform(1.0, 1.6)
        self.scale = rng.uniform(0.9, 1.1)
        self.wobble_amp, self.wobble_per = rng.uniform(0, 0.3), rng.uniform(30, 90)
        self.t0, self.dur = rng.uniform(10, 60), rng.uniform(15, 35)

    def state(self, t: float) -> tuple[float, float, float, float, float]:
        cx, cy, w, h, ang = self.target.state(t)
        size = math.sqrt(max(w * h, 1.0))
        k = self.dist + self.wobble_amp * math.sin(2 * math.pi * t / self.wobble_per)
        if self.mode == "cross":
            p = min(max((t - self.t0) / self.dur, 0.0), 1.0)
            k = self.dist * (1 - 2 * p)
        dx, dy = self.dir * k * size
        return cx + float(dx), cy + float(dy), w * self.scale, h * self.scale, -ang


class HardSyntheticScene(SyntheticScene):
    """A :class:`SyntheticScene` with two to four hard cases of :data:`HARD_CASES`.

    Cases (each scene draws a random subset; ``self.cases`` lists them):

    - ``beside`` / ``cross``: a near-identical distractor (the target's texture with a colour
      shift of sigma 8, same shape, 0.9-1.1 x its size) walks beside the target at 1.0-1.6 target
      sizes, or crosses under it within 15-35 frames;
    - ``partial_occlusion``: an occluder covers 30-60 % of the target's width or height for
      30-70 frames, moving with it;
    - ``low_contrast``: the target's texture is pulled 55-75 % toward the background mean and
      the whole frame's contrast is reduced to 45-70 %;
    - ``fast_scale``: scale changes by e^(±0.6-0.9) with periods of 25-50 frames;
    - ``border``: the trajectory runs along an image border so the target is truncated;
    - ``jumps``: uneven motion, jumps of 15-20 px every 4-12 frames (:class:`_Jumpy`).
    """

    def __init__(self, seed: int, size: int = FRAME_SIZE):
        super().__init__(seed, size)
        rng = np.random.default_rng((self.seed, 7))
        n_cases = int(rng.integers(2, 5))
        cases = list(rng.choice(HARD_CASES, size=n_cases, replace=False))
        if "beside" not in cases and "cross" not in cases and rng.random() < 0.6:
            cases[0] = "beside" if rng.random() < 0.5 else "cross"
        self.cases = sorted((str(c) for c in cases), key=HARD_CASES.index)
        tg = self.target
        self.exits = False
        tg.amp = np.minimum(tg.amp, 0.22 * size)  # keep the target mostly in view (border case aside)
        tg.c0 = np.clip(tg.c0, 0.3 * size, 0.7 * size)
        self.contrast = 1.0
        if "low_contrast" in self.cases:
            mean = self.bg.reshape(-1, 3).mean(axis=0)
            pull = rng.uniform(0.55, 0.75)
            tg.tex = (tg.tex * (1 - pull) + mean * pull).astype(np.float32)
            self.contrast = rng.uniform(0.45, 0.7)
        if "fast_scale" in self.cases:
            tg.scale_amp, tg.scale_per = rng.uniform(0.6, 0.9), rng.uniform(25, 50)
            tg.size = min(tg.size, 40.0)
        if "border" in self.cases:
            axis = int(rng.integers(2))
            edge = 0.0 if rng.random() < 0.5 else float(size)
            tg.c0 = tg.c0.copy()
            tg.c0[axis] = edge + (0.15 if edge == 0 else -0.15) * tg.size
            tg.amp = tg.amp.copy()
            tg.amp[axis] = np.minimum(tg.amp[axis], 0.15 * tg.size)
        self.occ = None
        if "partial_occlusion" in self.cases:
            self.occ = dict(t0=rng.uniform(5, 40), dur=rng.uniform(30, 70), cover=rng.uniform(0.3, 0.6),
                            horizontal=bool(rng.random() < 0.5), side=1 if rng.random() < 0.5 else -1,
                            tex=_texture(rng, "noise"))
        if "jumps" in self.cases:
            self.target = _Jumpy(tg, rng)
        for mode in ("beside", "cross"):
            if mode in self.cases:
                t = np.clip(tg.tex + rng.normal(0, 8, size=(1, 1, 3)).astype(np.float32), 0, 255)
                self.distractors.append(_Companion(self.target, t, tg.shape, rng, mode))

    def _occluder(self, t: float) -> tuple[float, float, float, float] | None:
        o = self.occ
        if o is None or not (o["t0"] <= t <= o["t0"] + o["dur"]):
            return None
        cx, cy, w, h, ang = self.target.state(t)
        ex, ey = _half_extents(self.target.shape, w, h, ang)
        # a block of 2 x the target's extent whose inner edge covers ``cover`` of it
        if o["horizontal"]:
            ow, oh = 2 * ex, 2.4 * ey
            return cx + o["side"] * (ex + ow / 2 - o["cover"] * 2 * ex), cy, ow, oh
        ow, oh = 2.4 * ex, 2 * ey
        return cx, cy + o["side"] * (ey + oh / 2 - o["cover"] * 2 * ey), ow, oh

    def render(self, t: int) -> np.ndarray:
        img = super().render(t)
        if self.contrast == 1.0:
            return img
        f = img.astype(np.float32)
        m = f.mean(axis=(0, 1), keepdims=True)
        return np.clip(m + (f - m) * self.contrast, 0, 255).astype(np.uint8)


def make_sequence(seed: int, n_frames: int, name: str | None = None, size: int = FRAME_SIZE,
                  hard: bool = False) -> Sequence:
    """A synthetic :class:`Sequence` whose frames render on demand (``hard``: a :class:`HardSyntheticScene`)."""
    scene = (HardSyntheticScene if hard else SyntheticScene)(seed, size)
    boxes, vis = scene.ground_truth(n_frames)
    meta = {"dataset": "synthetic-hard" if hard else "synthetic", "seed": seed, "resolution": (size, size)}
    if hard:
        meta["cases"] = list(scene.cases)
    return Sequence(name=name or f"synth{'-hard' if hard else ''}-{seed}", frames=scene.render, boxes=boxes,
                    visible=vis, n_frames=n_frames, meta=meta)


def _fixed_set(seed: int, prefix: str, max_seqs: int | None, hard: bool = False) -> list[Sequence]:
    """``BENCHMARK_SEQUENCES`` x ``BENCHMARK_FRAMES`` sequences, seeds ``seed + i``, names ``prefix-NNN``."""
    n = BENCHMARK_SEQUENCES if max_seqs is None else min(max_seqs, BENCHMARK_SEQUENCES)
    return [make_sequence(seed + i, BENCHMARK_FRAMES, name=f"{prefix}-{i:03d}", hard=hard) for i in range(n)]


def hard_sequences(max_seqs: int | None = None) -> list[Sequence]:
    """``synthetic-hard``: 24 x 100 hard frames (:class:`HardSyntheticScene`), seeds ``HARD_SEED + i``."""
    return _fixed_set(HARD_SEED, "synthetic-hard", max_seqs, hard=True)


def hard_validation_sequences(max_seqs: int | None = None) -> list[Sequence]:
    """``synthetic-hard-val``: the disjoint validation twin of ``synthetic-hard`` (seeds ``HARD_VALIDATION_SEED + i``)."""
    return _fixed_set(HARD_VALIDATION_SEED, "synthetic-hard-val", max_seqs, hard=True)


def benchmark_sequences(max_seqs: int | None = None) -> list[Sequence]:
    """The fixed ``synthetic`` evaluation benchmark (24 x 100 frames, fixed seeds)."""
    return _fixed_set(BENCHMARK_SEED, "synthetic", max_seqs)


def validation_sequences(max_seqs: int | None = None) -> list[Sequence]:
    """``synthetic-val``: 24 x 100 frames like the benchmark, seeds ``VALIDATION_SEED + i``.

    Disjoint from the training scenes and from the benchmark; tracker settings are chosen on
    this set, never on ``synthetic``.
    """
    return _fixed_set(VALIDATION_SEED, "synthetic-val", max_seqs)


class SyntheticTrainSource:
    """An indexable collection of training scenes (seeds ``TRAIN_SEED_BASE + i``, or
    ``HARD_TRAIN_SEED_BASE + i`` with ``hard``), built lazily.

    Building a scene costs ~13 ms and holding one ~1.1 MB (its float32 background); the
    ``cache`` most recently used scenes are kept. The cache changes speed only, never the
    samples: a scene is a pure function of its seed.
    """

    def __init__(self, n_sequences: int = 5000, n_frames: int = 300, seed_base: int | None = None,
                 cache: int = 32, hard: bool = False):
        if cache < 0:
            raise ValueError(f"scene cache must be >= 0, got {cache}")
        if seed_base is None:
            seed_base = HARD_TRAIN_SEED_BASE if hard else TRAIN_SEED_BASE
        self.n_sequences, self.n_frames, self.seed_base, self.hard = n_sequences, n_frames, seed_base, hard
        self._get = lru_cache(maxsize=cache)(self._build)
        self.name = "synthetic-hard" if hard else "synthetic"

    def _build(self, i: int) -> Sequence:
        return make_sequence(self.seed_base + i, self.n_frames, hard=self.hard,
                             name=f"synth{'-hard' if self.hard else ''}-train-{i}")

    def __len__(self) -> int:
        return self.n_sequences

    def __getitem__(self, i: int) -> Sequence:
        return self._get(int(i))
