"""RetrievalNeuron (hw/retrieval_neuron.py): memory unit -> neuron unit, query spikes to output spikes.

Bit-exact against the golden chain ``quant.golden.neuron.neuron_layer(retrieve(Q_t, memory_build(K_t, V_t)))``
over ``T`` retrievals (membrane carried across commands); cycle-exact against
``hw.retrieval_neuron_cycles`` (busy == predicted + counted stalls); random shapes, densities,
valid gaps and output backpressure.
"""

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiketrack.hw.memory_unit_cycles import n_spikes
from spiketrack.hw.neuron_unit import HAZARD_DEPTH
from spiketrack.hw.retrieval_neuron import RetrievalNeuron
from spiketrack.hw.retrieval_neuron_cycles import (chain_attend_cycles, chain_build_cycles,
                                                   chain_retrieve_cycles)
from spiketrack.quant.golden.memory import attention_acc, memory_build, retrieval_shift, retrieve
from spiketrack.quant.golden.neuron import Decay, neuron_layer
from spiketrack.sim.memory_unit_sim import Command, packet, random_levels, simulate

DECAYS = [Decay(((1, 1),)), Decay(((1, 2),)), Decay(((1, 1), (1, 2))), Decay(((1, 1), (-1, 3)))]


def check_cycles(res, predicted):
    assert res.busy == predicted + res.stall_in + res.stall_out


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_template_build_then_T_retrievals(data):
    heads = data.draw(st.integers(1, 2), label="heads")
    d_h = data.draw(st.sampled_from([2, 4, 8]), label="d_h")
    d_v = data.draw(st.sampled_from([4, 8]), label="d_v")
    lanes = data.draw(st.sampled_from([1, 2, 4]), label="lanes")
    T = data.draw(st.integers(1, 3), label="T")
    n_tok = data.draw(st.integers(HAZARD_DEPTH, HAZARD_DEPTH + 3), label="n_tokens")   # >= HAZARD_DEPTH beats
    n_tpl = data.draw(st.integers(1, 6), label="template tokens")
    f_m = data.draw(st.integers(2, 6), label="f_m")
    bits = data.draw(st.integers(f_m + 3, f_m + 6), label="bits")
    sigma = data.draw(st.integers(0, 2), label="sigma")
    betas = tuple(data.draw(st.sampled_from(DECAYS), label=f"beta{t}") for t in range(T - 1))
    dens = data.draw(st.sampled_from([0.1, 0.5, 1.0]) | st.floats(0, 1), label="density")
    vp = data.draw(st.sampled_from([1.0, 0.6]), label="valid_prob")
    rp = data.draw(st.sampled_from([1.0, 0.5]), label="ready_prob")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    dut = RetrievalNeuron(heads=heads, d_h=d_h, d_v=d_v, n_max=max(n_tok, n_tpl), n_tokens=n_tok, sigma=sigma,
                          f_m=f_m, bits=bits, n_slots=T, lanes=lanes, T=T, betas=betas)
    g = dut.geom
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    K = [random_levels(gen, (heads, d_h, n_tpl), dens) for _ in range(T)]
    V = [random_levels(gen, (heads, d_v, n_tpl), dens) for _ in range(T)]
    Q = [random_levels(gen, (heads, d_h, n_tok), dens) for _ in range(T)]
    ve, ke, qe = ([packet(x, rng) for x in X] for X in (V, K, Q))
    builds = [Command("build", t, n_tpl, [ve[t], ke[t]], template_mode=1) for t in range(T)]
    retrievals = [Command("retrieve", t, n_tok, [qe[t]]) for t in range(T)]
    res = simulate(dut, builds + retrievals, valid_prob=vp, ready_prob=rp, seed=seed, snapshot=True)

    acc = torch.stack([retrieve(Q[t], memory_build(K[t], V[t])).reshape(heads * d_v, n_tok) for t in range(T)])
    k, _, _ = neuron_layer(acc, retrieval_shift(sigma, f_m), f_m, bits, betas=betas)
    for t in range(T):
        r = res[T + t]
        assert torch.equal(r.r.reshape(heads * d_v, n_tok), k[t]), f"timestep {t}"
        assert r.m_after == r.m_before                       # the search pass never writes M
        assert sum(b[3] for b in r.beats) == 1 and r.beats[-1][3] == 1
        assert r.events == n_spikes(qe[t])
        check_cycles(r, chain_retrieve_cycles(g, n_tok, qe[t]))
        check_cycles(res[t], chain_build_cycles(g, n_tpl, ve[t], ke[t]))
        if rp == 1.0:
            assert r.stall_out == 0


