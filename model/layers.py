"""Building blocks shared by the backbone, the MRM and the head.

Every operation a quantisation layer may need to replace is its own small module here:
:class:`ConvBN` (conv + BN, foldable), :class:`Residual` (membrane-shortcut add),
:class:`PosEmbed` (positional-embedding add), :class:`AvgPool`, :class:`Upsample`,
:class:`MemoryBuild` (``M = K^T V``) and :class:`Retrieve` (``Q . M * scale``).
All tensors are time-first ``[T, B, C, H, W]`` unless stated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _per_frame(fn, x: torch.Tensor) -> torch.Tensor:
    """Apply a 4-D op to a time-first 5-D tensor by folding T into the batch."""
    T, B = x.shape[:2]
    y = fn(x.flatten(0, 1))
    return y.unflatten(0, (T, B))


class ConvBN(nn.Module):
    """``Conv2d`` followed by ``BatchNorm2d``, one unit so it can be folded (:meth:`fold`).

    Parameters
    ----------
    cin, cout : int
        Channels in and out.
    k : int
        Square kernel size; padding ``k // 2``.
    stride, groups : int
        As for ``nn.Conv2d``.
    bias : bool
        Conv bias (before BN).
    """

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pad_value: torch.Tensor | None = None) -> torch.Tensor:
        """[T,B,Cin,H,W] -> [T,B,Cout,H',W']; ``pad_value`` (one value per input channel): pad with it
        instead of zeros."""
        if pad_value is None:
            return _per_frame(lambda y: self.bn(self.conv(y)), x)
        c = self.conv
        v = pad_value.reshape(1, -1, 1, 1)
        p = c.padding

        def padded(y):
            y = F.pad(y - v, (p[1], p[1], p[0], p[0])) + v
            return self.bn(F.conv2d(y, c.weight, c.bias, c.stride, 0, c.dilation, c.groups))

        return _per_frame(padded, x)

    @torch.no_grad()
    def fold(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` with bias equal to this conv + BN in eval mode (running statistics)."""
        c, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        out = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                        groups=c.groups, bias=True).to(c.weight.device, c.weight.dtype)
        out.weight.copy_(c.weight * scale.view(-1, 1, 1, 1))
        b = c.bias if c.bias is not None else torch.zeros_like(bn.running_mean)
        out.bias.copy_((b - bn.running_mean) * scale + bn.bias)
        return out


class Residual(nn.Module):
    """Membrane-shortcut addition on the real-valued stream: ``x + branch``."""

    def forward(self, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        return x + branch


class PosEmbed(nn.Module):
    """Learned positional embeddings added to a feature map, one slot per branch / timestep.

    The search branch adds ``pos_embed_search``; template timestep ``t`` adds
    ``pos_embed_template[min(t, slots - 1)]`` (spec §4.4). Initialised to zero.

    Parameters
    ----------
    dim : int
        Channels.
    search_hw, template_hw : int
        Side of the search / template map at this point.
    slots : int
        Number of template slots.
    """

    def __init__(self, dim: int, search_hw: int, template_hw: int, slots: int):
        super().__init__()
        self.pos_embed_search = nn.Parameter(torch.zeros(1, dim, search_hw, search_hw))
        self.pos_embed_template = nn.Parameter(torch.zeros(slots, dim, template_hw, template_hw))

    def forward(self, x: torch.Tensor, branch: str) -> torch.Tensor:  # [T,B,C,H,W]
        if branch == "search":
            return x + self.pos_embed_search.unsqueeze(0)
        T = x.shape[0]
        idx = torch.clamp(torch.arange(T, device=x.device), max=self.pos_embed_template.shape[0] - 1)
        return x + self.pos_embed_template[idx].unsqueeze(1)


class AvgPool(nn.Module):
    """``p x p`` average pooling with stride ``p`` (spec §5.2 compact resampling)."""

    def __init__(self, p: int):
        super().__init__()
        self.p = int(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T,B,C,H,W] -> [T,B,C,H/p,W/p]
        return _per_frame(lambda y: F.avg_pool2d(y, self.p), x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Upsample(nn.Module):
    """Upsampling by an integer factor: ``nearest`` (copy) or ``bilinear`` (reference)."""

    def __init__(self, p: int, mode: str = "nearest"):
        super().__init__()
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"upsample mode must be 'nearest' or 'bilinear', got {mode!r}")
        self.p, self.mode = int(p), mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T,B,C,h,w] -> [T,B,C,h*p,w*p]
        kw = {"align_corners": False} if self.mode == "bilinear" else {}
        return _per_frame(lambda y: F.interpolate(y, scale_factor=self.p, mode=self.mode, **kw), x)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class MemoryBuild(nn.Module):
    """Per-head linear-attention memory ``M = K^T V``.

    ``k``: ``[T, B, heads*d_h, H, W]`` spikes, ``v``: ``[T, B, heads*d_v, H, W]`` spikes ->
    ``M``: ``[T, B, heads, d_h, d_v]`` with ``M[c, j] = sum_n K[c, n] V[j, n]``.
    """

    def __init__(self, heads: int):
        super().__init__()
        self.heads = heads

    def forward(self, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        T, B = k.shape[:2]
        kh = k.reshape(T, B, self.heads, -1, k.shape[-2] * k.shape[-1])  # [T,B,h,dh,N]
        vh = v.reshape(T, B, self.heads, -1, v.shape[-2] * v.shape[-1])  # [T,B,h,dv,N]
        return kh @ vh.transpose(-1, -2)  # [T,B,h,dh,dv]

    def extra_repr(self) -> str:
        return f"heads={self.heads}"


class Retrieve(nn.Module):
    """Softmax-free retrieval ``R = Q . M * scale`` per head.

    ``q``: ``[T, B, heads*d_h, H, W]``, ``m``: ``[T, B, heads, d_h, d_v]`` ->
    ``[T, B, heads*d_v, H, W]`` with ``R[j, n] = scale * sum_c Q[c, n] M[c, j]``.
    ``scale = 2 * d_h**-0.5`` (a power of two when ``d_h`` is a power of 4).
    """

    def __init__(self, heads: int, scale: float):
        super().__init__()
        self.heads, self.scale = heads, float(scale)

    def forward(self, q: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        T, B, _, H, W = q.shape
        qh = q.reshape(T, B, self.heads, -1, H * W)  # [T,B,h,dh,N]
        r = m.transpose(-1, -2) @ qh  # [T,B,h,dv,N]
        return (r * self.scale).reshape(T, B, -1, H, W)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, scale={self.scale:g}"


class SpikingMLP(nn.Module):
    """Spiking MLP branch: neuron -> 1x1 C->rC (+bias)+BN -> neuron -> 1x1 rC->C (+bias)+BN."""

    def __init__(self, dim: int, ratio: int, neuron):
        super().__init__()
        hidden = dim * ratio
        self.sn1 = neuron()
        self.fc1 = ConvBN(dim, hidden, 1, bias=True)
        self.sn2 = neuron()
        self.fc2 = ConvBN(hidden, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T,B,C,H,W] branch output
        return self.fc2(self.sn2(self.fc1(self.sn1(x))))
