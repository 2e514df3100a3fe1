"""amaranth.sim harness shared by the run-time-configured units (conv engine, vector unit).

:class:`UnitHarness` puts a unit between its memories (one read memory per ``<name>_addr`` /
``<name>_data`` port pair, a :class:`~spiketrack.hw.banked_memory.BankedMemory` as in the
accelerator, read latency included; one output memory on ``out_addr`` / ``out_data`` /
``out_en``), all loaded at run time (or given as ``init``), so one elaborated design runs any number of jobs. :func:`run_unit_jobs`
runs jobs back to back: load each job's memory images, hand the unit its descriptor, wait until it
is idle, read the output memory and the counter deltas. A job is any object with ``desc``
(a dict of descriptor field values), ``images`` (memory name -> list of words), ``out_depth``,
``decode(raw_words, lanes)`` and a ``result`` dict to fill.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spiketrack.hw.banked_memory import BankedMemory

__all__ = ["UnitHarness", "set_fields", "run_unit_jobs", "run_simulator", "tick_until", "words", "WAIT_LIMIT"]

#: Clock edges a testbench waits for a handshake or an idle flag before it gives up: a design that
#: never answers fails its test with a message naming the wait, instead of hanging it.
WAIT_LIMIT = 200_000


async def tick_until(ctx, condition, what: str, limit: int = WAIT_LIMIT) -> None:
    """``await ctx.tick().until(condition)`` (ticks until ``condition`` is non-zero at a clock
    edge, sampled before it), bounded: a TimeoutError naming ``what`` after ``limit`` edges."""
    for _ in range(limit):
        *_, done = await ctx.tick().sample(condition)
        if done:
            return
    raise TimeoutError(f"{what}: not reached within {limit} cycles")


def words(values, bits: int) -> list[int]:
    """Rows of lane values -> integers, lane 0 in the low bits (two's complement per lane)."""
    mask = (1 << bits) - 1
    return [sum((int(v) & mask) << (bits * i) for i, v in enumerate(row)) for row in values]


class UnitHarness(wiring.Component):
    """A unit with its read memories and output memory (contents loaded at run time)."""

    def __init__(self, unit, reads: dict[str, int], out_width: int, depths: dict[str, int], desc_layout,
                 init: dict | None = None):
        self.unit, self.reads, self.out_width, self.depths = unit, dict(reads), out_width, dict(depths)
        self.mems: dict = {name: BankedMemory(width, max(1, self.depths.get(name, 1)), unit.addr_bits,
                                              init=(init or {}).get(name, ()))
                           for name, width in self.reads.items()}
        super().__init__({"i_desc": wiring.In(stream.Signature(desc_layout)), "busy": wiring.Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        for name in self.reads:
            mem = m.submodules[f"{name}_mem"] = self.mems[name]
            en = getattr(u, f"{name}_en", 1)
            m.d.comb += [mem.r0_addr.eq(getattr(u, f"{name}_addr")), mem.r0_en.eq(en),
                         getattr(u, f"{name}_data").eq(mem.r0_data)]
        out = self.mems["out"] = Memory(shape=self.out_width, depth=max(1, self.depths["out"]), init=[])
        m.submodules.out_mem = out
        wr = out.write_port()
        m.d.comb += [wr.addr.eq(u.out_addr), wr.data.eq(u.out_data), wr.en.eq(u.out_en)]
        wiring.connect(m, wiring.flipped(self.i_desc), u.i_desc)
        m.d.comb += self.busy.eq(u.busy)
        return m


def set_fields(ctx, view, value) -> None:
    """Set a struct/array view from nested dicts/lists of ints."""
    if isinstance(value, dict):
        for k, v in value.items():
            set_fields(ctx, getattr(view, k), v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            set_fields(ctx, view[i], v)
    else:
        ctx.set(view, value)


def run_unit_jobs(unit, reads: dict[str, int], out_width: int, desc_layout, jobs: list, lanes: int,
                  counters=("busy",), vcd: str | None = None, max_cycles: int = 100_000) -> list:
    """Run ``jobs`` back to back through one elaborated ``unit``; fills each ``job.result`` with
    ``out`` (decoded), ``cycles`` (busy counter delta) and the other ``counters`` deltas. A job
    still busy after ``max_cycles`` cycles raises ``TimeoutError`` (a unit that never ends its op)."""
    depths = {name: max([len(j.images.get(name, [])) for j in jobs] + [1]) for name in reads}
    depths["out"] = max(j.out_depth for j in jobs)
    dut = UnitHarness(unit, reads, out_width, depths, desc_layout)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    ctr = unit.counters

    async def tb(ctx):
        for j, job in enumerate(jobs):
            for name in reads:
                for i, word in enumerate(job.images.get(name, [])):
                    ctx.set(dut.mems[name].row(i), word)
            set_fields(ctx, dut.i_desc.payload, job.desc)
            before = {n: ctx.get(getattr(ctr, n)) for n in counters}
            ctx.set(dut.i_desc.valid, 1)
            await tick_until(ctx, dut.i_desc.ready, f"job {j}: the unit taking its descriptor")
            ctx.set(dut.i_desc.valid, 0)
            for n in range(max_cycles + 1):
                if not ctx.get(dut.busy):
                    break
                if n == max_cycles:
                    raise TimeoutError(f"job {j}: the unit is still busy after {max_cycles} cycles")
                await ctx.tick()
            await ctx.tick().repeat(3)  # counters lag two cycles (hw/counters.py)
            delta = {n: ctx.get(getattr(ctr, n)) - before[n] for n in counters}
            raw = [ctx.get(dut.mems["out"].data[i]) for i in range(job.out_depth)]
            job.result = {"out": job.decode(raw, lanes), "cycles": delta.pop("busy"), **delta}

    sim.add_testbench(tb)
    run_simulator(sim, vcd)
    return jobs


def run_simulator(sim, vcd: str | None = None) -> None:
    """``sim.run()``, writing a VCD file when ``vcd`` names one."""
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
