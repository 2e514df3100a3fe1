"""amaranth.sim driver of the conv engine: layers through one :class:`~spiketrack.hw.conv_engine.ConvEngine`.

:func:`conv_job` packs one layer's input levels (or stem pixels), weights
(``engine_cycles.pack_conv``), tables and residual into the engine's memory layouts (docs in
``hw/conv_engine.py``); :func:`run_jobs` runs any number of jobs through one elaborated engine
(``sim/unit_sim.py``: memories loaded at run time). It computes no
reference: tests compare its outputs with ``quant.golden`` and its busy cycles with
``hw.engine_cycles``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from spiketrack.hw.conv_engine import (BIAS_BITS, SHIFT_BITS, SHIFT_MAX, SHIFT_MIN, STREAM_BITS, TM_BITS, ConvEngine,
                                       conv_descriptor, desc_layout)
from spiketrack.hw.engine_cycles import Engine, pack_conv
from spiketrack.sim.unit_sim import run_unit_jobs, words

__all__ = ["ConvJob", "level_words", "conv_job", "retrieval_job", "run_jobs", "run_conv_layer"]


def _table_rows(tables: np.ndarray, chunks: int, P: int) -> list[int]:
    """Per-channel ``[bias, shift]`` rows -> one table word per chunk of ``P`` channels.

    Raises ``ValueError`` for a bias outside the table's signed ``BIAS_BITS`` or a shift outside
    what the engine applies (right shifts up to 31, left shifts up to 15): packing them would wrap.
    """
    tab = np.zeros((chunks * P, 2), dtype=np.int64)
    tab[:len(tables)] = tables
    lim = 1 << (BIAS_BITS - 1)
    for ch, (b, s) in enumerate(tab):
        if not -lim <= int(b) < lim:
            raise ValueError(f"channel {ch}: bias {int(b)} does not fit the table's signed {BIAS_BITS} bits")
        if not SHIFT_MIN <= int(s) <= SHIFT_MAX:
            raise ValueError(f"channel {ch}: requantisation shift {int(s)} is outside the engine's range "
                             f"[{SHIFT_MIN}, {SHIFT_MAX}] (right shifts up to {SHIFT_MAX}, left up to {-SHIFT_MIN})")
    field = lambda b, s: (int(b) & ((1 << BIAS_BITS) - 1)) | ((int(s) & ((1 << SHIFT_BITS) - 1)) << BIAS_BITS)
    return [sum(field(b, s) << ((BIAS_BITS + SHIFT_BITS) * i) for i, (b, s) in enumerate(tab[c * P:(c + 1) * P]))
            for c in range(chunks)]


def level_words(levels: torch.Tensor, n_words: int, per_word: int) -> np.ndarray:
    """[T, C, H, W] -> rows of ``per_word`` values in (t, y, x, word) order (zero-padded channels)."""
    T, C, H, W = levels.shape
    cpad = torch.zeros(T, n_words * per_word, H, W, dtype=torch.int64)
    cpad[:, :C] = levels
    return cpad.reshape(T, n_words, per_word, H, W).permute(0, 3, 4, 1, 2).reshape(-1, per_word).numpy()


@dataclass
class ConvJob:
    """One layer for the engine: descriptor, memory images and how to read the output."""

    desc: dict
    images: dict[str, list[int]]
    out_shape: tuple          #: (T, C_out, Ho, Wo)
    levels_out: bool          #: output words hold levels (3 bits a lane), else stream values
    name: str = ""
    result: dict = field(default_factory=dict)

    @property
    def out_depth(self) -> int:
        T, _, ho, wo = self.out_shape
        return T * ho * wo * self.desc["chunks"]

    def decode(self, raw: list[int], lanes: int) -> torch.Tensor:
        T, co, ho, wo = self.out_shape
        chunks = self.desc["chunks"]
        bits = 3 if self.levels_out else STREAM_BITS
        vals = np.array([[(word >> (bits * i)) & ((1 << bits) - 1) for i in range(lanes)] for word in raw], dtype=np.int64)
        if not self.levels_out:
            vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)
        out = torch.from_numpy(vals).reshape(T, ho, wo, chunks, lanes).permute(0, 3, 4, 1, 2)
        return out.reshape(T, chunks * lanes, ho, wo)[:, :co]


def conv_job(levels: torch.Tensor, weight, bias, shift, *, stride: int = 1, padding: int = 0, depthwise: bool = False,
             residual: torch.Tensor | None = None, neuron: tuple | None = None, stem: bool = False, lanes: int = 8,
             name: str = "", rounding: str = "half_up") -> ConvJob:
    """Pack one layer (see :func:`run_conv_layer` for the parameters)."""
    P = lanes
    levels = torch.as_tensor(levels).to(torch.int64)
    w = torch.as_tensor(weight).to(torch.int64)
    T, C, H, W = levels.shape
    co, _, k, _ = w.shape
    desc = conv_descriptor(depthwise=depthwise, k=k, stride=stride, pad=padding, T=T, h=H, w=W, c_in=C, c_out=co,
                           lanes=P, neuron=neuron is not None, f_m=neuron[0] if neuron else 8,
                           decays=neuron[1] if neuron else (), res_base=0 if residual is not None else None, stem=stem,
                           rounding=rounding)
    n_words, chunks, ho, wo = desc["n_words"], desc["chunks"], desc["ho"], desc["wo"]
    per_word, bits_in = (3, 8) if stem else (P, 3)   # stem: one word of 3 pixels
    lv = level_words(levels, n_words, per_word)
    packed = pack_conv(Engine(P), w.numpy(), torch.as_tensor(bias).numpy(), shift, C if depthwise else 1)
    images = {"in": words(lv, bits_in), "w": words(packed["weights"], 8),
              "tab": _table_rows(packed["tables"], chunks, P)}
    if residual is not None:
        r = torch.zeros(T, chunks * P, ho, wo, dtype=torch.int64)
        r[:, :co] = torch.as_tensor(residual)
        images["res"] = words(r.reshape(T, chunks, P, ho, wo).permute(0, 3, 4, 1, 2).reshape(-1, P).numpy(), STREAM_BITS)
    return ConvJob(desc, images, (T, co, ho, wo), neuron is not None, name)


def retrieval_job(query: torch.Tensor, memory: torch.Tensor, shift: int, *, neuron: tuple | None = None,
                  lanes: int = 8, name: str = "", rounding: str = "half_up") -> ConvJob:
    """Pack a retrieval ``R = Q·M`` (§IS-8) -> requantise -> [NI-LIF]: a grouped 1×1 conv, one group
    per head, its weight lines ``M[t, h, c, chunk·P : (chunk+1)·P]`` in the template memory.

    query : [T, heads·d_h, H, W] levels; memory : [T, heads, d_h, d_v] (unsigned).
    """
    P = lanes
    q = torch.as_tensor(query).to(torch.int64)
    mem = torch.as_tensor(memory).to(torch.int64)
    T, C, H, W = q.shape
    _, heads, d_h, d_v = mem.shape
    desc = conv_descriptor(depthwise=False, k=1, stride=1, pad=0, T=T, h=H, w=W, c_in=C, c_out=heads * d_v, lanes=P,
                           groups=heads, tmem=True, neuron=neuron is not None, f_m=neuron[0] if neuron else 8,
                           decays=neuron[1] if neuron else (), rounding=rounding)
    cpg = desc["cpg"]
    mp = torch.zeros(T, heads, d_h, cpg * P, dtype=torch.int64)
    mp[..., :d_v] = mem
    lines = mp.reshape(T, heads, d_h, cpg, P).permute(0, 1, 3, 2, 4).reshape(-1, P)  # t, h, chunk, c
    if mem.numel() and (int(mem.max()) >= 1 << TM_BITS or int(mem.min()) < 0):
        raise ValueError(f"memory values must be unsigned {TM_BITS}-bit")
    images = {"in": words(level_words(q, desc["n_words"], P), 3), "tm": words(lines.numpy(), TM_BITS),
              "tab": _table_rows(np.array([[0, shift]] * (heads * d_v)), desc["chunks"], P)}
    return ConvJob(desc, images, (T, heads * d_v, H, W), neuron is not None, name)


def run_jobs(jobs: list[ConvJob], lanes: int = 8, vcd: str | None = None) -> list[ConvJob]:
    """Run ``jobs`` one after another through one elaborated engine; fills each ``job.result``
    with ``out`` (tensor), ``cycles`` (busy counter delta), ``events`` and ``saturated``."""
    P = lanes
    reads = {"in": 3 * P, "w": 8 * P, "tm": TM_BITS * P, "tab": (BIAS_BITS + SHIFT_BITS) * P, "res": STREAM_BITS * P}
    return run_unit_jobs(ConvEngine(P), reads, STREAM_BITS * P, desc_layout(16), jobs, P,
                         counters=("busy", "events", "saturated"), vcd=vcd)


def run_conv_layer(levels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, shift, *, stride: int = 1,
                   padding: int = 0, depthwise: bool = False, residual: torch.Tensor | None = None,
                   neuron: tuple | None = None, stem: bool = False, lanes: int = 8, vcd: str | None = None) -> dict:
    """Run one layer on the engine.

    Parameters
    ----------
    levels : [T, C_in, H, W] spike levels (``stem``: [T, 3, H, W] uint8 pixels).
    weight : [C_out, C_in (or 1 if depthwise), k, k]; bias : [C_out] at the accumulator exponent.
    shift : int or per-channel list (§IS-5, ``f_acc - f_m``).
    residual : optional [T, C_out, Ho, Wo] stream values (§IS-6).
    neuron : optional ``(f_m, decays)`` with decays as the IR attribute (one list of
        ``[sign, shift]`` terms per step t = 1..T-1); without it the output is the stream.

    Returns
    -------
    dict with ``out`` [T, C_out, Ho, Wo], ``cycles`` (the engine's busy counter), ``events``,
    ``saturated`` and the ``descriptor``.
    """
    job = conv_job(levels, weight, bias, shift, stride=stride, padding=padding, depthwise=depthwise,
                   residual=residual, neuron=neuron, stem=stem, lanes=lanes)
    run_jobs([job], lanes, vcd)
    return {**job.result, "descriptor": job.desc}
