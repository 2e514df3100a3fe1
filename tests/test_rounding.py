"""Fire rounding half_up / half_even: float NI-LIF, golden fire, config and checkpoints (§IS-7)."""

import pytest
import torch

from spiketrack.cli import UserError
from spiketrack.model import build_model, get_config
from spiketrack.model.neuron import NILIF
from spiketrack.quant.golden.neuron import Decay, fire, ni_lif


def test_float_neuron_ties():
    u = torch.tensor([[0.5, 1.5, 2.5, 3.5, 4.5, -0.5, 0.49, 2.51, 1.0]])
    up = NILIF(rounding="half_up")(u) * 4
    even = NILIF(rounding="half_even")(u) * 4
    assert up.tolist() == [[1, 2, 3, 4, 4, 0, 0, 3, 1]]
    assert even.tolist() == [[0, 2, 2, 4, 4, 0, 0, 3, 1]]
    assert torch.equal(even, torch.round(u.clamp(0, 4)))   # the reference: torch.round


def test_half_even_keeps_the_straight_through_gradient():
    u = torch.tensor([[0.5, 2.5, 5.0, -1.0]], requires_grad=True)
    NILIF(rounding="half_even")(u).sum().backward()
    assert u.grad.tolist() == [[0.25, 0.25, 0.0, 0.0]]


@pytest.mark.parametrize("f_m", [2, 3, 5, 8])
def test_golden_fire_is_the_float_rounding(f_m):
    u = torch.arange(-3 << f_m, 6 << f_m, dtype=torch.int64)
    real = u.double() / 2 ** f_m
    assert torch.equal(fire(u, f_m, "half_even").double(), torch.round(real).clamp(0, 4))
    assert torch.equal(fire(u, f_m, "half_up").double(), torch.floor(real + 0.5).clamp(0, 4))
    assert torch.equal(fire(u, f_m), fire(u, f_m, "half_up"))
    with pytest.raises(ValueError, match="rounding"):
        fire(u, f_m, "nearest")


def test_golden_ni_lif_half_even_equals_float_neuron():
    """Multi-step NI-LIF: integer golden == float NILIF on a grid where every tie occurs (beta = 1/4)."""
    f_m = 4
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-40, 120, (3, 2000), generator=g)
    k, _, _ = ni_lif(x, f_m, 16, (Decay(),) * 2, "half_even")
    n = NILIF(rounding="half_even").double()
    n.decay_logit.data.fill_(float(torch.logit(torch.tensor(0.25, dtype=torch.float64))))
    s = n(x.double() / 2 ** f_m) * 4
    # the float decay multiplies exactly; the integer one floors 2**-2 * h: compare where no flooring occurs
    assert torch.equal(k[0].double(), s[0])
    h = (x[0] - (k[0] << (f_m - 2)))
    exact = (h % 4 == 0)
    assert torch.equal(k[1][exact].double(), s[1][exact])


def test_config_field():
    assert get_config("edge-t3").rounding == "half_up"
    cfg = get_config("paper-s256-t1", rounding="half_even")
    assert {m.rounding for m in build_model(get_config("edge-t1", rounding="half_even")).modules()
            if isinstance(m, NILIF)} == {"half_even"}
    assert cfg.rounding == "half_even"
    with pytest.raises(ValueError, match="rounding must be one of half_up, half_even"):
        get_config("edge-t3", rounding="even")


def test_checkpoint_keeps_rounding_and_cli_overrides(tmp_path):
    from spiketrack.model.checkpoint import make_payload, model_from_checkpoint, save_checkpoint_atomic

    model = build_model(get_config("edge-t1", rounding="half_even"))
    path = save_checkpoint_atomic(tmp_path / "c.pt", make_payload(model))
    assert model_from_checkpoint(path)[0].cfg.rounding == "half_even"
    m2, _ = model_from_checkpoint(path, rounding="half_up")
    assert m2.cfg.rounding == "half_up" and all(m.rounding == "half_up" for m in m2.modules() if isinstance(m, NILIF))
    with pytest.raises(UserError, match="not a behaviour field"):
        model_from_checkpoint(path, dims=(1, 2, 3, 4))
