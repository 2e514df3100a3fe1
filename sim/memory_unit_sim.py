"""amaranth.sim driver for :class:`spiketrack.hw.memory_unit.MemoryUnit` and
:class:`spiketrack.hw.retrieval_neuron.RetrievalNeuron` (the same command interface).

Runs a list of commands with random valid gaps on ``i_events`` / ``cmd`` and random
backpressure on the output (``o_acc`` of the memory unit, ``o_spk`` of the chain), and returns
per command the output beats assembled into ``R[h, j, n]`` (accumulators, or spike levels for
the chain), the counter deltas and (optionally) snapshots of the template memory.
Used by ``tests/test_hw_memory_unit.py``, ``tests/test_hw_attention.py``,
``tests/test_hw_retrieval_neuron.py`` and ``sim/verify.py``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from amaranth.sim import Simulator

from spiketrack.hw.counters import COUNTER_LAG
from spiketrack.hw.memory_unit import MemoryUnit, Op
from spiketrack.hw.memory_unit_cycles import Event, events_from_levels
from spiketrack.quant.golden.neuron import D
from spiketrack.sim.unit_sim import tick_until

__all__ = ["Command", "CommandResult", "simulate", "read_memory", "memory_tensor", "random_levels",
           "packet", "density_sweep"]

_OPS = {"build": Op.BUILD, "retrieve": Op.RETRIEVE, "attend": Op.ATTEND}


@dataclass
class Command:
    """One command: ``op`` in build/retrieve/attend; ``packets`` = [V, K] / [Q] / [V, K, Q]."""
    op: str
    slot: int
    n_tokens: int
    packets: list[list[Event]]
    template_mode: int = 0


@dataclass
class CommandResult:
    busy: int
    stall_in: int
    stall_out: int
    events: int
    beats: list = field(default_factory=list)      # (pos, chan, lanes, last)
    r: torch.Tensor | None = None                   # [H, d_v, N] for retrieve/attend
    m_before: list[int] | None = None
    m_after: list[int] | None = None


def random_levels(gen: torch.Generator, shape, density: float) -> torch.Tensor:
    """Spike levels with a fraction ``density`` of non-zero entries (levels 1..D uniform)."""
    mask = torch.rand(shape, generator=gen) < density
    lv = torch.randint(1, D + 1, shape, generator=gen)
    return torch.where(mask, lv, torch.zeros_like(lv))


def packet(levels: torch.Tensor, rng: random.Random | None = None) -> list[Event]:
    """[H, C, N] levels -> event packet with ``chan = h·C + c`` (random order with ``rng``)."""
    H, C, N = levels.shape
    return events_from_levels(levels.reshape(H * C, N), rng)


def read_memory(ctx, mem_data) -> list[int]:
    """Every word of a ``MemoryData`` (testbench context)."""
    return [ctx.get(mem_data[i]) for i in range(mem_data.depth)]


def memory_tensor(dut: MemoryUnit, words: list[int], slot: int) -> torch.Tensor:
    """Template memory words -> ``M[h, c, j]`` of one slot."""
    g = dut.geom
    out = torch.zeros(g.heads, g.d_h, g.d_v, dtype=torch.int64)
    mask = (1 << g.m_bits) - 1
    for h in range(g.heads):
        for c in range(g.d_h):
            for ch in range(g.n_chunks):
                w = words[dut.m_word(slot, h, c, ch)]
                for ln in range(g.lanes):
                    out[h, c, ch * g.lanes + ln] = (w >> (ln * g.m_bits)) & mask
    return out


def _r_tensor(dut: MemoryUnit, beats, n_tokens: int) -> torch.Tensor:
    g = dut.geom
    r = torch.full((g.heads, g.d_v, n_tokens), -1, dtype=torch.int64)
    for pos, chan, lanes, _ in beats:
        h, j0 = chan >> g.dvb, chan & (g.d_v - 1)
        for ln, v in enumerate(lanes):
            r[h, j0 + ln, pos] = v
    return r


def _output(dut):
    """(output stream, lane field) of a memory unit or a retrieval-neuron chain."""
    return (dut.o_spk, "levels") if hasattr(dut, "o_spk") else (dut.o_acc, "acc")


def simulate(dut: MemoryUnit, commands: list[Command], *, valid_prob: float = 1.0,
             ready_prob: float = 1.0, seed: int = 0, snapshot: bool = False,
             vcd: str | None = None) -> list[CommandResult]:
    """Run ``commands`` back to back on ``dut``; return one :class:`CommandResult` each."""
    g = dut.geom
    rng_in = random.Random(seed)
    rng_out = random.Random(seed + 1)
    results: list[CommandResult] = []
    beats: list = []

    async def gap(ctx):
        while rng_in.random() >= valid_prob:
            await ctx.tick()

    async def put(ctx, s, payload):
        await gap(ctx)
        ctx.set(s.payload, payload)
        ctx.set(s.valid, 1)
        await tick_until(ctx, s.ready, "the memory unit taking a command or event")
        ctx.set(s.valid, 0)

    out, lane_field = _output(dut)

    async def sink(ctx):
        while True:
            rdy = rng_out.random() < ready_prob
            ctx.set(out.ready, rdy)
            _, _, valid, payload = await ctx.tick().sample(out.valid, out.payload)
            if valid and rdy:
                lanes = [int(getattr(payload, lane_field)[i]) for i in range(g.lanes)]
                beats.append((int(payload.pos), int(payload.chan), lanes, int(payload.last)))

    async def driver(ctx):
        c = dut.counters
        for cmd in commands:
            before = {k: ctx.get(getattr(c, k)) for k in ("busy", "stall_in", "stall_out", "events")}
            m_before = read_memory(ctx, dut.m_data) if snapshot else None
            beats.clear()
            ctx.set(dut.template_mode, cmd.template_mode)
            await put(ctx, dut.cmd, {"op": _OPS[cmd.op], "slot": cmd.slot, "n_tokens": cmd.n_tokens})
            for packet in cmd.packets:
                for e in packet:
                    await put(ctx, dut.i_events, {"pos": e.pos, "chan": e.chan, "level": e.level,
                                                  "empty": e.empty, "last": e.last})
            await tick_until(ctx, ~dut.busy, f"command {cmd.op}: the unit going idle")
            ctx.set(dut.template_mode, 0)
            await ctx.tick().repeat(COUNTER_LAG)    # the counter bank's registered increments
            after = {k: ctx.get(getattr(c, k)) for k in before}
            res = CommandResult(**{k: after[k] - before[k] for k in before})
            res.beats = list(beats)
            if cmd.op != "build":
                res.r = _r_tensor(dut, res.beats, cmd.n_tokens)
            if snapshot:
                res.m_before, res.m_after = m_before, read_memory(ctx, dut.m_data)
            results.append(res)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(sink, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results


def density_sweep(*, heads: int, d_h: int, d_v: int, n_tokens: int, lanes: int,
                  densities=(0.0, 0.1, 0.25, 0.5, 0.75, 1.0), seed: int = 0) -> list[dict]:
    """Retrieval cycles vs query spike density (no gaps, no backpressure); checked vs golden.

    Returns one row per density: ``density``, ``q_events``, ``cycles`` (simulated busy),
    ``predicted`` (cycle model), ``exact`` (R bit-exact vs ``golden.memory.retrieve``).
    """
    from spiketrack.hw.memory_unit_cycles import n_spikes, retrieve_cycles
    from spiketrack.quant.golden.memory import memory_build, retrieve

    gen = torch.Generator().manual_seed(seed)

    def levels(c, d):
        return random_levels(gen, (heads, c, n_tokens), d)

    K, V = levels(d_h, 0.5), levels(d_v, 0.5)
    M = memory_build(K, V)
    cmds = [Command("build", 0, n_tokens, [packet(V), packet(K)], 1)]
    qs = [levels(d_h, d) for d in densities]
    qev = [packet(q) for q in qs]
    cmds += [Command("retrieve", 0, n_tokens, [e]) for e in qev]
    dut = MemoryUnit(heads, d_h, d_v, n_max=n_tokens, n_slots=1, lanes=lanes)
    res = simulate(dut, cmds)
    rows = []
    for d, q, e, r in zip(densities, qs, qev, res[1:]):
        rows.append({"density": d, "q_events": n_spikes(e), "cycles": r.busy,
                     "predicted": retrieve_cycles(dut.geom, n_tokens, e),
                     "exact": bool(torch.equal(r.r, retrieve(q, M)))})
    return rows


# ---- layer-case generators for `spiketrack verify --fuzz N` (sim/verify.py registry) ----

def _random_case_shape(rng: random.Random) -> dict:
    return {"heads": rng.randint(1, 3), "d_h": rng.choice([1, 2, 4, 8]), "d_v": rng.choice([1, 2, 4, 8, 16]),
            "lanes": rng.choice([1, 2, 4]), "n_max": rng.randint(1, 10), "n_slots": rng.randint(1, 3)}


def _chain_case(rng: random.Random, gen: torch.Generator, shape: dict, kw: dict):
    """``retrieval_neuron``: T template builds, then T retrievals through the neuron unit."""
    from spiketrack.hw.neuron_unit import HAZARD_DEPTH
    from spiketrack.hw.retrieval_neuron import RetrievalNeuron
    from spiketrack.hw.retrieval_neuron_cycles import chain_build_cycles, chain_retrieve_cycles
    from spiketrack.quant.golden.memory import memory_build, retrieval_shift, retrieve
    from spiketrack.quant.golden.neuron import Decay, neuron_layer

    T = shape["n_slots"]
    n = rng.randint(HAZARD_DEPTH if T > 1 else 1, max(shape["n_max"], HAZARD_DEPTH))
    f_m = rng.randint(2, 6)
    chain = {"sigma": rng.randint(0, 2), "f_m": f_m, "bits": rng.randint(f_m + 3, f_m + 6), "T": T,
             "betas": tuple(Decay(((1, rng.randint(1, 3)),) + (((rng.choice([1, -1]), 4),) if rng.random() < 0.5
                                                                   else ())) for _ in range(T - 1))}
    dut = RetrievalNeuron(**{**shape, "n_max": max(shape["n_max"], n)}, n_tokens=n, **chain)
    g = dut.geom
    n_tpl = rng.randint(1, g.n_max)
    dens = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(3)]
    K = [random_levels(gen, (g.heads, g.d_h, n_tpl), dens[0]) for _ in range(T)]
    V = [random_levels(gen, (g.heads, g.d_v, n_tpl), dens[1]) for _ in range(T)]
    Q = [random_levels(gen, (g.heads, g.d_h, n), dens[2]) for _ in range(T)]
    ve, ke, qe = ([packet(x, rng) for x in X] for X in (V, K, Q))
    res = simulate(dut, [Command("build", t, n_tpl, [ve[t], ke[t]], 1) for t in range(T)]
                   + [Command("retrieve", t, n, [qe[t]]) for t in range(T)], snapshot=True, **kw)
    acc = torch.stack([retrieve(Q[t], memory_build(K[t], V[t])).reshape(-1, n) for t in range(T)])
    want = neuron_layer(acc, retrieval_shift(chain["sigma"], f_m), f_m, chain["bits"], betas=chain["betas"])[0]
    got = torch.stack([r.r.reshape(-1, n) for r in res[T:]])
    if any(r.m_after != r.m_before for r in res[T:]):   # unidirectional contract broken
        got = got - 1
    preds = ([chain_build_cycles(g, n_tpl, ve[t], ke[t]) for t in range(T)]
             + [chain_retrieve_cycles(g, n, qe[t]) for t in range(T)])
    return res, got, want, preds, {**shape, "n_max": g.n_max, "n_tokens": n, "T": T}


def verify_case(layer_type: str, seed: int) -> dict:
    """One random fuzz case of ``layer_type`` in ``memory_build``, ``retrieval``, ``attention``,
    ``retrieval_neuron`` (memory unit -> neuron unit, :class:`~spiketrack.hw.retrieval_neuron.RetrievalNeuron`).

    Random shape, densities 0-100 %, random valid gaps and backpressure. Returns
    ``{"layer_type", "shape", "mismatches", "elements", "cycles", "predicted", "cycles_exact"}``
    where ``mismatches`` counts elements differing from the golden function
    (``memory_build`` / ``retrieve`` / ``attention_acc`` / ``neuron_layer`` of ``retrieve``) and
    ``cycles_exact`` asserts ``busy == predicted + stall_in + stall_out`` for every command of the case.
    """
    from spiketrack.hw.memory_unit_cycles import attend_cycles, build_cycles, retrieve_cycles
    from spiketrack.quant.golden.memory import attention_acc, memory_build, retrieve

    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    shape = _random_case_shape(rng)
    kw = {"valid_prob": rng.choice([1.0, 0.7, 0.4]), "ready_prob": rng.choice([1.0, 0.6, 0.3]), "seed": seed}
    if layer_type == "retrieval_neuron":
        res, got, want, preds, shape = _chain_case(rng, gen, shape, kw)
        return _case_result(layer_type, shape, seed, res, got, want, preds)
    dut = MemoryUnit(**shape)
    g = dut.geom
    n = rng.randint(1, g.n_max)
    slot = rng.randrange(g.n_slots)
    dens = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(3)]
    K = random_levels(gen, (g.heads, g.d_h, n), dens[0])
    V = random_levels(gen, (g.heads, g.d_v, n), dens[1])
    Q = random_levels(gen, (g.heads, g.d_h, n), dens[2])
    ve, ke, qe = packet(V, rng), packet(K, rng), packet(Q, rng)
    if layer_type == "memory_build":
        res = simulate(dut, [Command("build", slot, n, [ve, ke], 1)], snapshot=True, **kw)
        got, want = memory_tensor(dut, res[0].m_after, slot), memory_build(K, V)
        preds = [build_cycles(g, n, ve, ke)]
    elif layer_type == "retrieval":
        res = simulate(dut, [Command("build", slot, n, [ve, ke], 1), Command("retrieve", slot, n, [qe])],
                       snapshot=True, **kw)
        got, want = res[1].r, retrieve(Q, memory_build(K, V))
        preds = [build_cycles(g, n, ve, ke), retrieve_cycles(g, n, qe)]
        if res[1].m_after != res[1].m_before:   # unidirectional contract broken
            got = got - 1
    elif layer_type == "attention":
        res = simulate(dut, [Command("attend", slot, n, [ve, ke, qe])], snapshot=True, **kw)
        got, want = res[0].r, attention_acc(Q, K, V)
        preds = [attend_cycles(g, n, ve, ke, qe)]
        if res[0].m_after != res[0].m_before:
            got = got - 1
    else:
        raise ValueError(f"unknown layer type {layer_type!r}")
    return _case_result(layer_type, {**shape, "n_tokens": n}, seed, res, got, want, preds)


def _case_result(layer_type, shape, seed, res, got, want, preds) -> dict:
    exact = all(r.busy == p + r.stall_in + r.stall_out for r, p in zip(res, preds))
    return {"layer_type": layer_type, "shape": shape, "seed": seed,
            "mismatches": int((got != want).sum()), "elements": int(want.numel()),
            "cycles": res[-1].busy, "predicted": preds[-1] + res[-1].stall_in + res[-1].stall_out,
            "cycles_exact": exact}


VERIFY_LAYER_TYPES = ("memory_build", "retrieval", "attention", "retrieval_neuron")


def fuzz_summary(n: int, seed: int = 0) -> dict:
    """``n`` cases of each memory-unit layer type; the JSON summary ``verify --fuzz`` reports."""
    out = {}
    for lt in VERIFY_LAYER_TYPES:
        cases = [verify_case(lt, seed + i) for i in range(n)]
        out[lt] = {"cases": n, "mismatches": sum(c["mismatches"] for c in cases),
                   "elements": sum(c["elements"] for c in cases),
                   "cycles_exact": sum(c["cycles_exact"] for c in cases),
                   "cycles_total": sum(c["cycles"] for c in cases)}
    return {"layer_types": out}


def _register_verify_cases() -> None:
    """Register the :data:`VERIFY_LAYER_TYPES` with ``spiketrack verify`` (sim/verify.py)."""
    from spiketrack.sim.verify import register

    def make(layer_type: str):
        def case(rng: random.Random) -> dict:
            r = verify_case(layer_type, rng.randrange(1 << 31))
            return {"type": layer_type, "match": r["mismatches"] == 0, "cycles_exact": r["cycles_exact"],
                    "geom": r["shape"], "elements": r["elements"], "cycles": r["cycles"]}
        return case

    for lt in VERIFY_LAYER_TYPES:
        register(lt)(make(lt))


_register_verify_cases()
