"""amaranth.sim driver of the conv engine: one layer through :class:`~spiketrack.hw.conv_engine.ConvEngine`.

:func:`run_conv_layer` packs a layer's input levels, weights (``engine_cycles.pack_conv``), tables and
residual into the engine's memory layouts (docs in ``hw/conv_engine.py``), runs the engine from its
descriptor until it goes idle, and unpacks the output memory. It computes no reference: tests
compare its output with ``quant.golden`` and its busy cycles with ``hw.engine_cycles``.
"""

from __future__ import annotations

import numpy as np
import torch
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spiketrack.hw.conv_engine import BIAS_BITS, SHIFT_BITS, STREAM_BITS, ConvEngine, conv_descriptor, desc_layout
from spiketrack.hw.engine_cycles import Engine, pack_conv

__all__ = ["run_conv_layer", "EngineHarness"]


class EngineHarness(wiring.Component):
    """The engine with its five memories (init contents given), for simulation."""

    def __init__(self, lanes, images: dict[str, list[int]], out_depth: int, addr_bits: int = 16):
        self.lanes, self.images, self.out_depth, self.addr_bits = lanes, images, out_depth, addr_bits
        self.engine = ConvEngine(lanes, addr_bits)
        super().__init__({"i_desc": wiring.In(stream.Signature(desc_layout(addr_bits))), "busy": wiring.Out(1)})

    def elaborate(self, platform):
        m = Module()
        P = self.lanes
        m.submodules.engine = e = self.engine
        widths = {"in": 3 * P, "w": 8 * P, "tab": (BIAS_BITS + SHIFT_BITS) * P, "res": STREAM_BITS * P}
        for name, width in widths.items():
            init = self.images.get(name) or [0]
            mem = Memory(shape=width, depth=len(init), init=init)
            m.submodules[f"{name}_mem"] = mem
            rd = mem.read_port()
            m.d.comb += [rd.addr.eq(getattr(e, f"{name}_addr")), getattr(e, f"{name}_data").eq(rd.data)]
        self.out_mem = Memory(shape=STREAM_BITS * P, depth=self.out_depth, init=[])
        m.submodules.out_mem = self.out_mem
        wr = self.out_mem.write_port()
        m.d.comb += [wr.addr.eq(e.out_addr), wr.data.eq(e.out_data), wr.en.eq(e.out_en)]
        wiring.connect(m, wiring.flipped(self.i_desc), e.i_desc)
        m.d.comb += self.busy.eq(e.busy)
        return m


def _words(values: np.ndarray, bits: int) -> list[int]:
    """Rows of lane values -> integers, lane 0 in the low bits (two's complement per lane)."""
    mask = (1 << bits) - 1
    return [sum((int(v) & mask) << (bits * i) for i, v in enumerate(row)) for row in values]


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
    dict with ``out`` [T, C_out, Ho, Wo] and ``cycles`` (the engine's busy counter).
    """
    P = lanes
    levels = torch.as_tensor(levels).to(torch.int64)
    w = torch.as_tensor(weight).to(torch.int64)
    T, C, H, W = levels.shape
    co, _, k, _ = w.shape
    desc = conv_descriptor(depthwise=depthwise, k=k, stride=stride, pad=padding, T=T, h=H, w=W, c_in=C, c_out=co,
                           lanes=P, neuron=neuron is not None, f_m=neuron[0] if neuron else 8,
                           decays=neuron[1] if neuron else (), res_base=0 if residual is not None else None, stem=stem)
    n_words, chunks, ho, wo = desc["n_words"], desc["chunks"], desc["ho"], desc["wo"]
    # input words [T, H, W, n_words] of P levels (stem: one word of 3 pixels)
    per_word, bits_in = (3, 8) if stem else (P, 3)
    cpad = torch.zeros(T, n_words * per_word, H, W, dtype=torch.int64)
    cpad[:, :C] = levels
    lv = cpad.reshape(T, n_words, per_word, H, W).permute(0, 3, 4, 1, 2).reshape(-1, per_word)
    shifts = list(shift) if not isinstance(shift, int) else [shift] * co
    conv = type("L", (), {"attrs": {"groups": C if depthwise else 1}})()
    req = type("L", (), {"attrs": {"shift": shifts}})()
    packed = pack_conv(Engine(P), conv, {"weight": w.numpy(), "bias": torch.as_tensor(bias).numpy()}, req)
    tab = np.zeros((chunks * P, 2), dtype=np.int64)
    tab[:co] = packed["tables"]
    tab_rows = [sum(((int(b) & ((1 << BIAS_BITS) - 1)) | ((int(s) & 63) << BIAS_BITS)) << ((BIAS_BITS + SHIFT_BITS) * i)
                    for i, (b, s) in enumerate(tab[c * P:(c + 1) * P])) for c in range(chunks)]
    images = {"in": _words(lv.numpy(), bits_in), "w": _words(packed["weights"], 8), "tab": tab_rows}
    if residual is not None:
        r = torch.zeros(T, chunks * P, ho, wo, dtype=torch.int64)
        r[:, :co] = torch.as_tensor(residual)
        images["res"] = _words(r.reshape(T, chunks, P, ho, wo).permute(0, 3, 4, 1, 2).reshape(-1, P).numpy(), STREAM_BITS)
    out_depth = T * ho * wo * chunks
    dut = EngineHarness(P, images, out_depth)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    result = {}

    async def tb(ctx):
        payload = dut.i_desc.payload
        for name, value in desc.items():
            if name == "decays":
                for t_i, terms in enumerate(value):
                    for i, term in enumerate(terms):
                        for f, v in term.items():
                            ctx.set(getattr(payload.decays[t_i][i], f), v)
            else:
                ctx.set(getattr(payload, name), value)
        busy0 = ctx.get(dut.engine.counters.busy)
        ctx.set(dut.i_desc.valid, 1)
        await ctx.tick().until(dut.i_desc.ready)
        ctx.set(dut.i_desc.valid, 0)
        await ctx.tick().until(~dut.busy)
        await ctx.tick().repeat(3)  # counter lag
        result["cycles"] = ctx.get(dut.engine.counters.busy) - busy0
        result["events"] = ctx.get(dut.engine.counters.events)
        result["saturated"] = ctx.get(dut.engine.counters.saturated)
        result["raw"] = [ctx.get(dut.out_mem.data[i]) for i in range(out_depth)]

    sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    bits = 3 if neuron else STREAM_BITS
    vals = np.array([[(word >> (bits * i)) & ((1 << bits) - 1) for i in range(P)] for word in result["raw"]],
                    dtype=np.int64)
    if not neuron:
        vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)
    out = torch.from_numpy(vals).reshape(T, ho, wo, chunks, P).permute(0, 3, 4, 1, 2).reshape(T, chunks * P, ho, wo)
    return {"out": out[:, :co], "cycles": result["cycles"], "events": result["events"],
            "saturated": result["saturated"], "descriptor": desc}
