"""CounterBank: registered increments, wide increments, wrap-around, clear precedence."""

import random

from amaranth.sim import Simulator

from spiketrack.hw.counters import CounterBank


def _run(incs, clears, width=8):
    """Drive ``incs`` (list of (a, b) per cycle) and ``clears``; return counts seen each cycle."""
    dut = CounterBank(("a", "b"), width=width, inc_widths={"b": 3})
    seen = []

    async def tb(ctx):
        for (a, b), clr in zip(incs, clears):
            ctx.set(dut.inc.a, a)
            ctx.set(dut.inc.b, b)
            ctx.set(dut.clear, clr)
            await ctx.tick()
            seen.append((ctx.get(dut.counts.a), ctx.get(dut.counts.b)))
        ctx.set(dut.inc.a, 0)
        ctx.set(dut.inc.b, 0)
        ctx.set(dut.clear, 0)
        for _ in range(2):
            await ctx.tick()
            seen.append((ctx.get(dut.counts.a), ctx.get(dut.counts.b)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return seen


def _expected(incs, clears, width=8):
    """Reference behaviour: increments of cycle i are in the counts read after cycle i+1."""
    a = b = 0
    qa = qb = 0
    out = []
    for (ia, ib), clr in list(zip(incs, clears)) + [((0, 0), 0)] * 2:
        if clr:
            a = b = qa = qb = 0
        else:
            a, b = (a + qa) % (1 << width), (b + qb) % (1 << width)
            qa, qb = ia, ib
        out.append((a, b))
    return out


def test_counts_lag_two_cycles_and_sum_wide_increments():
    incs = [(1, 5), (1, 7), (0, 0), (1, 1)]
    seen = _run(incs, [0] * 4)
    assert seen[0] == (0, 0)            # the first increment is still in its register
    assert seen[1] == (1, 5)
    assert seen[-1] == (3, 13)          # all increments counted two cycles after the last


def test_random_increments_and_clears_match_reference():
    rng = random.Random(3)
    incs = [(rng.randint(0, 1), rng.randint(0, 7)) for _ in range(200)]
    clears = [int(rng.random() < 0.03) for _ in range(200)]
    assert _run(incs, clears) == _expected(incs, clears)


def test_clear_drops_the_increment_of_its_cycle():
    seen = _run([(1, 7), (1, 7), (0, 0)], [0, 1, 0])
    assert seen[-1] == (0, 0)
