"""NI-LIF neuron, its ANN twin and the firing-rate monitor."""

import math

import pytest
import torch

from spiketrack.model.neuron import NILIF, FiringRateMonitor, ReLUNeuron, round_half_up


def _t(*v):
    return torch.tensor(v, dtype=torch.float32)


def test_levels_and_clipping():
    n = NILIF()
    x = torch.linspace(-3, 8, 1001).view(1, -1)
    s = n(x)
    assert set((s * 4).unique().tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert torch.all(s[x < 0.5] == 0) and torch.all(s[x >= 3.5] == 1)


def test_round_half_up_differs_from_torch_round():
    x = _t(0.5, 1.5, 2.5, 3.5, 0.49999, 2.4999, -0.5)
    assert round_half_up(x).tolist() == [1, 2, 3, 4, 0, 2, 0]
    assert torch.round(_t(0.5, 2.5)).tolist() == [0, 2]  # half-to-even: what we must not do
    s = NILIF()(_t(0.5, 1.5, 2.5, 3.5, 0.49).view(1, -1))
    assert (s * 4).tolist() == [[1, 2, 3, 4, 0]]


def test_soft_reset_and_decay():
    n = NILIF()
    for t in (1, 2):
        assert math.isclose(float(n.beta(t).detach()), 0.25, rel_tol=1e-6)
    # U0 = 3 -> k=3, S=0.75, H0 = 2.25; U1 = 0.25*2.25 + 1 = 1.5625 -> k=2, S=0.5, H1=1.0625;
    # U2 = 0.25*1.0625 + 0 = 0.265625 -> 0
    s = n(_t(3.0, 1.0, 0.0).view(3, 1))
    assert (s.view(-1) * 4).tolist() == [3, 2, 0]
    # the reset subtracts the normalised spike S (not k): U0 = 2 -> S = 0.5, H = 1.5;
    # with beta_1 = 1/3 (set via the logit) U1 = 0.5 + 1.0 = 1.5 -> k = 2 (half up)
    with torch.no_grad():
        n.decay_logit[0] = math.log(0.5)  # sigmoid -> 1/3
    s = n(_t(2.0, 1.0).view(2, 1))
    assert (s.view(-1) * 4).tolist() == [2, 2]
    # second slot used at t=2
    with torch.no_grad():
        n.decay_logit[:] = torch.tensor([-20.0, 20.0])  # beta1 ~ 0, beta2 ~ 1
    s = n(_t(3.0, 0.0, 0.0).view(3, 1))
    assert (s.view(-1) * 4).tolist() == [3, 0, 0]
    s = n(_t(0.0, 2.0, 0.0).view(3, 1))  # H1 = 1.5 carried with beta2 ~ 1 -> U2 = 1.5 -> 2
    assert (s.view(-1) * 4).tolist() == [0, 2, 2]


def test_gradient_window():
    u = _t(-0.5, 0.0, 1.3, 4.0, 4.5).view(1, -1).requires_grad_()
    NILIF()(u).sum().backward()
    assert u.grad.view(-1).tolist() == [0.0, 0.25, 0.25, 0.25, 0.0]


def test_decay_gets_gradient_only_with_time():
    n = NILIF()
    x = (torch.rand(3, 4, 8) * 4).requires_grad_()
    n(x).sum().backward()
    assert n.decay_logit.grad is not None and n.decay_logit.grad.abs().sum() > 0
    n.zero_grad()
    y = n(x[:1]).sum()
    assert y.grad_fn is not None
    y.backward()
    assert n.decay_logit.grad is None or torch.all(n.decay_logit.grad == 0)


def test_too_many_timesteps():
    with pytest.raises(ValueError, match="T=4 timesteps"):
        NILIF()(torch.zeros(4, 2, 3))


def test_stateless_t1_ignores_decay():
    n = NILIF()
    x = torch.randn(1, 2, 5) * 3
    a = n(x)
    with torch.no_grad():
        n.decay_logit.fill_(5.0)
    assert torch.equal(a, n(x))
    assert torch.equal(a, round_half_up(x.clamp(0, 4)) / 4)


def test_overridable_decay_and_quantize():
    class Shift(NILIF):
        def decay(self, h, t):
            return h / 2  # e.g. a shift-add replacement

    s = Shift()(_t(3.0, 0.0).view(2, 1))  # H0 = 2.25 -> U1 = 1.125 -> 1
    assert (s.view(-1) * 4).tolist() == [3, 1]


def test_ann_twin_is_continuous_and_stateless():
    n = ReLUNeuron()
    x = _t(-1.0, 0.3, 2.2, 9.0).view(1, -1)
    assert torch.allclose(n(x), _t(0.0, 0.075, 0.55, 1.0).view(1, -1))
    x3 = torch.rand(3, 5) * 4
    assert torch.allclose(n(x3), x3 / 4)


def test_firing_rate_monitor():
    net = torch.nn.Sequential(NILIF(), torch.nn.Identity(), NILIF())
    x = torch.full((3, 2, 4), 2.0)  # U0 = 2 -> k=2; U1 = 0.25*1.5 + 2 = 2.375 -> 2; ...
    with FiringRateMonitor(net) as mon:
        net(x)
    r = mon.rates()
    assert set(r) == {"0", "2"}
    assert len(r["0"]) == 3 and r["0"][0] == pytest.approx(2.0)
    assert all(0 <= v <= 4 for vs in r.values() for v in vs)
    net(x)  # hooks removed: no change
    assert mon.rates() == r
