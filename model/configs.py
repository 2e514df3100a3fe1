"""Model configurations: one dataclass and a registry of named variants.

Paper variants (spec §2): ``paper-s256-t1``, ``paper-s256-t3``, ``paper-b256-t1``,
``paper-b256-t3``, ``paper-b384-t1``, ``paper-b384-t3``. Hardware default: ``edge-t1``,
``edge-t3`` (see ``docs/model.md`` for every departure from the paper).

ANN twin: any name with the suffix ``-ann`` (e.g. ``edge-t3-ann``), or ``get_config(name,
ann=True)``, gives the same configuration with ``ann=True`` (ReLU instead of NI-LIF) and the
``-ann`` name, so checkpoints of the twin rebuild from their stored name.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

ANN_SUFFIX = "-ann"
ROUNDINGS = ("half_up", "half_even")
"""NI-LIF fire rounding modes (implemented in ``model/neuron.py``, §IS-7)."""


@dataclass(frozen=True)
class SpikeTrackConfig:
    """Shape and behaviour of one SpikeTrack variant.

    Attributes
    ----------
    name : str
        Registry name (stored in checkpoints).
    dims : tuple of int
        Channels of stages 1-4. The stem and the stage-1 stem block use ``dims[0] // 2``.
    depths : tuple of int
        Blocks per stage after its downsampling conv: ConvBlocks in stages 1-2, transformer
        blocks in stages 3-4 (the stem block of stage 1 is extra).
    mrm_sites : tuple of (stage, k)
        MRM positions: after the ``k``-th block of ``stage`` (``k = 0``: right after its
        downsampling conv).
    heads, head_dim : int or None
        Exactly one is set: a fixed head count (paper: 8) or a fixed per-head dim ``d_h``.
    stem_block : bool
        Whether a ConvBlock runs at the stem resolution (paper: yes).
    mlp_ratio, v_ratio, conv_ratio, sep_ratio : int
        MLP hidden ratio, attention V expansion (lambda), ConvBlock 3x3 expansion and SepConv
        expansion.
    timesteps : int
        T, template timesteps (1..3). The search branch always runs 1 timestep.
    fusion : str
        Temporal fusion in the MRM for T > 1: ``"gate"`` (paper channel gate) or ``"mean"``.
    upsample : str
        ``"bilinear"`` (paper) or ``"nearest"``.
    head_channels, head_min_width : int
        Centre-head branch widths ``head_channels >> i`` for ``i = 0..3``, each at least
        ``head_min_width`` (1: the reference taper; edge: 16, see docs/model.md).
    pos_slots : int
        Template positional-embedding slots per attention block / MRM.
    ann : bool
        ANN twin: ReLU (clip to [0, D] / D) instead of NI-LIF everywhere.
    update_interval, update_threshold : int, float
        Tracker template-update gate (spec §7.3): every ``update_interval`` frames, if the
        windowed peak score exceeds ``update_threshold``. These apply to every dataset not in
        ``update_by_dataset``.
    update_by_dataset : tuple of (str, int, float)
        Per-dataset gates ``(dataset, interval, threshold)`` (the reference's test settings:
        LaSOT 40 / 0.8); see :meth:`update_gate`.
    rounding : str
        NI-LIF fire rounding: ``"half_up"`` (``floor(u + 1/2)``, the hardware default) or
        ``"half_even"`` (ties to even, ``torch.round``: the reference implementation; imported
        official checkpoints use it). docs/integer_semantics.md §IS-7.
    stem_pad : str
        What the stem convolution sees outside the image: ``"zero"`` (zeros of the normalised
        input, the mean colour) or ``"black"`` (normalised pixel 0, what the integer stem's zero
        padding of raw pixels means; see ``backbone.Stem``).
    size_lr : float
        Tracker scale damping (``SpikeTrackTracker(size_lr=...)``): 1.0 for the paper variants
        (reference behaviour); the edge variants use the value chosen on ``synthetic-val``
        (docs/tracking.md, "The shipped default").
    """

    name: str
    dims: tuple = (32, 64, 128, 192)
    depths: tuple = (1, 2, 6, 2)
    mrm_sites: tuple = ((1, 0), (2, 0), (3, 0), (3, 3), (4, 0), (4, 2))
    heads: int | None = 8
    head_dim: int | None = None
    mlp_ratio: int = 4
    v_ratio: int = 4
    conv_ratio: int = 4
    sep_ratio: int = 2
    sep_kernels: tuple = (7, 7, 3, 3)
    stem_kernel: int = 7
    stem_block: bool = True
    stage4_stride: int = 1
    head_channels: int = 192
    head_min_width: int = 1
    search_size: int = 256
    template_size: int = 256
    timesteps: int = 1
    levels: int = 4
    fusion: str = "gate"
    upsample: str = "bilinear"
    pos_slots: int = 4
    ann: bool = False
    update_interval: int = 25
    update_threshold: float = 0.7
    update_by_dataset: tuple = (("lasot", 40, 0.8),)
    size_lr: float = 1.0
    rounding: str = "half_up"
    stem_pad: str = "zero"

    def __post_init__(self):
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"{self.name}: rounding must be one of {', '.join(ROUNDINGS)}, got {self.rounding!r}")
        if not 1 <= self.timesteps <= 3:
            raise ValueError(f"{self.name}: timesteps must be 1..3, got {self.timesteps}")
        if self.stem_pad not in ("zero", "black"):
            raise ValueError(f"{self.name}: stem_pad must be 'zero' or 'black', got {self.stem_pad!r}")
        if self.fusion not in ("gate", "mean"):
            raise ValueError(f"{self.name}: fusion must be 'gate' or 'mean', got {self.fusion!r}")
        if (self.heads is None) == (self.head_dim is None):
            raise ValueError(f"{self.name}: set exactly one of heads / head_dim")
        for size in (self.search_size, self.template_size):
            if size % self.stride:
                raise ValueError(f"{self.name}: image size {size} is not a multiple of {self.stride}")
        for s, k in self.mrm_sites:
            if not (1 <= s <= 4 and 0 <= k <= self.depths[s - 1]):
                raise ValueError(f"{self.name}: bad MRM site {(s, k)}")
        for d in self.dims:
            dh = self.dim_per_head(d)
            if d % dh:
                raise ValueError(f"{self.name}: dim {d} not divisible into heads of {dh}")

    # ---------------------------------------------------------------- derived
    def update_gate(self, dataset: str | None = None) -> tuple[int, float]:
        """``(interval, threshold)`` of the template-update gate on ``dataset`` (``"lasot"``,
        ``"got10k"``, ...; None: the default)."""
        for name, interval, threshold in self.update_by_dataset:
            if dataset is not None and name == dataset.lower():
                return int(interval), float(threshold)
        return int(self.update_interval), float(self.update_threshold)

    @property
    def stride(self) -> int:
        """Total backbone stride (16 with the paper's stage-4 stride 1)."""
        return 16 * self.stage4_stride

    @property
    def feat_size(self) -> int:
        """Side of the final search feature map (head resolution)."""
        return self.search_size // self.stride

    @property
    def template_feat_size(self) -> int:
        return self.template_size // self.stride

    @property
    def grid(self) -> int:
        """Side of the compact MRM retrieval grid (= final search map side)."""
        return self.feat_size

    def dim_per_head(self, dim: int) -> int:
        return self.head_dim if self.head_dim is not None else dim // self.heads

    def num_heads(self, dim: int) -> int:
        return dim // self.dim_per_head(dim)

    def stage_scale(self, stage: int) -> int:
        """Downsampling factor of stage ``stage``'s map relative to the image."""
        return {1: 4, 2: 8, 3: 16, 4: 16 * self.stage4_stride}[stage]


def _paper(family: str, size: int, T: int) -> SpikeTrackConfig:
    s = family == "s"
    return SpikeTrackConfig(
        name=f"paper-{family}{size}-t{T}",
        dims=(32, 64, 128, 192) if s else (64, 128, 256, 360),
        head_channels=192 if s else 256,
        search_size=size, template_size=size, timesteps=T)


def _edge(T: int) -> SpikeTrackConfig:
    return SpikeTrackConfig(
        name=f"edge-t{T}", dims=(16, 32, 48, 64), depths=(1, 2, 2, 1), stem_block=False,
        sep_kernels=(3, 3, 3, 3),
        mrm_sites=((2, 2), (3, 2), (4, 1)), heads=None, head_dim=16,
        mlp_ratio=2, v_ratio=2, conv_ratio=2, sep_ratio=2, head_channels=32, head_min_width=16,
        search_size=128, template_size=128, timesteps=T, fusion="mean", upsample="nearest", pos_slots=3,
        size_lr=0.15)


_REGISTRY: dict[str, SpikeTrackConfig] = {}
for _fam, _size in (("s", 256), ("b", 256), ("b", 384)):
    for _T in (1, 3):
        _c = _paper(_fam, _size, _T)
        _REGISTRY[_c.name] = _c
for _T in (1, 3):
    _REGISTRY[f"edge-t{_T}"] = _edge(_T)


class UnknownConfigError(ValueError, KeyError):
    """Unknown variant name (a ValueError; also a KeyError for dict-style callers)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def list_configs(ann: bool = True) -> list[str]:
    """Registered variant names (with the ``-ann`` twins when ``ann``)."""
    names = list(_REGISTRY)
    return names + [n + ANN_SUFFIX for n in names] if ann else names


def get_config(name, ann: bool | None = None, **overrides) -> SpikeTrackConfig:
    """The configuration called ``name`` (or a config passed through), optionally as ANN twin.

    Parameters
    ----------
    name : str or SpikeTrackConfig
        A registered name, optionally with the ``-ann`` suffix.
    ann : bool, optional
        Force the ANN twin (``True``) or the spiking model (``False``).
    **overrides
        Field overrides (``dataclasses.replace``), e.g. ``timesteps=3``.
    """
    if isinstance(name, SpikeTrackConfig):
        cfg = name
    else:
        if not isinstance(name, str):
            raise ValueError(f"config must be a name or SpikeTrackConfig, got {type(name).__name__}")
        base, twin = (name[: -len(ANN_SUFFIX)], True) if name.endswith(ANN_SUFFIX) else (name, False)
        if base not in _REGISTRY:
            raise UnknownConfigError(f"unknown config {name!r}; valid: {', '.join(list_configs())}")
        cfg = _REGISTRY[base]
        if twin:
            cfg = ann_twin(cfg)
    if ann is not None and ann != cfg.ann:
        cfg = ann_twin(cfg) if ann else dataclasses.replace(cfg, ann=False, name=cfg.name.removesuffix(ANN_SUFFIX))
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def ann_twin(cfg: SpikeTrackConfig) -> SpikeTrackConfig:
    """The ANN twin of ``cfg``: same shapes, ReLU neurons, name with ``-ann``."""
    if cfg.ann:
        return cfg
    return dataclasses.replace(cfg, ann=True, name=cfg.name + ANN_SUFFIX)


def attention_scale(d_h: int) -> float:
    """``2 * d_h ** -0.5`` (spec §4.4)."""
    return 2.0 / math.sqrt(d_h)


__all__ = ["SpikeTrackConfig", "get_config", "list_configs", "ann_twin", "UnknownConfigError",
           "attention_scale"]