def test_attend_through_neuron_exact_cycles():
    """ATTEND (backbone attention) + neuron, no gaps: output spikes and cycles equal the models."""
    heads, d_h, d_v, n, lanes, f_m, bits = 2, 4, 8, 6, 4, 4, 10
    dut = RetrievalNeuron(heads=heads, d_h=d_h, d_v=d_v, n_max=n, n_tokens=n, sigma=1, f_m=f_m, bits=bits,
                          lanes=lanes)
    gen = torch.Generator().manual_seed(5)
    Q, K, V = (random_levels(gen, (heads, c, n), 0.4) for c in (d_h, d_h, d_v))
    qe, ke, ve = packet(Q), packet(K), packet(V)
    res = simulate(dut, [Command("attend", 0, n, [ve, ke, qe])])[0]
    k, _, _ = neuron_layer(attention_acc(Q, K, V).reshape(1, heads * d_v, n), retrieval_shift(1, f_m), f_m, bits)
    assert torch.equal(res.r.reshape(heads * d_v, n), k[0])
    assert k.sum() > 0 and (k == 0).any()        # the case exercises both firing and silence
    assert res.stall_in == res.stall_out == 0
    assert res.busy == chain_attend_cycles(dut.geom, n, ve, ke, qe)


def test_retrieval_neuron_cocotb_icarus():
    """Generated Verilog on Icarus: T = 2 template builds, then 2 retrievals through the neuron unit,
    random input gaps and output backpressure, beats and cycles checked against the golden chain."""
    from spiketrack.hw.events import event_layout
    from spiketrack.hw.memory_unit import MemoryUnitGeometry, Op, cmd_layout
    from spiketrack.hw.spike_encoder import level_word_layout
    from spiketrack.sim.cocotb_runner import run_cocotb

    T, n, f_m, bits, sigma = 2, 4, 4, 9, 1
    kw = dict(heads=2, d_h=2, d_v=4, n_max=n, n_tokens=n, sigma=sigma, f_m=f_m, bits=bits, n_slots=T, lanes=2,
              T=T, betas=(DECAYS[2],))
    g = MemoryUnitGeometry(2, 2, 4, n, T, 2)
    gen = torch.Generator().manual_seed(8)
    rng = random.Random(8)
    K = [random_levels(gen, (2, 2, n), 0.8) for _ in range(T)]
    V = [random_levels(gen, (2, 4, n), 0.7) for _ in range(T)]
    Q = [random_levels(gen, (2, 2, n), 0.7) for _ in range(T)]
    acc = torch.stack([retrieve(Q[t], memory_build(K[t], V[t])).reshape(2 * 4, n) for t in range(T)])
    k, _, _ = neuron_layer(acc, retrieval_shift(sigma, f_m), f_m, bits, betas=kw["betas"])
    assert k.sum() > 0 and (k < 4).any()
    ev_l, cmd_l, spk_l = (event_layout(g.pos_bits, g.chan_bits), cmd_layout(g),
                          level_word_layout(g.pos_bits, g.vchanb, g.lanes))

    def ev_words(evs):
        return [ev_l.const({"pos": e.pos, "chan": e.chan, "level": e.level, "empty": e.empty,
                            "last": e.last}).as_bits() for e in evs]

    def beats(levels):   # [h·d_v + j, n] -> o_spk words, token-major, then head, then chunk
        out = []
        for tok in range(n):
            for c0 in range(0, g.heads * g.d_v, g.lanes):
                last = tok == n - 1 and c0 == g.heads * g.d_v - g.lanes
                out.append(spk_l.const({"pos": tok, "chan": c0, "levels": [int(v) for v in levels[c0:c0 + g.lanes, tok]],
                                        "mask": (1 << g.lanes) - 1, "last": int(last)}).as_bits())
        return out

    def cmd(op, slot):
        return cmd_l.const({"op": op, "slot": slot, "n_tokens": n}).as_bits()

    commands = []
    for t in range(T):
        ve, ke = packet(V[t], rng), packet(K[t], rng)
        commands.append({"template_mode": 1, "cmd": cmd(Op.BUILD, t), "events": ev_words(ve + ke), "expected": [],
                         "predicted": chain_build_cycles(g, n, ve, ke)})
    for t in range(T):
        qe = packet(Q[t], rng)
        commands.append({"template_mode": 0, "cmd": cmd(Op.RETRIEVE, t), "events": ev_words(qe),
                         "expected": beats(k[t]), "predicted": chain_retrieve_cycles(g, n, qe)})
    run_cocotb(lambda: RetrievalNeuron(**kw), toplevel="retrieval_neuron", test_module="tests/cocotb/tb_memory_unit.py",
               tb_params={"commands": commands, "valid_prob": 0.6, "ready_prob": 0.5, "output": "o_spk"},
               sim="icarus")


def test_rejects_throttling_geometry_and_bad_token_count():
    """Refused by name; a refused unit is never elaborated, so it leaves no UnusedElaboratable."""
    import gc
    import warnings

    from amaranth.hdl import Elaboratable, Fragment, Module, UnusedElaboratable

    class Empty(Elaboratable):
        def elaborate(self, platform):
            return Module()

    Fragment.get(Empty(), None)   # amaranth reports unused designs only once something was elaborated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="throttle"):
            # 1 token x 1 head x 1 chunk = 1 beat < HAZARD_DEPTH with T = 3
            RetrievalNeuron(heads=1, d_h=4, d_v=4, n_max=4, n_tokens=1, sigma=1, f_m=4, bits=10, n_slots=3,
                            lanes=4, T=3, betas=(DECAYS[0], DECAYS[1]))
        with pytest.raises(ValueError, match="n_tokens"):
            RetrievalNeuron(heads=1, d_h=4, d_v=4, n_max=4, n_tokens=5, sigma=1, f_m=4, bits=10)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]
