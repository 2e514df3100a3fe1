"""amaranth.sim drivers for the spiking cores (encoder, synaptic core, neuron unit).

Each ``simulate_*`` function runs one component in :class:`amaranth.sim.Simulator` with a
stream source (random gaps: ``valid_prob``) and a stream sink (random backpressure:
``ready_prob``), and returns what came out plus the differences of the core's counters. Tests,
``spiketrack verify`` and ``benchmarks/bench_cores.py`` use them; none of them computes a
reference result (that is ``spiketrack.quant.golden``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from amaranth.sim import Simulator

from spiketrack.sim.unit_sim import run_simulator, tick_until

__all__ = ["RunResult", "stream_sim", "random_levels", "acc_tensor", "simulate_core"]


@dataclass
class RunResult:
    """Items received on the output stream and counter deltas of one run."""
    out: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    cycles: int = 0   # simulated cycles from the first input offer to the end


def random_levels(gen: torch.Generator, shape, density: float, max_level: int = 4) -> torch.Tensor:
    """Spike levels with a fraction ``density`` of non-zero entries (levels 1..max_level uniform)."""
    mask = torch.rand(shape, generator=gen) < density
    lv = torch.randint(1, max_level + 1, shape, generator=gen)
    return torch.where(mask, lv, torch.zeros_like(lv))


def stream_sim(dut, inputs, *, i_name: str, o_name: str, unpack, valid_prob: float = 1.0,
               ready_prob: float = 1.0, seed: int = 0, n_out: int | None = None,
               extra_inputs=None, counter_names=None, vcd: str | None = None) -> RunResult:
    """Drive ``inputs`` (payload dicts) into ``dut.<i_name>``; collect ``dut.<o_name>`` beats.

    ``unpack(payload)`` turns an output payload into a Python value. The run ends when the
    input is exhausted, ``n_out`` beats arrived (or, if ``n_out`` is None, the output beat with
    ``last`` set after the final input), and ``dut.busy`` is low. ``extra_inputs`` is a list of
    ``(stream_name, payload list)`` driven in lock-step fashion by their own sources.
    """
    rng_in = random.Random(seed)
    rng_out = random.Random(seed + 7919)
    res = RunResult()
    state = {"inputs_done": False}
    cnt_names = counter_names or [f for f in dut.counters.shape().members] if hasattr(dut, "counters") else []

    async def source(ctx, s, items, rng, mark_done):
        for item in items:
            while rng.random() >= valid_prob:
                await ctx.tick()
            ctx.set(s.payload, item)
            ctx.set(s.valid, 1)
            await tick_until(ctx, s.ready, "the core taking an input beat")
            ctx.set(s.valid, 0)
        if mark_done:
            state["inputs_done"] = True

    async def sink(ctx):
        o = getattr(dut, o_name)
        while True:
            rdy = rng_out.random() < ready_prob
            ctx.set(o.ready, rdy)
            _, _, valid, payload = await ctx.tick().sample(o.valid, o.payload)
            if valid and rdy:
                res.out.append(unpack(payload))

    async def main(ctx):
        before = {k: ctx.get(getattr(dut.counters, k)) for k in cnt_names}
        t0 = 0
        await source(ctx, getattr(dut, i_name), inputs, rng_in, True)
        while True:
            done_out = (n_out is None) or len(res.out) >= n_out
            if done_out and not ctx.get(dut.busy):
                break
            await ctx.tick()
            t0 += 1
        await ctx.tick()
        res.counters = {k: ctx.get(getattr(dut.counters, k)) - before[k] for k in cnt_names}

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(sink, background=True)
    for k, (name, items) in enumerate(extra_inputs or []):
        r = random.Random(seed + 104729 * (k + 1))
        def make(s=getattr(dut, name), it=items, r=r):
            async def extra(ctx):
                await source(ctx, s, it, r, False)
            return extra
        sim.add_testbench(make(), background=True)
    run_simulator(sim, vcd)
    return res


def _unpack_acc(dut):
    P = dut.lanes

    def unpack(payload):
        return (int(payload.pos), int(payload.chan), [int(payload.acc[i]) for i in range(P)],
                int(payload.mask), int(payload.last))
    return unpack


def acc_tensor(dut, beats) -> torch.Tensor:
    """Readout beats of a :class:`SynapticCore` -> ``acc[C_out, H_out, W_out]`` (int64)."""
    g = dut.geom
    acc = torch.zeros(g.c_out, g.h_out * g.w_out, dtype=torch.int64)
    seen = torch.zeros_like(acc, dtype=torch.bool)
    for pos, chan, lanes, mask, _ in beats:
        for i, v in enumerate(lanes):
            if mask >> i & 1:
                acc[chan + i, pos] = v
                seen[chan + i, pos] = True
    if not bool(seen.all()):
        raise AssertionError("readout did not cover every output")
    return acc.reshape(g.c_out, g.h_out, g.w_out)


def simulate_core(dut, packets, *, valid_prob: float = 1.0, ready_prob: float = 1.0, seed: int = 0,
                  vcd: str | None = None) -> tuple[torch.Tensor, RunResult]:
    """Run one readout (``planes`` event packets) through a :class:`SynapticCore`.

    Returns ``(acc[C_out, H_out, W_out], result)``; ``result.out`` holds the raw beats.
    """
    items = [e for pk in packets for e in pk]
    res = stream_sim(dut, items, i_name="i_events", o_name="o_acc", unpack=_unpack_acc(dut),
                     valid_prob=valid_prob, ready_prob=ready_prob, seed=seed,
                     n_out=dut.plan.n_acc, vcd=vcd)
    return acc_tensor(dut, res.out), res
