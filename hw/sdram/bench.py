"""Simulation bench for the external-memory bus: drive commands with random stalls into any
component with a ``bus: In(ExtBusSignature())`` member (:class:`~.controller.SDRAMController`
with an :class:`~.model.SDRAMChipModel` on its pins, or
:class:`~spiketrack.hw.extmem.ExtMemoryModel`) and collect the read words.

One testbench drives all three streams, one edge per loop, by the Amaranth stream rules: a valid
is raised on a random cycle (stall probability ``p_cmd`` / ``p_wdata`` per cycle while it is
low) and held until the transfer; ``rdata.ready`` is low in a cycle with probability ``p_rdata``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from amaranth.sim import Simulator

from .model import SDRAMChipModel
from .timing import ULX3S_TIMINGS, tck_ns

__all__ = ["BusCommand", "TrafficResult", "run_traffic", "reference_reads", "FAST_INIT_TIMINGS", "random_commands"]

FAST_INIT_TIMINGS = replace(ULX3S_TIMINGS, t_power_up=2_000)
"""The ULX3S timing set with a 2 µs power-up wait instead of 200 µs (short simulations; the
controller and the chip model must both use it)."""


@dataclass
class BusCommand:
    """One bus command; ``data`` holds a write's words."""
    addr: int
    count: int
    write: bool = False
    data: list = field(default_factory=list)


@dataclass
class TrafficResult:
    reads: list            #: the words of each read command, in command order
    cycles: int            #: cycles from the first command's transfer to the last word's, both counted
    first_cmd: int         #: edge (from the simulation's start) of the first command transfer
    last_word: int         #: edge of the last rdata / wdata transfer
    start: int             #: edge at which ``init_done`` was seen (0 without one)
    end: int               #: edges simulated (init included)
    counters: dict | None  #: the controller's counters at the end (None for other components)
    chip: SDRAMChipModel | None


def reference_reads(commands, init=None):
    """The words each read command returns from a plain memory (``init``: dict, default 0)."""
    mem = dict(init or {})
    out = []
    for c in commands:
        if c.write:
            for i, w in enumerate(c.data):
                mem[c.addr + i] = w
        else:
            out.append([mem.get(c.addr + i, 0) for i in range(c.count)])
    return out


def random_commands(rng: random.Random, n: int, addr_words: int, max_count: int, p_write=0.5,
                    long_every=0, long_count=0):
    """``n`` random commands inside ``addr_words`` words: counts 1..max_count (a third of them
    1..4), every ``long_every``-th of ``long_count`` words."""
    cmds = []
    for i in range(n):
        if long_every and i % long_every == long_every - 1:
            count = long_count
        elif rng.random() < 1 / 3:
            count = rng.randint(1, 4)
        else:
            count = rng.randint(1, max_count)
        addr = rng.randrange(0, addr_words - count + 1)
        w = rng.random() < p_write
        cmds.append(BusCommand(addr, count, w, [rng.randrange(1 << 16) for _ in range(count)] if w else []))
    return cmds


def run_traffic(dut, commands, *, clock_mhz, chip: SDRAMChipModel | None = None, seed=0,
                p_cmd=0.0, p_wdata=0.0, p_rdata=0.0, idle_after=0, max_cycles=1_000_000,
                vcd=None) -> TrafficResult:
    """Simulate ``commands`` on ``dut.bus``; wait for ``dut.init_done`` first when it has one.

    Returns a :class:`TrafficResult`; raises what the chip model raises, and ``TimeoutError``
    after ``max_cycles`` edges.
    """
    rng = random.Random(seed)
    bus = dut.bus
    wwords = [w for c in commands if c.write for w in c.data]
    nread = sum(c.count for c in commands if not c.write)
    res = {"reads": [], "first": None, "last": 0, "start": 0, "end": 0, "counters": None}
    sizes = [c.count for c in commands if not c.write]

    async def bench(ctx):
        edge = 0
        if hasattr(dut, "init_done"):
            while not ctx.get(dut.init_done):
                await ctx.tick()
                edge += 1
        res["start"] = edge
        ci = wi = got = 0
        cmd_v = wd_v = False
        flat = []
        rd_ready = None
        while ci < len(commands) or wi < len(wwords) or got < nread:
            if not cmd_v and ci < len(commands) and rng.random() >= p_cmd:
                c = commands[ci]
                ctx.set(bus.cmd.payload, {"addr": c.addr, "count": c.count, "write": int(c.write)})
                ctx.set(bus.cmd.valid, 1)
                cmd_v = True
            if not wd_v and wi < len(wwords) and rng.random() >= p_wdata:
                ctx.set(bus.wdata.payload, wwords[wi])
                ctx.set(bus.wdata.valid, 1)
                wd_v = True
            r = rng.random() >= p_rdata
            if r != rd_ready:
                ctx.set(bus.rdata.ready, r)
                rd_ready = r
            _, _, c_rdy, w_rdy, r_val, r_data = await ctx.tick().sample(
                bus.cmd.ready, bus.wdata.ready, bus.rdata.valid, bus.rdata.payload)
            edge += 1
            if edge > max_cycles:
                raise TimeoutError(f"{max_cycles} cycles: {ci}/{len(commands)} commands, {wi}/{len(wwords)} "
                                   f"write words, {got}/{nread} read words")
            if cmd_v and c_rdy:
                ci += 1
                cmd_v = False
                ctx.set(bus.cmd.valid, 0)
                if res["first"] is None:
                    res["first"] = edge
            if wd_v and w_rdy:
                wi += 1
                wd_v = False
                ctx.set(bus.wdata.valid, 0)
                res["last"] = edge
            if rd_ready and r_val:
                flat.append(r_data)
                got += 1
                res["last"] = edge
        for _ in range(idle_after):
            await ctx.tick()
            edge += 1
        res["end"] = edge
        k = 0
        for s in sizes:
            res["reads"].append(flat[k:k + s])
            k += s
        if hasattr(dut, "counters"):
            await ctx.tick().repeat(3)   # the counters' lag
            res["counters"] = {n: ctx.get(getattr(dut.counters, n)) for n in dut.counters.shape().members}

    sim = Simulator(dut)
    sim.add_clock(float(tck_ns(clock_mhz)) * 1e-9)
    if chip is not None:
        sim.add_process(chip.process)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    first = res["first"] if res["first"] is not None else res["start"]
    return TrafficResult(reads=res["reads"], cycles=max(res["last"], first) - first + 1, first_cmd=first,
                         last_word=res["last"], start=res["start"], end=res["end"], counters=res["counters"],
                         chip=chip)
