"""Golden synaptic accumulation: spike × weight as shift-add accumulation (docs/integer_semantics.md §IS-4, §IS-11).

The hardware synaptic core (``spiketrack.hw.synaptic_core``) is verified against these functions.
All tensors are int64; the convolution is an integer im2col + integer matmul (no float anywhere).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spiketrack.quant.golden.arith import check_int
from spiketrack.quant.golden.neuron import D

__all__ = ["level_times_weight", "conv2d_acc", "linear_acc", "stem_bitplane_acc", "acc_bound"]


def level_times_weight(k: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``k · w`` for levels ``0 <= k <= D`` using only shifts and adds (§IS-4).

    ``1·w = w``, ``2·w = w << 1``, ``3·w = (w << 1) + w``, ``4·w = w << 2``.
    """
    k = check_int(k, "k")
    w = check_int(w, "w")
    if int(k.min()) < 0 or int(k.max()) > D:
        raise ValueError(f"spike levels must lie in 0..{D}, got {int(k.min())}..{int(k.max())}")
    k, w = torch.broadcast_tensors(k, w)
    out = torch.zeros_like(w)
    out = torch.where(k == 1, w, out)
    out = torch.where(k == 2, w << 1, out)
    out = torch.where(k == 3, (w << 1) + w, out)
    out = torch.where(k == 4, w << 2, out)
    return out


def _im2col(x: torch.Tensor, kh: int, kw: int, stride: int, padding: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, kh, kw, Ho, Wo] with zero padding; works on integer tensors."""
    x = F.pad(x, (padding, padding, padding, padding))
    cols = x.unfold(2, kh, stride).unfold(3, kw, stride)  # N, C, Ho, Wo, kh, kw
    return cols.permute(0, 1, 4, 5, 2, 3)


def conv2d_acc(k: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 1,
               padding: int = 0, groups: int = 1) -> torch.Tensor:
    """Integer convolution accumulators ``acc = b + Σ k·w`` (§IS-4).

    Parameters
    ----------
    k : int tensor [N, C_in, H, W] (spike levels 0..D, or binary planes for the stem).
    w : int tensor [C_out, C_in / groups, kh, kw].
    bias : optional int tensor [C_out] at the accumulator exponent.

    Returns
    -------
    int64 tensor [N, C_out, H_out, W_out].
    """
    k = check_int(k, "k")
    w = check_int(w, "w")
    if k.dim() != 4 or w.dim() != 4:
        raise ValueError(f"conv2d_acc needs k [N,C,H,W] and w [Co,Ci/g,kh,kw], got {tuple(k.shape)}, {tuple(w.shape)}")
    n, c_in, _, _ = k.shape
    c_out, c_in_g, kh, kw = w.shape
    if c_in % groups or c_out % groups or c_in // groups != c_in_g:
        raise ValueError(f"channels do not match groups: C_in={c_in}, C_out={c_out}, groups={groups}, w={tuple(w.shape)}")
    cols = _im2col(k, kh, kw, stride, padding)  # N, C_in, kh, kw, Ho, Wo
    ho, wo = cols.shape[-2:]
    cols = cols.reshape(n, groups, c_in_g * kh * kw, ho * wo)
    wg = w.reshape(groups, c_out // groups, c_in_g * kh * kw)
    acc = torch.einsum("gok,ngkp->ngop", wg, cols).reshape(n, c_out, ho, wo)
    if bias is not None:
        acc = acc + check_int(bias, "bias").view(1, -1, 1, 1)
    return acc


def linear_acc(k: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Integer 1×1 / linear accumulators over tokens: k [N, C_in, L], w [C_out, C_in] -> [N, C_out, L]."""
    k = check_int(k, "k")
    w = check_int(w, "w")
    acc = torch.einsum("oc,ncl->nol", w, k)
    if bias is not None:
        acc = acc + check_int(bias, "bias").view(1, -1, 1)
    return acc


def stem_bitplane_acc(pixels: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 2,
                      padding: int = 3) -> torch.Tensor:
    """Stem convolution on uint8 pixels by bit planes: ``Σ_β conv(p_β) << β`` (§IS-11).

    pixels : int tensor [N, 3, H, W] with values 0..255.
    """
    p = check_int(pixels, "pixels")
    if int(p.min()) < 0 or int(p.max()) > 255:
        raise ValueError("stem pixels must be uint8 values 0..255")
    acc = None
    for beta in range(8):
        plane = (p >> beta) & 1
        part = conv2d_acc(plane, w, None, stride, padding) << beta
        acc = part if acc is None else acc + part
    if bias is not None:
        acc = acc + check_int(bias, "bias").view(1, -1, 1, 1)
    return acc


def acc_bound(w: torch.Tensor, bias: torch.Tensor | None = None, max_input: int = D) -> torch.Tensor:
    """Per-output-channel worst case ``|b| + max_input · Σ|w|`` that sizes the accumulator (§IS-4)."""
    w = check_int(w, "w")
    bound = max_input * w.abs().reshape(w.shape[0], -1).sum(dim=1)
    if bias is not None:
        bound = bound + check_int(bias, "bias").abs()
    return bound
