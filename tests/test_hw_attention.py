"""Backbone spiking attention ``Q·(Kᵀ V)`` on MemoryUnit (ATTEND) vs ``golden.memory.attention_acc``.

Spec §4.4: K, V, Q of the same (search) tokens; the product is built into the unit's scratch
memory, never into a template bank (§IS-8). Bit-exact and cycle-exact, random shapes,
densities and stream timing.
"""

import random

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiketrack.hw.memory_unit import MemoryUnit
from spiketrack.hw.memory_unit_cycles import attend_cycles, n_spikes
from spiketrack.quant.golden.memory import attention_acc, memory_build, retrieve
from spiketrack.sim.memory_unit_sim import Command, packet, random_levels, simulate


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(heads=st.integers(1, 3), d_h=st.sampled_from([1, 2, 4, 8]), d_v=st.sampled_from([1, 2, 4, 8, 16]),
       lanes=st.sampled_from([1, 2, 4]), n_max=st.integers(1, 10), data=st.data())
def test_attention_random(heads, d_h, d_v, lanes, n_max, data):
    dut = MemoryUnit(heads, d_h, d_v, n_max=n_max, n_slots=1, lanes=lanes)
    g = dut.geom
    n = data.draw(st.integers(1, n_max), label="N")
    dens = [data.draw(st.floats(0, 1), label=f"d{i}") for i in range(3)]
    vp = data.draw(st.sampled_from([1.0, 0.5]), label="valid_prob")
    rp = data.draw(st.sampled_from([1.0, 0.4]), label="ready_prob")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    Q, K, V = (random_levels(gen, (heads, c, n), d) for c, d in zip((d_h, d_h, d_v), dens))
    ve, ke, qe = packet(V, rng), packet(K, rng), packet(Q, rng)
    # two back-to-back attention passes (second one on fresh tokens) + template mode high
    Q2, K2, V2 = (random_levels(gen, (heads, c, n), 0.5) for c in (d_h, d_h, d_v))
    cmds = [Command("attend", 0, n, [ve, ke, qe], template_mode=1),
            Command("attend", 0, n, [packet(V2, rng), packet(K2, rng), packet(Q2, rng)])]
    res = simulate(dut, cmds, valid_prob=vp, ready_prob=rp, seed=seed, snapshot=True)
    assert torch.equal(res[0].r, attention_acc(Q, K, V))
    assert torch.equal(res[1].r, attention_acc(Q2, K2, V2))
    for r in res:
        assert r.m_after == r.m_before        # attention never writes the template memory
    assert res[0].busy == attend_cycles(g, n, ve, ke, qe) + res[0].stall_in + res[0].stall_out
    assert res[0].events == n_spikes(ve) + n_spikes(ke) + n_spikes(qe)


def test_attention_equals_build_then_retrieve():
    """ATTEND == BUILD into a slot + RETRIEVE from it (same arithmetic, §IS-8)."""
    dut = MemoryUnit(heads=2, d_h=4, d_v=8, n_max=8, n_slots=1, lanes=4)
    gen = torch.Generator().manual_seed(1)
    rng = random.Random(1)
    Q, K, V = (random_levels(gen, (2, c, 8), 0.5) for c in (4, 4, 8))
    ve, ke, qe = packet(V, rng), packet(K, rng), packet(Q, rng)
    res = simulate(dut, [Command("attend", 0, 8, [ve, ke, qe]),
                         Command("build", 0, 8, [ve, ke], 1), Command("retrieve", 0, 8, [qe])])
    assert torch.equal(res[0].r, res[2].r)
    assert torch.equal(res[0].r, retrieve(Q, memory_build(K, V)))
    assert res[0].busy == res[1].busy + res[2].busy
