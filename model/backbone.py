"""SDT-v3 MetaFormer backbone with membrane shortcuts and MRM sites (spec §4, §5.1).

Layout (``d = dims``; sides for a 256 input)::

    stem    ConvBN 7x7 s2 (+bias) on pixels, 3 -> d0/2            128^2   (no neuron before it)
            ConvBlock(d0/2)                                         (unless stem_block=False)
    stage1  Downsample d0/2 -> d0 s2, depths[0] x ConvBlock(d0)    64^2
    stage2  Downsample d0 -> d1 s2,   depths[1] x ConvBlock(d1)    32^2
    stage3  Downsample d1 -> d2 s2,   depths[2] x TransformerBlock 16^2
    stage4  Downsample d2 -> d3 s1,   depths[3] x TransformerBlock 16^2

The residual stream is real-valued; every branch is neuron -> conv -> BN, added back with a
:class:`~spiketrack.model.layers.Residual`. MRM sites sit after the ``k``-th block of a stage.

One backbone serves both branches (weight sharing). :meth:`Backbone.run` walks the units once
and applies each to the template stream (T steps) and/or the search stream (1 step): the
template stream builds a memory at every MRM site, the search stream reads it. The template
stream is never given anything from the search stream.
"""

from __future__ import annotations

import torch
from torch import nn

from spiketrack.model.attention import SpikingLinearAttention
from spiketrack.model.configs import SpikeTrackConfig
from spiketrack.model.layers import ConvBN, Residual, SpikingMLP
from spiketrack.model.mrm import MemoryRetrieval


class SepConv(nn.Module):
    """neuron -> PW 1x1 C->rC +BN -> neuron -> DW kxk +BN -> neuron -> PW 1x1 rC->C +BN."""

    def __init__(self, dim: int, kernel: int, ratio: int, neuron):
        super().__init__()
        mid = dim * ratio
        self.sn1, self.pw1 = neuron(), ConvBN(dim, mid)
        self.sn2, self.dw = neuron(), ConvBN(mid, mid, kernel, groups=mid)
        self.sn3, self.pw2 = neuron(), ConvBN(mid, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T,B,C,H,W] -> branch output
        return self.pw2(self.sn3(self.dw(self.sn2(self.pw1(self.sn1(x))))))


