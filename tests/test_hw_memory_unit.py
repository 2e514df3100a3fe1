"""MemoryUnit (hw/memory_unit.py): memory build and retrieval vs the golden model (§IS-8).

Bit-exact against ``quant.golden.memory.memory_build`` / ``retrieve``; cycle-exact against
``hw.memory_unit_cycles`` (busy == predicted + counted stalls, and == predicted without gaps);
random shapes, densities 0-100 %, random valid gaps and backpressure on every stream.
"""

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiketrack.hw.memory_unit import MemoryUnit, MemoryUnitGeometry
from spiketrack.hw.memory_unit_cycles import build_cycles, n_spikes, retrieve_cycles
from spiketrack.quant.golden.memory import memory_build, retrieve
from spiketrack.sim.memory_unit_sim import Command, memory_tensor, packet, random_levels, simulate


def check_cycles(dut, res, predicted):
    assert res.busy == predicted + res.stall_in + res.stall_out


shapes = st.fixed_dictionaries({
    "heads": st.integers(1, 3),
    "d_h": st.sampled_from([1, 2, 4, 8]),
    "d_v": st.sampled_from([1, 2, 4, 8, 16]),
    "lanes": st.sampled_from([1, 2, 4, 8]),
    "n_max": st.integers(1, 10),
    "n_slots": st.integers(1, 3),
})


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=shapes, data=st.data())
def test_build_then_retrieve_random(shape, data):
    dut = MemoryUnit(**shape)
    g = dut.geom
    n = data.draw(st.integers(1, g.n_max), label="N")
    slot = data.draw(st.integers(0, g.n_slots - 1), label="slot")
    dens = [data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0, 1), label=f"dens{i}")
            for i in range(3)]
    vp = data.draw(st.sampled_from([1.0, 0.7, 0.3]), label="valid_prob")
    rp = data.draw(st.sampled_from([1.0, 0.6, 0.2]), label="ready_prob")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    K = random_levels(gen, (g.heads, g.d_h, n), dens[0])
    V = random_levels(gen, (g.heads, g.d_v, n), dens[1])
    Q = random_levels(gen, (g.heads, g.d_h, n), dens[2])
    ve, ke, qe = packet(V, rng), packet(K, rng), packet(Q, rng)
    res = simulate(dut, [Command("build", slot, n, [ve, ke], template_mode=1),
                         Command("retrieve", slot, n, [qe])],
                   valid_prob=vp, ready_prob=rp, seed=seed, snapshot=True)
    M = memory_build(K, V)
    assert torch.equal(memory_tensor(dut, res[0].m_after, slot), M)
    # other banks untouched by the build
    for s in range(g.n_slots):
        if s != slot:
            assert torch.equal(memory_tensor(dut, res[0].m_after, s), memory_tensor(dut, res[0].m_before, s))
    assert torch.equal(res[1].r, retrieve(Q, M))
    assert res[1].m_after == res[1].m_before
    assert res[1].beats[-1][3] == 1 and sum(b[3] for b in res[1].beats) == 1
    check_cycles(dut, res[0], build_cycles(g, n, ve, ke))
    check_cycles(dut, res[1], retrieve_cycles(g, n, qe))
    assert res[0].events == n_spikes(ve) + n_spikes(ke)
    assert res[1].events == n_spikes(qe)
    if vp == 1.0:
        assert res[0].stall_in == res[1].stall_in == 0
    if rp == 1.0:
        assert res[1].stall_out == 0


def test_cycles_exact_without_gaps():
    dut = MemoryUnit(heads=2, d_h=4, d_v=8, n_max=8, n_slots=2, lanes=2)
    g = dut.geom
    gen = torch.Generator().manual_seed(3)
    rng = random.Random(3)
    K, V, Q = (random_levels(gen, (2, c, 7), 0.4) for c in (4, 8, 4))
    ve, ke, qe = packet(V, rng), packet(K, rng), packet(Q, rng)
    res = simulate(dut, [Command("build", 1, 7, [ve, ke], 1), Command("retrieve", 1, 7, [qe])])
    assert res[0].busy == build_cycles(g, 7, ve, ke)
    assert res[1].busy == retrieve_cycles(g, 7, qe)
    assert res[0].stall_in == res[1].stall_in == res[1].stall_out == 0
    assert torch.equal(res[1].r, retrieve(Q, memory_build(K, V)))


