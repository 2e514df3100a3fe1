"""SpikeEncoder: the event packet of hw.events (skip zeros, last, empty) and its exact cycle model."""

import pytest
from hypothesis import given, settings, strategies as st

from spiketrack.sim.verify import encoder_case


@pytest.mark.parametrize("c,n,width,density,vp,rp", [
    (5, 6, 4, 0.3, 1.0, 1.0), (5, 6, 4, 0.3, 0.5, 0.5), (8, 5, 8, 0.0, 0.6, 0.6),
    (3, 4, 4, 1.0, 1.0, 0.4), (16, 4, 8, 0.1, 0.7, 0.7), (1, 1, 1, 1.0, 1.0, 1.0),
])
def test_encoder_events_and_cycles(c, n, width, density, vp, rp):
    r = encoder_case(c=c, n=n, width=width, density=density, seed=5, valid_prob=vp, ready_prob=rp)
    assert r["match"], r
    assert r["cycles_exact"], r


def test_encoder_cycles_scale_with_events():
    lo = encoder_case(c=16, n=16, width=8, density=0.1, seed=1)
    hi = encoder_case(c=16, n=16, width=8, density=1.0, seed=1)
    assert lo["match"] and hi["match"]
    assert lo["busy"] < 0.2 * hi["busy"]


@settings(max_examples=12, deadline=None)
@given(c=st.integers(1, 10), n=st.integers(1, 6), width=st.sampled_from([1, 2, 4, 8]),
       density=st.sampled_from([0.0, 0.1, 0.5, 1.0]), bp=st.booleans(), seed=st.integers(0, 999))
def test_encoder_property(c, n, width, density, bp, seed):
    r = encoder_case(c=c, n=n, width=width, density=density, seed=seed,
                     valid_prob=0.5 if bp else 1.0, ready_prob=0.5 if bp else 1.0)
    assert r["match"] and r["cycles_exact"], r
