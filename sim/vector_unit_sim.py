"""amaranth.sim jobs for the vector unit (``hw/vector_unit.py``): NI-LIF on a stream (with a
positional table), residual add (broadcast, upsampled operand), average pooling, bilinear
upsampling, product by a constant with requantisation, mean fusion.
Each ``*_job`` packs the operands into the unit's word layout; :func:`run_vector_jobs` runs jobs
through one elaborated unit. No reference is computed here (tests use ``quant.golden``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from spiketrack.hw.conv_engine import STREAM_BITS, decay_fields
from spiketrack.hw.vector_unit import VecMode, VectorUnit, bilinear_fields, horner_fields, vec_desc_layout
from spiketrack.sim.conv_engine_sim import level_words
from spiketrack.sim.unit_sim import run_unit_jobs, words

__all__ = ["VecJob", "neuron_job", "add_job", "pool_job", "bilinear_job", "mul_const_job", "fusion_job",
           "run_vector_jobs"]


@dataclass
class VecJob:
    desc: dict
    images: dict
    out_shape: tuple
    levels_out: bool
    result: dict = field(default_factory=dict)

    @property
    def out_depth(self) -> int:
        T, _, ho, wo = self.out_shape
        return T * ho * wo * self.desc["chunks"]

    def decode(self, raw, lanes):
        T, c, ho, wo = self.out_shape
        bits = 3 if self.levels_out else STREAM_BITS
        vals = np.array([[(w >> (bits * i)) & ((1 << bits) - 1) for i in range(lanes)] for w in raw], dtype=np.int64)
        if not self.levels_out:
            vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)
        chunks = self.desc["chunks"]
        out = torch.from_numpy(vals).reshape(T, ho, wo, chunks, lanes).permute(0, 3, 4, 1, 2)
        return out.reshape(T, chunks * lanes, ho, wo)[:, :c]


def _stream(x, chunks, P, bits=STREAM_BITS):
    return words(level_words(torch.as_tensor(x).to(torch.int64), chunks, P), bits)


def _base(mode, T, c, ho, wo, P, **fields):
    chunks = -(-c // P)
    desc = {"mode": mode, "const": 0, "half_even": 0, "bil": 0, "horner": 0, "mbits": 0, "T": T, "f_m": 8,
            "decays": decay_fields(()), "ho": ho, "wo": wo,
            "chunks": chunks, "r_y": 1, "r_x": 1, "up": 0, "shift": 0, "a_base": 0, "a_t": ho * wo * chunks,
            "a_row": wo * chunks, "a_col": chunks, "a_ry": 0, "a_rx": 0, "b_base": 0, "b_t": 0, "b_row": 0,
            "c_base": 0, "o_base": 0, "o_t": ho * wo * chunks}
    desc.update(fields)
    return desc, chunks


def neuron_job(x, f_m: int, decays, const=None, lanes: int = 8, rounding: str = "half_up") -> VecJob:
    """NI-LIF (§IS-7) over ``x`` [T, C, H, W] at ``(f_m, 16)``, after ``+ const`` (§IS-6) if given."""
    T, c, h, w = x.shape
    desc, chunks = _base(VecMode.NEURON, T, c, h, w, lanes, const=int(const is not None), f_m=f_m,
                         decays=decay_fields(decays), half_even=int(rounding == "half_even"))
    images = {"a": _stream(x, chunks, lanes)}
    if const is not None:
        images["c"] = _stream(const, chunks, lanes)
    return VecJob(desc, images, (T, c, h, w), True)


def add_job(a, b, up: int = 0, lanes: int = 8) -> VecJob:
    """``sat(a + b)`` (§IS-6): ``a`` [1 or T, C, H, W] (one timestep is broadcast), ``b`` [T, C, H/2**up, W/2**up]
    read through nearest-neighbour upsampling (§IS-10)."""
    T, c, hb, wb = b.shape
    h, w = hb << up, wb << up
    if a.shape[0] not in (1, T) or tuple(a.shape[1:]) != (c, h, w):
        raise ValueError(f"add operands {tuple(a.shape)} and {tuple(b.shape)} (up {up}) do not fit")
    desc, chunks = _base(VecMode.ADD, T, c, h, w, lanes, up=up, b_t=hb * wb * -(-c // lanes),
                         b_row=wb * -(-c // lanes))
    if a.shape[0] == 1:
        desc["a_t"] = 0
    return VecJob(desc, {"a": _stream(a, chunks, lanes), "b": _stream(b, chunks, lanes)}, (T, c, h, w), False)


def pool_job(x, p: int, lanes: int = 8) -> VecJob:
    """``p × p`` average pooling (§IS-10) of ``x`` [T, C, H, W] at 16 bits."""
    T, c, h, w = x.shape
    chunks = -(-c // lanes)
    desc, _ = _base(VecMode.POOL, T, c, h // p, w // p, lanes, r_y=p, r_x=p, shift=2 * (p.bit_length() - 1),
                    a_t=h * w * chunks, a_row=p * w * chunks, a_col=p * chunks, a_ry=w * chunks, a_rx=chunks)
    return VecJob(desc, {"a": _stream(x, chunks, lanes)}, (T, c, h // p, w // p), False)


def bilinear_job(x, p: int, lanes: int = 8) -> VecJob:
    """Bilinear ``p``× upsampling (§IS-13, ``p`` = 2 or 4) of ``x`` [T, C, H, W] at 16 bits."""
    T, c, h, w = x.shape
    chunks = -(-c // lanes)
    desc, _ = _base(VecMode.POOL, T, c, h * p, w * p, lanes, a_t=h * w * chunks, **bilinear_fields(p, w, chunks))
    return VecJob(desc, {"a": _stream(x, chunks, lanes)}, (T, c, h * p, w * p), False)


def mul_const_job(x, m: int, shift: int, lanes: int = 8) -> VecJob:
    """``requant(x · m, shift)`` to 16 bits (§IS-12, §IS-5) of ``x`` [T, C, H, W], ``1 <= m <= 255``."""
    T, c, h, w = x.shape
    desc, chunks = _base(VecMode.POOL, T, c, h, w, lanes, **horner_fields(m, shift))
    return VecJob(desc, {"a": _stream(x, chunks, lanes)}, (T, c, h, w), False)


def fusion_job(levels, lanes: int = 8) -> VecJob:
    """Compare-only mean of the ``T`` timesteps of ``levels`` [T, C, H, W] (§IS-10)."""
    T, c, h, w = levels.shape
    chunks = -(-c // lanes)
    desc, _ = _base(VecMode.FUSION, 1, c, h, w, lanes, r_y=T, a_ry=h * w * chunks, a_t=0)
    return VecJob(desc, {"a": _stream(levels, chunks, lanes, bits=3)}, (1, c, h, w), True)


def run_vector_jobs(jobs: list[VecJob], lanes: int = 8, vcd: str | None = None) -> list[VecJob]:
    reads = {n: STREAM_BITS * lanes for n in ("a", "b", "c")}
    return run_unit_jobs(VectorUnit(lanes), reads, STREAM_BITS * lanes, vec_desc_layout(16), jobs, lanes,
                         counters=("busy", "reads", "saturated"), vcd=vcd)
