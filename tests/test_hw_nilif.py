"""The pipelined NI-LIF (hw/nilif.py) against the golden neuron (quant/golden/neuron.py): every
16-bit membrane value at several exponents and both roundings (fire), and random T-step sequences
with decays, saturation and the minimum spacing of one neuron's steps (the whole recurrence)."""

import random

import pytest
import torch
from amaranth.hdl import Value
from amaranth.lib import data
from amaranth.sim import Simulator

from spiketrack.compiler.accel import pack_fields
from spiketrack.hw.nilif import NILIF_STAGES, NiLifPipeline
from spiketrack.quant.golden.neuron import Decay, fire, ni_lif

P = 8


def _unpack(layout, raw: int) -> dict:
    """The fields of a flat struct ``layout`` from the raw bits of one value."""
    return {k: raw >> f.offset & ((1 << f.width) - 1) for k, f in layout}


def _run(ops, spacing):
    """``ops``: list of (f_m, half_even, decays, x [T, n]) run one after another; each op's
    neurons go P at a time, time innermost, ``spacing(step)`` cycles between inputs.
    Returns per op (levels [T, n], saturation count). The testbench sets and reads each port as one
    packed value (a set or get of one lane's view costs about 0.1 ms)."""
    carry_layout = data.StructLayout({"op": 4, "t": 3, "pos": 16})
    dut = NiLifPipeline(P, carry_layout)
    results = [dict(k={}, sat=0) for _ in ops]
    i_x, o_k = Value.cast(dut.i_x), Value.cast(dut.o_k)
    i_terms, i_carry, o_carry = Value.cast(dut.i_terms_next), Value.cast(dut.i_carry), Value.cast(dut.o_carry)
    x_bits, k_bits = len(i_x) // P, len(o_k) // P
    x_mask, k_mask = (1 << x_bits) - 1, (1 << k_bits) - 1

    def terms_value(decays, t):
        """The packed decay terms of step ``t``'s input."""
        terms = decays[t - 1] if t > 0 else []
        return pack_fields(dut.i_terms_next.shape(), [{"en": 1, "neg": int(a < 0), "sh": sh} for a, sh in terms])

    async def bench(ctx):
        out_log = []

        async def drain(n):
            for _ in range(n):
                await ctx.tick()
                if ctx.get(dut.o_valid):
                    c, k = _unpack(carry_layout, ctx.get(o_carry)), ctx.get(o_k)
                    out_log.append((c["op"], c["t"], c["pos"], [k >> (k_bits * i) & k_mask for i in range(P)],
                                    bin(ctx.get(dut.o_sat)).count("1")))

        inputs = [(oi, pos, t) for oi, (_, _, _, x) in enumerate(ops)
                  for pos in range(0, x.shape[1], P) for t in range(x.shape[0])]
        nxt = 0
        for oi, (f_m, half_even, decays, x) in enumerate(ops):
            terms = [terms_value(decays, t) for t in range(x.shape[0])]
            ctx.set(dut.f_m, f_m)
            ctx.set(dut.half_even, half_even)
            ctx.set(i_terms, terms[0])   # the decay terms of the next input, a cycle (or more) before it
            await drain(1)
            T, n = x.shape
            rows = x.tolist()
            for pos in range(0, n, P):
                for t in range(T):
                    ctx.set(dut.i_valid, 1)
                    ctx.set(dut.i_update, 1)
                    ctx.set(dut.i_t, t)
                    ctx.set(i_x, sum((v & x_mask) << (x_bits * i) for i, v in enumerate(rows[t][pos:pos + P])))
                    nxt += 1
                    if nxt < len(inputs) and inputs[nxt][0] == oi:
                        ctx.set(i_terms, terms[inputs[nxt][2]])
                    ctx.set(i_carry, pack_fields(carry_layout, {"op": oi, "t": t, "pos": pos}))
                    await drain(1)
                    ctx.set(dut.i_valid, 0)
                    await drain(spacing() - 1)
            await drain(NILIF_STAGES + 1)
        for op, t, pos, ks, sat in out_log:
            for i, k in enumerate(ks):
                results[op]["k"][(t, pos + i)] = k
            results[op]["sat"] += sat

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    out = []
    for (f_m, he, decays, x), r in zip(ops, results):
        T, n = x.shape
        out.append((torch.tensor([[r["k"][(t, i)] for i in range(n)] for t in range(T)]), r["sat"]))
    return out


@pytest.mark.parametrize("rounding", ["half_up", "half_even"])
def test_fire_equals_golden_for_every_membrane_value(rounding):
    u = torch.arange(-32768, 32768).reshape(1, -1)
    ops = [(f_m, int(rounding == "half_even"), [], u) for f_m in (2, 8, 17)]
    for (f_m, _, _, x), (k, _) in zip(ops, _run(ops, spacing=lambda: 1)):
        assert torch.equal(k[0], fire(x[0], f_m, rounding)), f"f_m={f_m}"


def test_recurrence_equals_golden_with_decays_and_saturation():
    g = torch.Generator().manual_seed(3)
    rnd = random.Random(3)
    ops = []
    for f_m, rounding, decays, lo, hi in [
        (8, "half_up", [[[1, 1]], [[1, 2], [-1, 4]], [[-1, 3]]], -3000, 3000),
        (6, "half_even", [[[1, 1], [1, 2]], [[1, 5]]], -30000, 32767),   # decay 0.75: saturates
        (2, "half_up", [[[1, 1]]], -40, 40),
    ]:
        T = len(decays) + 1
        x = torch.randint(lo, hi, (T, 3 * P - 3), generator=g)
        ops.append((f_m, int(rounding == "half_even"), decays, x))
    got = _run(ops, spacing=lambda: NILIF_STAGES + rnd.choice([0, 0, 1, 3]))
    total_sat = 0
    for (f_m, he, decays, x), (k, sat) in zip(ops, got):
        betas = tuple(Decay(tuple(map(tuple, d))) for d in decays)
        kk, _, n_sat = ni_lif(x, f_m, 16, betas, "half_even" if he else "half_up")
        assert torch.equal(k, kk), f"f_m={f_m}"
        assert sat == n_sat
        total_sat += n_sat
    assert total_sat > 0


def test_closer_spacing_breaks_the_recurrence():
    """The contract is needed: steps of one neuron fed NILIF_STAGES - 1 apart read a stale membrane."""
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-3000, 3000, (3, P), generator=g)
    decays = [[[1, 1]], [[1, 1]]]
    k, _ = _run([(8, 0, decays, x)], spacing=lambda: NILIF_STAGES - 1)[0]
    kk, _, _ = ni_lif(x, 8, 16, tuple(Decay(tuple(map(tuple, d))) for d in decays))
    assert not torch.equal(k, kk)
