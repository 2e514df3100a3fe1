"""NeuronUnit vs spiketrack.quant.golden.neuron.neuron_layer: bit-exact levels and saturation counts."""

import pytest
from hypothesis import given, settings, strategies as st

from spiketrack.quant.golden.neuron import Decay
from spiketrack.sim.verify import neuron_case

B1 = Decay(((1, 2),))
B2 = Decay(((1, 1), (-1, 3)))


@pytest.mark.parametrize("kw", [
    dict(c=6, n=5, lanes=4, T=1, shift=6, f_m=4, bits=12, residual=False, betas=()),
    dict(c=6, n=5, lanes=4, T=3, shift=6, f_m=4, bits=12, residual=True, betas=(B1, B2),
         valid_prob=0.6, ready_prob=0.6),
    dict(c=5, n=3, lanes=4, T=4, shift=[3, -1, 8, 0, 5], f_m=3, bits=10, residual=True, betas=(B2, B1, B2)),
    dict(c=5, n=1, lanes=4, T=4, shift=[3, -1, 8, 0, 5], f_m=3, bits=10, residual=False, betas=(B1,) * 3,
         valid_prob=0.5, ready_prob=0.7),                      # 2 beats per map: membrane hazard path
    dict(c=3, n=2, lanes=1, T=2, shift=-2, f_m=2, bits=8, residual=False, betas=(B2,)),
])
def test_neuron_matches_golden(kw):
    r = neuron_case(seed=11, **kw)
    assert r["match"], r
    assert r["cycles_exact"], r


@settings(max_examples=10, deadline=None)
@given(c=st.integers(1, 6), n=st.integers(1, 4), lanes=st.sampled_from([1, 2, 4]), T=st.integers(1, 3),
       shift=st.integers(-2, 9), f_m=st.integers(2, 5), extra=st.integers(3, 8), residual=st.booleans(),
       a1=st.integers(1, 3), bp=st.booleans(), seed=st.integers(0, 999))
def test_neuron_property(c, n, lanes, T, shift, f_m, extra, residual, a1, bp, seed):
    betas = (Decay(((1, a1), (-1, a1 + 2))),) * (T - 1)
    r = neuron_case(c=c, n=n, lanes=lanes, T=T, shift=shift, f_m=f_m, bits=f_m + extra, residual=residual,
                    betas=betas, seed=seed, valid_prob=0.6 if bp else 1.0, ready_prob=0.6 if bp else 1.0)
    assert r["match"] and r["cycles_exact"], r


@pytest.mark.parametrize("kw", [
    dict(c=6, n=5, lanes=4, T=1, shift=3, f_m=2, bits=10, residual=False, betas=()),
    dict(c=5, n=3, lanes=4, T=3, shift=[3, -1, 4, 0, 2], f_m=2, bits=6, residual=True, betas=(B1, B2),
         valid_prob=0.6, ready_prob=0.6),
])
def test_neuron_half_even_matches_golden(kw):
    """Ties-to-even fire (§IS-7) on data where it differs from half-up (exact ties occur)."""
    r = neuron_case(seed=5, rounding="half_even", **kw)
    assert r["rounding_matters"], "no tie with an odd result in the data: the case cannot tell the modes apart"
    assert r["match"] and r["cycles_exact"], r
