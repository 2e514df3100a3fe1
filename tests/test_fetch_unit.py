"""The external-memory bus model and the fetch unit (hw/extmem.py, hw/fetch_unit.py) in amaranth.sim."""

import random

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spiketrack.hw.extmem import MODEL_LATENCY, ExtMemoryModel
from spiketrack.hw.fetch_unit import FetchUnit, fetch_cycles
from spiketrack.sim.unit_sim import tick_until


class _Bench(wiring.Component):
    """A fetch unit reading an ExtMemoryModel into a row memory."""

    def __init__(self, words, row_width=64, rows=32, latency=MODEL_LATENCY):
        self.fetch = FetchUnit(row_width)
        self.model = ExtMemoryModel(len(words) + 8, init=words, latency=latency)
        self.rows = Memory(shape=row_width, depth=rows, init=[])
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fetch, m.submodules.model, m.submodules.rows = self.fetch, self.model, self.rows
        wiring.connect(m, self.fetch.ext, self.model.bus)
        wr = self.rows.write_port()
        m.d.comb += [wr.addr.eq(self.fetch.out_addr), wr.data.eq(self.fetch.out_data), wr.en.eq(self.fetch.out_en)]
        return m


def _run(bench, descs):
    """Run descriptors back to back; returns the busy cycles of each and the row memory."""
    assert descs
    got = []

    async def tb(ctx):
        f = bench.fetch
        for d in descs:
            for k, v in d.items():
                ctx.set(getattr(f.i_desc.payload, k), v)
            assert ctx.get(f.i_desc.ready)
            ctx.set(f.i_desc.valid, 1)
            assert ctx.get(f.busy)        # busy from the descriptor's transfer on, as the other units
            n = 1                         # busy cycles, as the accelerator's fetch_busy counter counts them
            await ctx.tick()              # the descriptor's transfer
            ctx.set(f.i_desc.valid, 0)
            while ctx.get(f.busy):
                n += 1
                if n > 100_000:
                    raise TimeoutError("the fetch unit is still busy after 100,000 cycles")
                await ctx.tick()
            got.append(n)
        got.append([ctx.get(bench.rows.data[i]) for i in range(bench.rows.depth)])

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got[:-1], got[-1]


@pytest.mark.parametrize("latency", [2, MODEL_LATENCY, 7])
def test_fetch_copies_rows_in_exact_cycles(latency):
    rng = random.Random(latency)
    words = [rng.randrange(1 << 16) for _ in range(64)]
    descs = [{"ext_addr": 4, "words": 12, "row_base": 3}, {"ext_addr": 40, "words": 4, "row_base": 0},
             {"ext_addr": 0, "words": 0, "row_base": 9}, {"ext_addr": 20, "words": 8, "row_base": 20}]
    cycles, rows = _run(_Bench(words, latency=latency), descs)
    assert cycles == [fetch_cycles(d["words"], latency) for d in descs]
    expect = [0] * 32
    for d in descs:
        for r in range(d["words"] // 4):
            ws = words[d["ext_addr"] + 4 * r:d["ext_addr"] + 4 * r + 4]
            expect[d["row_base"] + r] = sum(w << (16 * i) for i, w in enumerate(ws))
    assert rows == expect


def test_model_serves_reads_and_writes_under_random_stalls():
    """The model's bus contract: reads return the words in address order whatever the master's
    stalls; writes land; out-of-range reads give 0."""
    model = ExtMemoryModel(48, init=list(range(100, 148)))
    rng = random.Random(3)
    log = []

    async def tb(ctx):
        bus = model.bus

        async def cmd(addr, count, write):
            ctx.set(bus.cmd.payload.addr, addr)
            ctx.set(bus.cmd.payload.count, count)
            ctx.set(bus.cmd.payload.write, write)
            ctx.set(bus.cmd.valid, 1)
            await tick_until(ctx, bus.cmd.ready, "the external memory taking a command")
            ctx.set(bus.cmd.valid, 0)

        await cmd(10, 6, 1)
        for i in range(6):
            while rng.random() < 0.5:
                await ctx.tick()
            ctx.set(bus.wdata.payload, 7000 + i)
            ctx.set(bus.wdata.valid, 1)
            await tick_until(ctx, bus.wdata.ready, "the external memory taking write data")
            ctx.set(bus.wdata.valid, 0)
        for addr, count in ((8, 10), (45, 5)):
            await cmd(addr, count, 0)
            got = []
            while len(got) < count:
                ready = rng.random() < 0.6
                ctx.set(bus.rdata.ready, ready)
                await ctx.delay(1e-9)
                if ready and ctx.get(bus.rdata.valid):
                    got.append(ctx.get(bus.rdata.payload))
                await ctx.tick()
            ctx.set(bus.rdata.ready, 0)
            log.append(got)

    sim = Simulator(model)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert log[0] == [108, 109] + [7000 + i for i in range(6)] + [116, 117]
    assert log[1] == [145, 146, 147, 0, 0]


def test_fetch_refuses_a_row_width_the_bus_cannot_fill():
    with pytest.raises(ValueError, match="multiple of 16"):
        FetchUnit(24)