def test_memories_retained_across_frames_and_slots():
    """Two template slots (site x timestep) built once, then several search frames read them."""
    dut = MemoryUnit(heads=2, d_h=2, d_v=4, n_max=6, n_slots=3, lanes=4)
    gen = torch.Generator().manual_seed(5)
    rng = random.Random(5)
    KV = [(random_levels(gen, (2, 2, 6), 0.6), random_levels(gen, (2, 4, 6), 0.6)) for _ in range(2)]
    cmds = [Command("build", s, 6, [packet(V, rng), packet(K, rng)], 1) for s, (K, V) in enumerate(KV)]
    Qs = [random_levels(gen, (2, 2, 6), d) for d in (0.0, 0.3, 1.0, 0.7)]
    cmds += [Command("retrieve", f % 2, 6, [packet(Q, rng)]) for f, Q in enumerate(Qs)]
    res = simulate(dut, cmds, valid_prob=0.6, ready_prob=0.5, seed=9, snapshot=True)
    for f, Q in enumerate(Qs):
        K, V = KV[f % 2]
        assert torch.equal(res[2 + f].r, retrieve(Q, memory_build(K, V)))
        assert res[2 + f].m_after == res[2 + f].m_before == res[1].m_after
    for s, (K, V) in enumerate(KV):
        assert torch.equal(memory_tensor(dut, res[-1].m_after, s), memory_build(K, V))
    # template update replaces slot 0 only
    K2, V2 = random_levels(gen, (2, 2, 4), 0.5), random_levels(gen, (2, 4, 4), 0.5)
    dut2 = MemoryUnit(heads=2, d_h=2, d_v=4, n_max=6, n_slots=3, lanes=4)
    res2 = simulate(dut2, cmds[:2] + [Command("build", 0, 4, [packet(V2, rng), packet(K2, rng)], 1)],
                    snapshot=True)
    assert torch.equal(memory_tensor(dut2, res2[-1].m_after, 0), memory_build(K2, V2))
    assert torch.equal(memory_tensor(dut2, res2[-1].m_after, 1), memory_build(*KV[1]))


@pytest.mark.parametrize("template_mode", [0, 1])
def test_search_pass_never_writes_memories(template_mode):
    """Unidirectional contract (§IS-8, spec §5.1): whole template memory read before/after."""
    dut = MemoryUnit(heads=2, d_h=2, d_v=4, n_max=5, n_slots=2, lanes=2)
    gen = torch.Generator().manual_seed(11)
    rng = random.Random(11)
    K, V = random_levels(gen, (2, 2, 5), 0.8), random_levels(gen, (2, 4, 5), 0.8)
    Kq, Vq, Q = (random_levels(gen, s, 1.0) for s in ((2, 2, 5), (2, 4, 5), (2, 2, 5)))
    cmds = [Command("build", 0, 5, [packet(V, rng), packet(K, rng)], 1),
            Command("retrieve", 0, 5, [packet(Q, rng)], template_mode),
            Command("attend", 1, 5, [packet(Vq, rng), packet(Kq, rng), packet(Q, rng)], template_mode),
            Command("retrieve", 1, 5, [packet(Q, rng)], template_mode)]
    res = simulate(dut, cmds, snapshot=True, valid_prob=0.8, ready_prob=0.7, seed=2)
    assert res[0].m_after != res[0].m_before          # the build did write
    for r in res[1:]:
        assert r.m_after == r.m_before                # search passes did not
    # and a BUILD without template_mode writes nothing either
    dut2 = MemoryUnit(heads=2, d_h=2, d_v=4, n_max=5, n_slots=2, lanes=2)
    res2 = simulate(dut2, [Command("build", 0, 5, [packet(V, rng), packet(K, rng)], 0)], snapshot=True)
    assert res2[0].m_after == res2[0].m_before


def test_retrieval_cycles_grow_with_query_spikes():
    """Cycles vs query density: monotone in the number of query spike events (§ density table)."""
    from spiketrack.sim.memory_unit_sim import density_sweep
    rows = density_sweep(heads=2, d_h=4, d_v=16, n_tokens=16, lanes=4,
                         densities=(0.0, 0.25, 0.5, 1.0), seed=1)
    spikes = [r["q_events"] for r in rows]
    cycles = [r["cycles"] for r in rows]
    assert spikes == sorted(spikes) and cycles == sorted(cycles) and cycles[-1] > cycles[0]
    assert all(r["cycles"] == r["predicted"] and r["exact"] for r in rows)


def test_geometry_limits():
    with pytest.raises(ValueError):
        MemoryUnitGeometry(heads=1, d_h=3, d_v=4, n_max=4)
    g = MemoryUnitGeometry(heads=8, d_h=16, d_v=64, n_max=256, n_slots=18, lanes=8)
    assert g.m_bits == 13          # bits of D²·N = 4096 (§IS-8)


