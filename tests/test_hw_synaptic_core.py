"""SynapticCore vs spiketrack.quant.golden.synapse: bit-exact accumulators, exact cycle model."""

import pytest
from hypothesis import given, settings, strategies as st

from spiketrack.hw.synaptic_core import CorePlan, LayerGeometry
from spiketrack.sim.cocotb_runner import available_simulators
from spiketrack.sim.verify import core_case

CASES = [
    # geom, lanes, density, valid_prob, ready_prob, w_bits
    (LayerGeometry(3, 5, 6, 5, 3, 1, 1), 4, 0.4, 1.0, 1.0, 8),
    (LayerGeometry(3, 5, 6, 5, 3, 1, 1), 4, 0.4, 0.5, 0.5, 8),
    (LayerGeometry(2, 6, 7, 7, 3, 2, 1), 4, 1.0, 0.7, 0.6, 8),        # stride 2, 100 %
    (LayerGeometry(4, 3, 5, 5, 5, 1, 2), 2, 0.0, 1.0, 1.0, 8),        # 5x5, 0 % (empty packet)
    (LayerGeometry(4, 4, 5, 6, 3, 1, 1, groups=4), 4, 0.5, 0.6, 0.6, 8),   # depthwise
    (LayerGeometry(6, 4, 4, 4, 3, 1, 0, groups=2), 4, 0.3, 1.0, 0.5, 8),   # grouped, no padding
    (LayerGeometry(8, 10, 3, 4), 4, 0.3, 0.6, 0.7, 4),                # 1x1, int4, partial chunk
    (LayerGeometry(5, 7, 1, 9), 8, 0.5, 1.0, 1.0, 8),                 # linear over 9 tokens
    (LayerGeometry(2, 3, 6, 6, 3, 2, 1, planes=8), 4, 0.8, 0.7, 0.7, 8),   # stem bit planes
]


@pytest.mark.parametrize("geom,lanes,density,vp,rp,w_bits", CASES,
                         ids=[f"{c[0].kind}-{i}" for i, c in enumerate(CASES)])
def test_core_matches_golden_and_cycle_model(geom, lanes, density, vp, rp, w_bits):
    r = core_case(geom, lanes=lanes, seed=7, density=density, valid_prob=vp, ready_prob=rp, w_bits=w_bits)
    assert r["match"], r
    assert r["cycles_exact"], r
    if vp == rp == 1.0:
        assert r["busy"] == r["model"] and r["stall_in"] == r["stall_out"] == 0


@settings(max_examples=12, deadline=None)
@given(c_in=st.integers(1, 4), c_out=st.integers(1, 6), h=st.integers(3, 6), w=st.integers(3, 6),
       k=st.sampled_from([1, 2, 3]), stride=st.integers(1, 2), pad=st.integers(0, 2), dw=st.booleans(),
       lanes=st.sampled_from([1, 2, 4]), density=st.sampled_from([0.0, 0.2, 0.6, 1.0]),
       bp=st.booleans(), seed=st.integers(0, 1000))
def test_core_property(c_in, c_out, h, w, k, stride, pad, dw, lanes, density, bp, seed):
    pad = min(pad, k - 1)
    groups = c_in if dw else 1
    geom = LayerGeometry(c_in, c_in if dw else c_out, h, w, k, stride, pad, groups)
    r = core_case(geom, lanes=lanes, seed=seed, density=density,
                  valid_prob=0.6 if bp else 1.0, ready_prob=0.6 if bp else 1.0)
    assert r["match"] and r["cycles_exact"], r


def test_cycles_grow_with_events():
    geom = LayerGeometry(4, 4, 6, 6, 3, 1, 1)
    lo, hi = (core_case(geom, lanes=4, seed=3, density=d) for d in (0.1, 1.0))
    assert lo["match"] and hi["match"]
    assert lo["busy"] < 0.2 * hi["busy"]


def test_plan_rejects_bad_geometry():
    with pytest.raises(ValueError):
        LayerGeometry(3, 4, 5, 5, 3, 1, 3)          # padding >= k
    with pytest.raises(ValueError):
        LayerGeometry(3, 4, 5, 5, 3, groups=2)      # groups must divide channels
    assert CorePlan(LayerGeometry(4, 10, 2, 2), 4).nch == 3


SIMS = [pytest.param(s, marks=pytest.mark.skipif(s not in available_simulators(), reason=f"{s} missing"))
        for s in ("icarus", "verilator")]


@pytest.mark.parametrize("sim", SIMS)
def test_cocotb_core_and_neuron(sim):
    from spiketrack.sim.cocotb_cores import run_cocotb_cases

    r = run_cocotb_cases(sim, seed=0)
    assert r["ok"], r
    assert len(r["passed"]) == 4