class ConvBlock(nn.Module):
    """MS_ConvBlock (spec §4.2): ``x += SepConv(x)``; ``x += BN(conv3(SN(BN(conv3(SN(x))))))``."""

    def __init__(self, dim: int, kernel: int, sep_ratio: int, conv_ratio: int, neuron):
        super().__init__()
        self.sep = SepConv(dim, kernel, sep_ratio, neuron)
        self.add_sep = Residual()
        self.sn1, self.conv1 = neuron(), ConvBN(dim, dim * conv_ratio, 3)
        self.sn2, self.conv2 = neuron(), ConvBN(dim * conv_ratio, dim, 3)
        self.add_conv = Residual()

    def forward(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        x = self.add_sep(x, self.sep(x))
        return self.add_conv(x, self.conv2(self.sn2(self.conv1(self.sn1(x)))))


class TransformerBlock(nn.Module):
    """MS_Block (spec §4.3): SepConv(3x3), spiking linear attention, spiking MLP; all residual."""

    def __init__(self, dim: int, heads: int, cfg: SpikeTrackConfig, search_hw: int, template_hw: int, neuron):
        super().__init__()
        self.sep = SepConv(dim, cfg.sep_kernels[2], cfg.sep_ratio, neuron)
        self.add_sep = Residual()
        self.attn = SpikingLinearAttention(dim, heads, cfg.v_ratio, search_hw, template_hw, cfg.pos_slots, neuron)
        self.add_attn = Residual()
        self.mlp = SpikingMLP(dim, cfg.mlp_ratio, neuron)
        self.add_mlp = Residual()

    def forward(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        x = self.add_sep(x, self.sep(x))
        x = self.add_attn(x, self.attn(x, branch))
        return self.add_mlp(x, self.mlp(x))


class Downsample(nn.Module):
    """neuron -> ConvBN 3x3 (stride s, +bias)."""

    def __init__(self, cin: int, cout: int, stride: int, neuron):
        super().__init__()
        self.sn = neuron()
        self.conv = ConvBN(cin, cout, 3, stride, bias=True)

    def forward(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        return self.conv(self.sn(x))


class Stem(nn.Module):
    """ConvBN 7x7 s2 (+bias) on real pixels: the only layer without a neuron in front.

    ``pad``: what the convolution sees outside the image. ``"zero"``: zeros of the normalised
    input (the mean colour). ``"black"``: the normalised value of pixel 0, which is what the
    integer stem sees: it reads raw uint8 pixels with zero padding (§IS-4, §IS-11), so with
    ``"black"`` the float stem and the integer stem agree at the border as well.
    """

    PADS = ("zero", "black")

    def __init__(self, cout: int, kernel: int, pad: str = "zero"):
        super().__init__()
        if pad not in self.PADS:
            raise ValueError(f"stem padding must be one of {', '.join(self.PADS)}, got {pad!r}")
        self.conv = ConvBN(3, cout, kernel, 2, bias=True)
        self.pad = pad

    def forward(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        if self.pad == "black" and isinstance(self.conv, ConvBN):  # a quantised stem pads with pixel 0 itself
            return self.conv(x, pad_value=black_level(x))
        return self.conv(x)


def black_level(x: torch.Tensor) -> torch.Tensor:
    """The ImageNet-normalised value of pixel 0 per RGB channel, shaped to broadcast over ``x`` [..., 3, H, W]."""
    from spiketrack.model.data.crops import IMAGENET_MEAN, IMAGENET_STD

    v = torch.tensor(-IMAGENET_MEAN / IMAGENET_STD, dtype=x.dtype, device=x.device)
    return v.view((1,) * (x.dim() - 3) + (3, 1, 1))


class Backbone(nn.Module):
    """Weight-shared SDT-v3 backbone with MRM sites (see the module docstring).

    Parameters
    ----------
    cfg : SpikeTrackConfig
    neuron : callable
        Neuron-layer constructor.
    """

    def __init__(self, cfg: SpikeTrackConfig, neuron):
        super().__init__()
        d = cfg.dims
        d_stem = d[0] // 2
        self.stem = Stem(d_stem, cfg.stem_kernel, getattr(cfg, "stem_pad", "zero"))
        self.stem_block = (ConvBlock(d_stem, cfg.sep_kernels[0], cfg.sep_ratio, cfg.conv_ratio, neuron)
                           if cfg.stem_block else None)
        self.stages = nn.ModuleList()
        cins = (d_stem, d[0], d[1], d[2])
        strides = (2, 2, 2, cfg.stage4_stride)
        for i in range(4):
            stage = nn.Module()
            stage.down = Downsample(cins[i], d[i], strides[i], neuron)
            s_hw = cfg.search_size // cfg.stage_scale(i + 1)
            t_hw = cfg.template_size // cfg.stage_scale(i + 1)
            if i < 2:
                blocks = [ConvBlock(d[i], cfg.sep_kernels[i], cfg.sep_ratio, cfg.conv_ratio, neuron)
                          for _ in range(cfg.depths[i])]
            else:
                blocks = [TransformerBlock(d[i], cfg.num_heads(d[i]), cfg, s_hw, t_hw, neuron)
                          for _ in range(cfg.depths[i])]
            stage.blocks = nn.ModuleList(blocks)
            self.stages.append(stage)
        self.sites = tuple(tuple(s) for s in cfg.mrm_sites)
        self.mrm = nn.ModuleList()
        for s, _ in self.sites:
            dim = d[s - 1]
            self.mrm.append(MemoryRetrieval(
                dim, cfg.num_heads(dim), cfg.v_ratio, cfg.mlp_ratio,
                cfg.search_size // cfg.stage_scale(s), cfg.template_size // cfg.stage_scale(s), cfg.grid,
                cfg.timesteps, cfg.fusion, cfg.upsample, cfg.pos_slots, cfg.levels, neuron, ann=cfg.ann))
        self.current_branch: str | None = None  # "template" / "search" while a unit runs (for hooks)

    def _units(self):
        """``(unit, None)`` for layers and ``(None, site index)`` for MRM sites, in order."""
        yield self.stem, None
        if self.stem_block is not None:
            yield self.stem_block, None
        for i, stage in enumerate(self.stages):
            yield stage.down, None
            for k in range(len(stage.blocks) + 1):
                for j, site in enumerate(self.sites):
                    if site == (i + 1, k):
                        yield None, j
                if k < len(stage.blocks):
                    yield stage.blocks[k], None

    def run(self, z: torch.Tensor | None = None, x: torch.Tensor | None = None,
            memories: list[torch.Tensor] | None = None):
        """Run the template stream ``z`` [T,B,3,Hz,Wz] and/or the search stream ``x`` [1,B,3,H,W].

        Returns ``(search features [1,B,C,h,w] or None, memories)``; when ``z`` is given the
        memories are built here, otherwise ``memories`` must be given for the search stream.
        """
        built: list[torch.Tensor] = []
        n_sites = len(self.sites)
        try:
            for unit, site in self._units():
                if z is None and x is None:
                    break
                if site is None:
                    if z is not None:
                        self.current_branch = "template"
                        z = unit(z, "template")
                    if x is not None:
                        self.current_branch = "search"
                        x = unit(x, "search")
                    continue
                if z is not None:
                    self.current_branch = "template"
                    built.append(self.mrm[site].memory(z))
                    if len(built) == n_sites:
                        z = None  # nothing after the last site is needed on the template side
                if x is not None:
                    self.current_branch = "search"
                    m = built[site] if memories is None else memories[site]
                    x = self.mrm[site](x, m)
        finally:
            self.current_branch = None
        return x, (built if memories is None else memories)
