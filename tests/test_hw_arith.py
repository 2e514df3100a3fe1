"""hw/arith.clamp against the golden model's ``saturate`` (§IS-5), for every input value of
several input shapes: narrower, as wide and wider than the result, signed and unsigned."""

import pytest
import torch
from amaranth import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from spiketrack.hw.arith import at_least, clamp
from spiketrack.quant.golden.arith import saturate


@pytest.mark.parametrize("shape,bits", [(signed(9), 5), (signed(6), 4), (signed(5), 4), (signed(4), 4),
                                        (signed(3), 4), (unsigned(6), 4), (unsigned(4), 4), (unsigned(3), 4)])
def test_clamp_equals_golden_saturate_for_every_value(shape, bits):
    m = Module()
    v, out, sat = Signal(shape), Signal(signed(bits + 2)), Signal()
    c, s = clamp(v, bits)
    m.d.comb += [out.eq(c), sat.eq(s)]
    values = (range(-(1 << (len(v) - 1)), 1 << (len(v) - 1)) if shape.signed else range(1 << len(v)))
    got = []

    async def tb(ctx):
        for x in values:
            ctx.set(v, x)
            got.append((ctx.get(out), ctx.get(sat)))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    x = torch.tensor(list(values))
    want, _ = saturate(x, bits)
    flags = [saturate(torch.tensor([int(e)]), bits)[1] for e in x]
    assert [g[0] for g in got] == want.tolist()
    assert [g[1] for g in got] == flags
    assert any(flags) == (len(v) > bits - (0 if shape.signed else 1))   # the wide shapes do saturate


@pytest.mark.parametrize("sa,sb", [(signed(5), signed(4)), (signed(4), signed(5)), (unsigned(4), unsigned(5)),
                                   (unsigned(5), signed(4)), (signed(4), unsigned(4))])
def test_at_least_is_the_compare_for_every_pair(sa, sb):
    """at_least(a, b) (the sign of a - b, a carry chain on the FPGA) equals a >= b for every pair
    of values of mixed widths and signedness."""
    m = Module()
    a, b, ge = Signal(sa), Signal(sb), Signal()
    m.d.comb += ge.eq(at_least(a, b))
    vals = lambda s: range(-(1 << (s.width - 1)), 1 << (s.width - 1)) if s.signed else range(1 << s.width)
    pairs = [(x, y) for x in vals(sa) for y in vals(sb)]
    got = _evaluate(m, (a, b), ge, pairs)
    assert got == [int(x >= y) for x, y in pairs]
    assert 0 < sum(got) < len(pairs)


def _evaluate(m, inputs, output, cases) -> list:
    """The combinational ``output`` of ``m`` for each tuple of input values in ``cases``."""
    got = []

    async def tb(ctx):
        for values in cases:
            for sig, v in zip(inputs, values):
                ctx.set(sig, v)
            got.append(ctx.get(output))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    return got
