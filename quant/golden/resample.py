"""Golden pooling and upsampling on fixed-point streams (docs/integer_semantics.md §IS-10)."""

from __future__ import annotations

import torch

from spiketrack.quant.golden.arith import check_int, requantize

__all__ = ["avg_pool_pow2", "upsample_nearest"]


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
