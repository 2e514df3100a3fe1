"""cocotb cases for the generated Verilog of the synaptic core and the neuron unit.

:func:`run_cocotb_cases` builds one small conv case and one neuron case, computes the expected
output beats with the golden functions, packs every payload to an integer (Amaranth layout order,
first field in the LSBs) and runs ``tests/cocotb/tb_cores.py`` through
:func:`spiketrack.sim.cocotb_runner.run_cocotb` on Icarus or Verilator. The testbench drives the
input with random gaps, the output with random backpressure, compares the beats and checks
``busy == model + stall_in + stall_out`` on the flattened ``counters`` port.
"""

from __future__ import annotations

import torch
from amaranth import Const

from spiketrack.sim.cocotb_runner import run_cocotb

__all__ = ["core_vectors", "neuron_vectors", "run_cocotb_cases", "TB"]

TB = "tests/cocotb/tb_cores.py"


def _pack(layout, value) -> int:
    return Const.cast(layout.const(value)).value


def core_vectors(seed: int = 0):
    """(factory, params) of a 3x3 stride-1 conv case (6x6, 3 -> 5 channels, P = 4, 40 % density)."""
    from spiketrack.hw.synaptic_core import LayerGeometry
    from spiketrack.hw.synaptic_core_cycles import core_cycles
    from spiketrack.quant.golden.synapse import conv2d_acc
    from spiketrack.sim.verify import core_packets, make_core

    geom = LayerGeometry(3, 5, 6, 6, 3, 1, 1)
    gen = torch.Generator().manual_seed(seed)
    dut, w, b = make_core(geom, gen, lanes=4)
    dut._MustUse__silence = True   # read for its plan and layouts; the factory below makes the simulated one
    k, packets = core_packets(geom, gen, 0.4)
    gold = conv2d_acc(k[None], w, b, 1, 1)[0].reshape(geom.c_out, -1)
    p = dut.plan
    in_lay = dut.i_events.payload.shape()
    out_lay = dut.o_acc.payload.shape()
    beats = []
    for a in range(p.n_acc):
        opos, wi = divmod(a, p.wpp)
        c0, n = p.word_chan(wi)
        beats.append(_pack(out_lay, {"pos": opos, "chan": c0, "mask": (1 << n) - 1, "last": int(a == p.n_acc - 1),
                                     "acc": [int(gold[c0 + i, opos]) if i < n else 0 for i in range(p.P)]}))
    params = {"inputs": [_pack(in_lay, e) for pk in packets for e in pk], "expected": beats,
              "model": core_cycles(p, packets), "i_name": "i_events", "o_name": "o_acc",
              "n_counters": 6}
    return (lambda: make_core(geom, torch.Generator().manual_seed(seed), lanes=4)[0]), params


def neuron_vectors(seed: int = 0):
    """(factory, params) of a neuron case: 5 channels x 4 positions, P = 4, T = 2, per-channel shift."""
    from amaranth import signed
    from amaranth.lib import data

    from spiketrack.hw.neuron_unit import NeuronUnit
    from spiketrack.hw.neuron_unit_cycles import neuron_cycles
    from spiketrack.quant.golden.neuron import Decay, neuron_layer

    C, N, P, T, Ba, Bm, f_m = 5, 4, 4, 2, 16, 10, 3
    shift = [3, 5, 0, 7, 4]
    betas = (Decay(((1, 1), (-1, 3))),)
    lay = data.StructLayout({"pos": 2, "chan": 3, "acc": data.ArrayLayout(signed(Ba), P), "mask": P, "last": 1})
    gen = torch.Generator().manual_seed(seed)
    acc = torch.randint(-(1 << 15), 1 << 15, (T, C, N), generator=gen) >> torch.randint(0, 12, (T, C, N), generator=gen)
    gk, _, _ = neuron_layer(acc, torch.tensor(shift).view(-1, 1), f_m, Bm, None, betas)

    def make():
        return NeuronUnit(lay, n_beats=N * 2, c_out=C, shift=shift, f_m=f_m, bits=Bm, T=T, betas=betas)
    dut = make()
    dut._MustUse__silence = True   # read for its layout; run_cocotb elaborates the factory's
    out_lay = dut.o_spk.payload.shape()
    ins, outs = [], []
    for t in range(T):
        for n in range(N):
            for ch in range(2):
                m = (1 << min(P, C - ch * P)) - 1
                lanes = range(ch * P, ch * P + P)
                last = int(n == N - 1 and ch == 1)
                ins.append(_pack(lay, {"pos": n, "chan": ch * P, "mask": m, "last": last,
                                       "acc": [int(acc[t, j, n]) if j < C else 0 for j in lanes]}))
                outs.append(_pack(out_lay, {"pos": n, "chan": ch * P, "mask": m, "last": last,
                                            "levels": [int(gk[t, j, n]) if j < C else 0 for j in lanes]}))
    params = {"inputs": ins, "expected": outs, "model": neuron_cycles(N * 2, T), "i_name": "i_acc",
              "o_name": "o_spk", "n_counters": 5}
    return make, params


def run_cocotb_cases(sim: str | None = None, seed: int = 0) -> dict:
    """Run the core and neuron cocotb cases; returns ``{"ok", "passed", "failed"}``."""
    from spiketrack.sim.cocotb_runner import default_sim

    sim = (sim or default_sim()).lower()
    out = {"ok": True, "passed": [], "failed": {}}
    for name, (factory, params) in (("synaptic_core", core_vectors(seed)), ("neuron_unit", neuron_vectors(seed))):
        params = dict(params, seed=seed)
        res = run_cocotb(factory, toplevel=name, test_module=TB, sim=sim, tb_params=params, check=False)
        out["passed"] += [f"{name}:{t}" for t in res.passed]
        out["failed"].update({f"{name}:{k}": v for k, v in res.failed.items()})
        out["ok"] = out["ok"] and res.ok
    return out
