"""Cycle and memory-traffic model of the accelerator's units for whole-network compilation.

This is the contract the accelerator's run-time-configured units are built to (docs/accelerator.md):
the compiler's schedule and memory plan use it, and the RTL of each unit is tested for equality
with it, as every ``hw/<unit>_cycles.py`` model is. Dataflow: **output-stationary**, time
innermost.

Conv engine (``P`` = ``lanes`` accumulators in registers, one output position × ``P`` output
channels at a time; activation words of ``G`` = ``word`` channel levels of one position):

* spiking conv (groups ``g``, ``cig = C_in/g``): per timestep, output position ``o``, group and
  ``P``-chunk of the group's output channels, for every valid kernel tap and every input word of
  the group at the tap's input position: ``max(1, nnz(word))`` cycles (a word read; one weight
  line read and ``P`` shift-add accumulations per non-zero level). Zero levels cost nothing
  beyond their word's one cycle.
* depthwise (``g = C_in = C_out``): lanes run over channels; one cycle per valid tap.
* stem (uint8 pixels, §IS-11): a word holds a position's 3 pixels; ``max(1, non-zero pixels)``
  cycles per word, each pixel's 8 bit planes added in one cycle (shifted adds, no multiplier).
* epilogue (requantise, residual add, NI-LIF) is pipelined behind the accumulation. The NI-LIF
  pipeline (``hw/nilif.py``) needs :data:`~spiketrack.hw.nilif.NILIF_STAGES` (``K``) cycles
  between consecutive steps of one neuron, so an output word (group: one timestep of one
  position and ``P``-chunk) costs ``max(K, Σ its word cycles)``, except the op's first, which
  costs its own count.

Retrieval ``R = Q·M`` runs on the conv engine as a grouped 1×1 conv (one group per head, weight
lines from the template memory): per timestep, token, head and ``P``-chunk of ``d_v``,
``max(1, nnz)`` cycles per query word of the head's ``d_h`` channels. Memory build (memory unit):
per timestep, token and head, ``max(1, nnz)`` per key word, times the ``P``-chunks of ``d_v``.

Vector unit (stream -> levels neurons, residual adds, pooling, fusion): ``R`` cycles per output
word of ``P`` lanes (``R`` reads: 1 for adds, ``p²`` for pooling, ``T_in`` for fusion; a neuron
word takes ``K`` cycles for one read, the NI-LIF recurrence's spacing).

Every conv-engine op (convolutions, stem, retrieval) adds :data:`CONV_OVERHEAD` cycles (measured on the RTL,
``hw/conv_engine.py``: descriptor take and window setup, two cycles of word fetch, the scanner
register, weight read, product, accumulate, requantise, neuron and write stages); vector-unit ops
add :data:`VECTOR_OVERHEAD`, memory-build ops :data:`MB_OVERHEAD` (``hw/memory_builder.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from spiketrack.hw.banked_memory import READ_LATENCY
from spiketrack.hw.nilif import NILIF_STAGES

__all__ = ["Engine", "Cost", "MB_OVERHEAD", "CONV_OVERHEAD", "VECTOR_OVERHEAD", "GROUP_MIN", "NEURON_WORD_CYCLES", "conv_cost", "retrieve_cost", "memory_build_cost", "vector_cost", "pack_conv",
           "const_bits", "LEVEL_BITS_STORED"]

# Per-op constants of the units with memories of READ_LATENCY (hw/banked_memory.py): each read
# stage of a unit's pipeline lengthens the op by READ_LATENCY - 1 cycles (the conv engine has two
# in series: the input-word fetch and the weight/table/residual read).
CONV_OVERHEAD = 26 + 2 * READ_LATENCY   #: per conv-engine op (exact: tests/test_hw_conv_engine.py)
VECTOR_OVERHEAD = 14 + READ_LATENCY     #: per vector-unit op (exact: tests/test_hw_vector_unit.py)
GROUP_MIN = NILIF_STAGES  #: least cycles between two output words of the conv engine
NEURON_WORD_CYCLES = NILIF_STAGES  #: vector unit: cycles per output word of a neuron op
MB_OVERHEAD = 5 + READ_LATENCY       #: per memory-build op (exact: tests/test_accel.py; hw/memory_builder.py)
LEVEL_BITS_STORED = 3  #: a spike level 0..4 is stored in 3 bits


@dataclass(frozen=True)
class Engine:
    """Parameters of the accelerator's datapath.

    Parameters
    ----------
    lanes : int
        ``P``: accumulators of the conv engine and the memory unit, and vector-unit lanes.
    word : int
        ``G``: channel levels per activation word (``3·G`` bits).
    """

    lanes: int = 8
    word: int = 8

    def __post_init__(self):
        if self.lanes < 1 or self.word < 1:
            raise ValueError(f"lanes and word must be >= 1, got {self.lanes}, {self.word}")


@dataclass
class Cost:
    """Cycles and memory traffic of one node (one frame/pass).

    ``reads``/``writes`` count accesses in bits per memory: ``weights``, ``tables``, ``act``
    (activation buffers), ``tmem`` (template memories), ``consts`` (positional tables).
    ``adds`` counts lane additions (accumulate, requantise, residual, membrane).
    """

    cycles: int = 0
    adds: int = 0
    reads: dict = field(default_factory=dict)
    writes: dict = field(default_factory=dict)

    def add(self, other: "Cost") -> "Cost":
        self.cycles += other.cycles
        self.adds += other.adds
        for mine, theirs in ((self.reads, other.reads), (self.writes, other.writes)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        return self


def _cost(cycles=0, adds=0, reads=None, writes=None):
    return Cost(int(cycles), int(adds), {k: int(v) for k, v in (reads or {}).items()},
                {k: int(v) for k, v in (writes or {}).items()})


def _tap_sum(per_pos: torch.Tensor, k: int, stride: int, padding: int) -> torch.Tensor:
    """Σ over the valid taps of each output position of a per-input-position value: [..., H, W]."""
    x = per_pos.to(torch.float64).reshape(-1, 1, *per_pos.shape[-2:])
    ones = torch.ones(1, 1, k, k, dtype=torch.float64)
    return F.conv2d(x, ones, stride=stride, padding=padding).reshape(*per_pos.shape[:-2], -1)


def _group_cycles(per_out: torch.Tensor, chunks: int, first: bool = True) -> float:
    """Σ over output words of ``max(GROUP_MIN, cycles)`` for ``chunks`` repeats of ``per_out``
    ([T, positions]: the cycles of each output word, time first); with ``first``, the op's
    first word (t = 0, position 0, chunk 0) costs its own count."""
    total = chunks * float(per_out.clamp(min=GROUP_MIN).sum())
    if first:
        total -= max(0.0, GROUP_MIN - float(per_out.reshape(per_out.shape[0], -1)[0, 0]))
    return total


def _word_nnz(levels: torch.Tensor, word: int) -> torch.Tensor:
    """[T, C, H, W] levels -> [T, ceil(C/word), H, W] count of non-zero levels per word."""
    t, c, h, w = levels.shape
    nz = (levels != 0).to(torch.int64)
    pad = (-c) % word
    if pad:
        nz = torch.cat([nz, torch.zeros(t, pad, h, w, dtype=torch.int64)], dim=1)
    return nz.reshape(t, -1, word, h, w).sum(dim=2)


def conv_cost(engine: Engine, conv, wshape, in_t, out_t, levels: torch.Tensor | None, residual: bool,
              chunk_range: tuple[int, int] | None = None):
    """Cost of one conv-engine op (spiking conv, depthwise or stem); see the module docstring.

    ``chunk_range`` ``(first, end)``: the op runs only those output chunks (of the layer's
    ``groups × ⌈C_out/groups/P⌉``), as one descriptor of a layer split by weight-cache fills
    (``conv_descriptor(chunk_range=)``); its first word is the range's first. Default: all."""
    P, G = engine.lanes, engine.word
    co, cig, k, _ = wshape
    a = conv.attrs
    groups, stride, pad = a["groups"], a["stride"], a["padding"]
    T, C, H, W = in_t.shape
    ho, wo = out_t.shape[2:]
    n_out = ho * wo
    ones = torch.ones(T, H, W)
    taps = float(_tap_sum(ones, k, stride, pad).sum())  # Σ_t Σ_o valid taps
    wb = a["weight_bits"]
    out_bits = out_t.bits * co * n_out * T
    res_bits = 16 * co * n_out * T if residual else 0
    tables = co * (a["acc_bits"] + 6)  # bias + shift per output channel, once per op
    depthwise = groups == C == co and cig == 1
    n_all = math.ceil(co / P) if depthwise else groups * math.ceil(co // groups / P)   # the layer's chunks
    c0, c1 = chunk_range or (0, n_all)
    if not 0 <= c0 < c1 <= n_all:
        raise ValueError(f"chunk range {c0}..{c1 - 1} outside the layer's {n_all} chunks")
    frac = (c1 - c0) / n_all      # the op's share of the layer's outputs
    tables = tables * (c1 - c0) // n_all   # per-chunk rows; an op reads its chunks' rows
    if in_t.kind == "pixels":  # stem: one word of 3 pixels per position; max(1, non-zero pixels)
        chunks = c1 - c0
        nnz = (torch.full((T, H, W), C) if levels is None else (levels != 0).sum(dim=1))
        cycles = _group_cycles(_tap_sum(nnz.clamp(min=1), k, stride, pad), chunks)
        events = chunks * float(_tap_sum(nnz, k, stride, pad).sum())
        if levels is None:
            planes = 8 * events
        else:
            pop = sum(((levels >> b) & 1) for b in range(8)).sum(dim=1)  # [T, H, W]
            planes = chunks * float(_tap_sum(pop, k, stride, pad).sum())
        return _cost(cycles + CONV_OVERHEAD, P * planes,
                     {"weights": events * P * wb, "act": chunks * taps * C * 8, "tables": tables,
                      "act_res": res_bits * frac}, {"act": out_bits * frac})
    if depthwise:  # lanes over channels
        chunks = c1 - c0
        tap_reads = chunks * taps
        cycles = _group_cycles(_tap_sum(ones, k, stride, pad), chunks)
        return _cost(cycles + CONV_OVERHEAD, tap_reads * P,
                     {"weights": tap_reads * P * wb, "act": tap_reads * P * LEVEL_BITS_STORED, "tables": tables,
                      "act_res": res_bits * frac}, {"act": out_bits * frac})
    chunks = math.ceil(co // groups / P)   # per group
    cycles = events = words = 0.0
    for g in range(groups):
        n_g = max(0, min(c1, (g + 1) * chunks) - max(c0, g * chunks))   # this group's chunks in the range
        if n_g == 0:
            continue
        if levels is None:
            nnz = torch.zeros(T, math.ceil(cig / G), H, W, dtype=torch.int64)
            for wi in range(nnz.shape[1]):
                nnz[:, wi] = min(G, cig - wi * G)
        else:
            nnz = _word_nnz(levels[:, g * cig:(g + 1) * cig], G)
        per_pos_cycles = nnz.clamp(min=1).sum(dim=1)
        cycles += _group_cycles(_tap_sum(per_pos_cycles, k, stride, pad), n_g, first=g == c0 // chunks)
        events += n_g * float(_tap_sum(nnz.sum(dim=1), k, stride, pad).sum())
        words += n_g * nnz.shape[1] * taps
    return _cost(cycles + CONV_OVERHEAD, events * P,
                 {"weights": events * P * wb, "act": words * G * LEVEL_BITS_STORED, "tables": tables,
                  "act_res": res_bits * frac}, {"act": out_bits * frac})


def _head_words(engine: Engine, levels, m_shape, n_tok: int) -> tuple[int, int, int]:
    """Memory unit: per timestep, token, head and ``P``-chunk of ``d_v``, ``max(1, nnz)`` cycles per
    word of the head's ``d_h`` levels (query or key). Returns (cycles, non-zero events, words)."""
    P, G = engine.lanes, engine.word
    T, heads, d_h, d_v = m_shape
    chunks = math.ceil(d_v / P)
    cycles = events = words = 0
    for h in range(heads):
        if levels is None:
            nnz = torch.full((T, math.ceil(d_h / G), n_tok), min(G, d_h))
        else:
            nnz = _word_nnz(levels[:, h * d_h:(h + 1) * d_h], G).reshape(T, -1, n_tok)
        cycles += _group_cycles(nnz.clamp(min=1).sum(dim=1), chunks, first=h == 0)
        events += chunks * int(nnz.sum())
        words += chunks * nnz.numel()
    return cycles, events, words


def retrieve_cost(engine: Engine, q_t, m_t, out_t, levels: torch.Tensor | None):
    """Retrieval R = Q·M on the memory unit (output-stationary over tokens)."""
    P, G = engine.lanes, engine.word
    T, heads, d_h, d_v = m_t.shape
    cycles, events, words = _head_words(engine, levels, m_t.shape, q_t.shape[2] * q_t.shape[3])
    return _cost(cycles + CONV_OVERHEAD, events * P,
                 {"tmem": events * P * m_t.bits, "act": words * G * LEVEL_BITS_STORED},
                 {"act": out_t.bits * out_t.elements * T})


def memory_build_cost(engine: Engine, k_t, v_t, m_t, levels: torch.Tensor | None = None):
    """Memory build M = Kᵀ·V on the memory-build unit (``hw/memory_builder.py``): one cycle per
    (timestep, head, value chunk, key channel, token), reading one key word and one value word
    and adding ``P`` products of two levels, plus :data:`MB_OVERHEAD`. Dense: the key levels do
    not change the count (``levels`` is accepted for the common signature)."""
    P = engine.lanes
    T, heads, d_h, d_v = m_t.shape
    steps = T * heads * math.ceil(d_v / P) * d_h * k_t.shape[2] * k_t.shape[3]
    lines = T * heads * math.ceil(d_v / P) * d_h
    return _cost(steps + MB_OVERHEAD, steps * P, {"act": steps * 2 * P * LEVEL_BITS_STORED},
                 {"tmem": lines * P * m_t.bits})


def vector_cost(engine: Engine, out_t, in_ts, const_bits: int = 0, reads_per_word: int = 1, neuron: bool = False):
    """An element-wise op on the vector unit (``hw/vector_unit.py``): ``reads_per_word`` cycles
    (``R``: 1 for an add, ``p²`` for pooling, ``T_in`` for fusion, :data:`NEURON_WORD_CYCLES` for a
    neuron, ``neuron=True``) per output word of ``P`` lanes, plus :data:`VECTOR_OVERHEAD`."""
    T = out_t.shape[0]
    out_words = T * math.ceil(out_t.shape[1] / engine.lanes) * int(np.prod(out_t.shape[2:]))
    cycles = out_words * (NEURON_WORD_CYCLES if neuron else reads_per_word)
    reads = {"act": sum(t.bits * t.elements * t.shape[0] for t in in_ts)}
    if const_bits:
        reads["consts"] = const_bits * out_t.elements * T
    return _cost(cycles + VECTOR_OVERHEAD, out_t.elements * T * (1 + len(in_ts)), reads,
                 {"act": out_t.bits * out_t.elements * T})


def const_bits(value: np.ndarray) -> int:
    """Signed width that holds every value of a constant table (positional embeddings)."""
    m = int(np.abs(value).max()) if value.size else 0
    return m.bit_length() + 1


def pack_conv(engine: Engine, weight, bias, shift, groups: int = 1) -> dict[str, np.ndarray]:
    """Weights as ``P``-lane lines in the order the engine reads them, and the per-channel tables.

    Line order: group, output chunk, tap (ky, kx), input channel of the group (so every address
    step of the engine is an addition: ``+1`` per channel, ``+C_in`` per tap); depthwise: chunk,
    tap. Lanes past the output channels are zero. Tables: one row per output channel
    ``[bias, shift]`` (``shift``: one int or one per output channel, §IS-5).
    """
    P = engine.lanes
    w = np.asarray(weight, dtype=np.int64)
    co, cig, k, _ = w.shape
    if groups == co and cig == 1 and groups > 1:  # depthwise
        chunks = math.ceil(co / P)
        wp = np.zeros((chunks * P, k * k), dtype=np.int64)
        wp[:co] = w.reshape(co, k * k)
        lines = wp.reshape(chunks, P, k * k).transpose(0, 2, 1).reshape(-1, P)
    else:
        cog = co // groups
        chunks = math.ceil(cog / P)
        wg = np.zeros((groups, chunks * P, cig, k * k), dtype=np.int64)
        wg[:, :cog] = w.reshape(groups, cog, cig, k * k)
        lines = wg.reshape(groups, chunks, P, cig, k * k).transpose(0, 1, 4, 3, 2).reshape(-1, P)
    shifts = np.asarray(list(shift) if not isinstance(shift, int) else [shift] * co, dtype=np.int64)
    tables = np.stack([np.asarray(bias, dtype=np.int64), shifts], axis=1)
    return {"weights": lines.astype(np.int8), "tables": tables}