def _pack(fields):
    """[(value, width), ...] -> int, first field in the LSBs (Amaranth struct packing)."""
    out, sh = 0, 0
    for v, w in fields:
        out |= (int(v) & ((1 << w) - 1)) << sh
        sh += w
    return out


def test_memory_unit_cocotb_icarus():
    """Generated Verilog on Icarus: build, retrieve, attend with random gaps/backpressure."""
    from spiketrack.hw.memory_unit import Op, acc_layout, cmd_layout
    from spiketrack.hw.memory_unit_cycles import attend_cycles
    from spiketrack.sim.cocotb_runner import run_cocotb

    shape = dict(heads=2, d_h=2, d_v=4, n_max=4, n_slots=2, lanes=2)
    g = MemoryUnitGeometry(**shape)
    gen = torch.Generator().manual_seed(21)
    rng = random.Random(21)
    n = 4
    K, V, Q, Q2 = (random_levels(gen, (2, c, n), d) for c, d in ((2, 0.7), (4, 0.6), (2, 0.8), (2, 0.0)))
    ve, ke, qe, qe2 = packet(V, rng), packet(K, rng), packet(Q, rng), packet(Q2, rng)
    M = memory_build(K, V)
    cw = cmd_layout(g)
    aw = acc_layout(g)

    def ev_words(evs):
        return [_pack([(e.pos, g.pos_bits), (e.chan, g.chan_bits), (e.level, 3), (e.empty, 1), (e.last, 1)])
                for e in evs]

    def beats(R):
        out = []
        for t in range(n):
            for h in range(g.heads):
                for ch in range(g.n_chunks):
                    lanes = [(int(R[h, ch * g.lanes + ln, t]), g.r_bits) for ln in range(g.lanes)]
                    last = t == n - 1 and h == g.heads - 1 and ch == g.n_chunks - 1
                    out.append(_pack(lanes + [(t, g.pos_bits), ((h << g.dvb) | (ch << g.lb), aw.size - g.lanes * g.r_bits - g.pos_bits - 1), (last, 1)]))
        return out

    def cmd(op, slot):
        return _pack([(op.value, 2), (slot, cw.size - 2 - g.ntok_bits), (n, g.ntok_bits)])

    commands = [
        {"template_mode": 1, "cmd": cmd(Op.BUILD, 1), "events": ev_words(ve + ke), "expected": [],
         "predicted": build_cycles(g, n, ve, ke)},
        {"template_mode": 0, "cmd": cmd(Op.RETRIEVE, 1), "events": ev_words(qe), "expected": beats(retrieve(Q, M)),
         "predicted": retrieve_cycles(g, n, qe)},
        {"template_mode": 0, "cmd": cmd(Op.RETRIEVE, 1), "events": ev_words(qe2), "expected": beats(retrieve(Q2, M)),
         "predicted": retrieve_cycles(g, n, qe2)},
        {"template_mode": 0, "cmd": cmd(Op.ATTEND, 0), "events": ev_words(ve + ke + qe),
         "expected": beats(retrieve(Q, M)), "predicted": attend_cycles(g, n, ve, ke, qe)},
    ]
    run_cocotb(lambda: MemoryUnit(**shape), toplevel="memory_unit", test_module="tests/cocotb/tb_memory_unit.py",
               tb_params={"commands": commands, "valid_prob": 0.6, "ready_prob": 0.5}, sim="icarus")


def test_verify_cases_zero_mismatches():
    """The `spiketrack verify` layer cases (memory_build, retrieval, attention) on a few seeds."""
    from spiketrack.sim.memory_unit_sim import VERIFY_LAYER_TYPES, verify_case
    for seed in range(4):
        for lt in VERIFY_LAYER_TYPES:
            r = verify_case(lt, 1000 + seed)
            assert r["mismatches"] == 0 and r["cycles_exact"], r


def test_memories_marked_no_rw_check():
    """Every memory carries yosys's ``no_rw_check`` (collision result is don't-care, §ECP5 Fmax),
    and the write ports are fed from registers (5-stage pipeline, DRAIN = 4)."""
    from amaranth.back import rtlil
    from spiketrack.hw.memory_unit import DRAIN
    dut = MemoryUnit(heads=2, d_h=2, d_v=4, n_max=4, n_slots=2, lanes=2)
    text = rtlil.convert(dut, name="memory_unit")
    assert text.count("attribute \\no_rw_check") == 4
    assert DRAIN == 4
