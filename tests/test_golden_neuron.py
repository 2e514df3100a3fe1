"""§IS-7 NI-LIF and §IS-10 mean fusion, checked against the float definition of the model."""

import pytest
import torch

from spiketrack.quant.golden.neuron import D, Decay, decay, fire, mean_fusion, neuron_layer, ni_lif


def test_fire_thresholds_round_half_up_and_clip():
    f = 4  # 1.0 == 16
    u = torch.tensor([-40, 0, 7, 8, 23, 24, 40, 56, 57, 64, 1000])
    # values: -2.5 0 .4375 .5 1.4375 1.5 2.5 3.5 3.56 4 62.5
    assert fire(u, f).tolist() == [0, 0, 0, 1, 1, 2, 3, 4, 4, 4, 4]


def test_fire_is_threshold_count():
    f = 3
    u = torch.arange(-50, 80)
    thresholds = [(2 * j - 1) << (f - 1) for j in range(1, D + 1)]
    count = sum((u >= t).long() for t in thresholds)
    assert torch.equal(fire(u, f), count)


def test_decay_floors_each_term():
    h = torch.tensor([7, -7])
    # beta = 1/2 + 1/4: (7>>1)+(7>>2) = 3+1 ; (-7>>1)+(-7>>2) = -4-2
    assert decay(h, Decay(((1, 1), (1, 2)))).tolist() == [4, -6]
    assert decay(h, Decay(((1, 1), (-1, 3)))).tolist() == [3 - 0, -4 + 1]


def test_ni_lif_soft_reset_and_decay_against_float_recurrence():
    g = torch.Generator().manual_seed(1)
    f_m = 6
    x = torch.randint(-200, 400, (3, 1000), generator=g)
    betas = (Decay(((1, 2),)), Decay(((1, 1), (-1, 3))))
    k, u, n_sat = ni_lif(x, f_m, 16, betas)
    assert n_sat == 0
    # float recurrence with floor after each shift term, spikes subtracted as S = k/D
    scale = 2 ** f_m
    for t in range(3):
        if t == 0:
            ref_u = x[0].double()
        else:
            h = u[t - 1].double() - k[t - 1].double() * scale / D
            ref_u = sum(s * torch.floor(h / 2 ** a) for s, a in betas[t - 1].terms) + x[t].double()
        assert torch.equal(u[t].double(), ref_u)
        ref_k = torch.clamp(torch.floor(ref_u / scale + 0.5), 0, D)
        assert torch.equal(k[t].double(), ref_k)


def test_ni_lif_membrane_saturates_and_counts():
    x = torch.tensor([[30000], [30000]])
    k, u, n_sat = ni_lif(x, 4, 16, (Decay(((1, 1),)),))
    assert int(u[1]) == 32767 and n_sat == 1


def test_ni_lif_rejects_missing_decay_and_small_exponent():
    with pytest.raises(ValueError, match="decay constants"):
        ni_lif(torch.zeros(3, 2, dtype=torch.long), 4, 16, ())
    with pytest.raises(ValueError, match="f_m"):
        ni_lif(torch.zeros(1, 2, dtype=torch.long), 1, 16)


def test_decay_rejects_bad_terms():
    with pytest.raises(ValueError):
        Decay(((1, 0),))
    with pytest.raises(ValueError):
        Decay(((1, 1), (1, 2), (1, 3)))


def test_neuron_layer_requantises_then_adds_residual():
    acc = torch.tensor([[[100, -100, 1 << 20]]])  # T=1, C=1, 3 positions, exponent 6
    res = torch.tensor([[[16, 16, 0]]])            # at f_m = 4
    k, u, n = neuron_layer(acc, 2, 4, 12, residual=res)
    assert u.tolist() == [[[25 + 16, -25 + 16, 2047]]]
    assert k.tolist() == [[[3, 0, 4]]]
    assert n == 1


def test_mean_fusion_rounds_half_up_by_compare():
    k = torch.tensor([[0, 1, 1, 4, 2], [0, 0, 1, 4, 3], [0, 1, 2, 4, 2]])
    # means: 0, .67, 1.33, 4, 2.33
    assert mean_fusion(k).tolist() == [0, 1, 1, 4, 2]
    assert mean_fusion(torch.tensor([[1], [2]])).tolist() == [2]  # 1.5 -> 2
