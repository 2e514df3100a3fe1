"""amaranth.sim jobs for the memory builder (``hw/memory_builder.py``): ``M = Kᵀ·V`` per head.

:func:`mb_job` packs key and value levels into the unit's word layout; :func:`run_mb_jobs` runs
jobs through one elaborated unit (``sim/unit_sim.py``). No reference is computed here: tests and
``verify --network`` compare with ``quant.golden.memory.memory_build`` and
``hw.engine_cycles.memory_build_cost``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from spiketrack.hw.conv_engine import TM_BITS
from spiketrack.hw.memory_builder import MemoryBuilder, mb_desc_layout
from spiketrack.sim.conv_engine_sim import level_words
from spiketrack.sim.unit_sim import run_unit_jobs, words

__all__ = ["MbJob", "mb_job", "run_mb_jobs"]


@dataclass
class MbJob:
    desc: dict
    images: dict
    shape: tuple              #: (T, heads, d_h, d_v) of the memory
    result: dict = field(default_factory=dict)

    @property
    def out_depth(self) -> int:
        T, heads, dh, dv = self.shape
        return T * heads * self.desc["cpg"] * dh

    def decode(self, raw, lanes):
        T, heads, dh, dv = self.shape
        vals = torch.tensor([[(w >> (TM_BITS * i)) & ((1 << TM_BITS) - 1) for i in range(lanes)] for w in raw])
        m = vals.reshape(T, heads, dv // lanes, dh, lanes).permute(0, 1, 3, 2, 4)
        return m.reshape(T, heads, dh, dv)


def mb_job(k: torch.Tensor, v: torch.Tensor, heads: int, lanes: int = 8) -> MbJob:
    """Memory build of keys ``k`` [T, heads·d_h, H, W] and values ``v`` [T, heads·d_v, H, W] (levels);
    ``d_h`` and ``d_v`` multiples of ``lanes``."""
    P = lanes
    T, ck, H, W = k.shape
    cv = v.shape[1]
    dh, dv = ck // heads, cv // heads
    if dh % P or dv % P:
        raise ValueError(f"memory build needs d_h = {dh} and d_v = {dv} to be multiples of {P} lanes")
    images = {"k": words(level_words(torch.as_tensor(k).to(torch.int64), ck // P, P), 3),
              "v": words(level_words(torch.as_tensor(v).to(torch.int64), cv // P, P), 3)}
    desc = {"T": T, "heads": heads, "dh": dh, "cpg": dv // P, "n": H * W, "kh": dh // P, "k_base": 0,
            "k_t": H * W * ck // P, "k_n": ck // P, "v_base": 0, "v_t": H * W * cv // P, "v_n": cv // P, "o_base": 0}
    return MbJob(desc, images, (T, heads, dh, dv))


def run_mb_jobs(jobs: list[MbJob], lanes: int = 8, vcd: str | None = None) -> list[MbJob]:
    P = lanes
    return run_unit_jobs(MemoryBuilder(P), {"k": 3 * P, "v": 3 * P}, TM_BITS * P, mb_desc_layout(16), jobs, P,
                         counters=("busy", "reads"), vcd=vcd)
