"""Golden pooling and upsampling on fixed-point streams (docs/integer_semantics.md §IS-10, §IS-13)."""

from __future__ import annotations

import torch

from spiketrack.quant.golden.arith import check_int, requantize

__all__ = ["avg_pool_pow2", "upsample_nearest", "bilinear_taps", "upsample_bilinear"]


def avg_pool_pow2(x: torch.Tensor, p: int, bits: int) -> tuple[torch.Tensor, int]:
    """p×p average pooling (p a power of two) of x [N, C, H, W]: window sum, then §IS-5 by 2·log2(p)."""
    x = check_int(x, "x")
    if p < 1 or p & (p - 1):
        raise ValueError(f"pooling window must be a power of two, got {p}")
    n, c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"pooling {p}x{p} needs H, W divisible by {p}, got {h}x{w}")
    s = x.reshape(n, c, h // p, p, w // p, p).sum(dim=(3, 5))
    return requantize(s, 2 * (p.bit_length() - 1), bits)


def upsample_nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling (copy) of x [N, C, H, W] by an integer factor."""
    x = check_int(x, "x")
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def bilinear_taps(n: int, p: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One axis of §IS-13: for each of the ``n·p`` outputs, its two source indices and integer weights.

    Output ``i = p·q + r`` reads ``x[lo]`` and ``x[hi]`` with weights ``w_lo + w_hi = 2p``:
    ``t = 2r + 1 - p``; ``t < 0``: ``lo = q - 1``, ``w_lo = -t``; ``t > 0``: ``lo = q``,
    ``w_lo = 2p - t``; ``hi = lo + 1``; both indices clamped to ``0..n-1``.
    """
    if p < 2 or p & (p - 1):
        raise ValueError(f"bilinear upsampling factor must be a power of two >= 2, got {p}")
    i = torch.arange(n * p, dtype=torch.int64)
    q, t = i // p, 2 * (i % p) + 1 - p
    lo = torch.where(t < 0, q - 1, q)
    w_lo = torch.where(t < 0, -t, 2 * p - t)
    return lo.clamp(0, n - 1), (lo + 1).clamp(0, n - 1), w_lo, 2 * p - w_lo


def upsample_bilinear(x: torch.Tensor, factor: int, bits: int) -> tuple[torch.Tensor, int]:
    """Bilinear ``factor``× upsampling (align_corners=False, edge-clamped) of x [N, C, H, W] (§IS-13).

    Rows, then columns: ``w_lo·x[lo] + w_hi·x[hi]`` per axis, exact (exponent ``f + 2·log2(2p)``),
    then one §IS-5 requantisation back to ``(f, bits)``. Returns (y, saturated count).
    """
    x = check_int(x, "x")
    h, w = x.shape[-2:]
    lo, hi, wl, wh = bilinear_taps(h, factor)
    y = wl.view(-1, 1) * x[..., lo, :] + wh.view(-1, 1) * x[..., hi, :]
    lo, hi, wl, wh = bilinear_taps(w, factor)
    y = wl * y[..., lo] + wh * y[..., hi]
    return requantize(y, 2 * (2 * factor).bit_length() - 2, bits)
