"""Fake-quant primitives agree with the integer golden functions."""

import torch

from spiketrack.quant.fake_quant import FixedPoint, nearest_shift_add, round_half_up_ste, shift_add_candidates
from spiketrack.quant.golden.arith import requantize


def test_fixed_point_equals_golden_requantize():
    g = torch.Generator().manual_seed(0)
    acc = torch.randint(-(1 << 20), 1 << 20, (5000,), generator=g)
    fq = FixedPoint(bits=12, frac=4).eval()
    y = fq(acc.double() / 2 ** 9)  # accumulator at exponent 9 -> exponent 4
    ref, n = requantize(acc, 9 - 4, 12)
    assert torch.equal(y * 2 ** 4, ref.double())
    assert fq.saturations == n > 0


def test_round_half_up_gradient_is_identity():
    x = torch.tensor([0.5, 1.5, -0.5], requires_grad=True)
    y = round_half_up_ste(x)
    assert y.tolist() == [1.0, 2.0, 0.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_nearest_shift_add():
    assert nearest_shift_add(0.25).terms == ((1, 2),)
    assert nearest_shift_add(0.3).terms == ((1, 2), (1, 4))  # 0.3125, the closest two-term constant
    assert nearest_shift_add(0.74).terms == ((1, 1), (1, 2))  # 0.75
    assert all(1 <= len(d.terms) <= 2 and 0 < d.value < 1 for d in shift_add_candidates())


def test_calibration_picks_finest_grid_that_fits():
    fq = FixedPoint(bits=8, frac=0, max_frac=10)
    fq.calibrating = True
    fq(torch.tensor([3.2, -1.0]))
    assert fq.freeze() == 5  # 3.2 * 32 = 102.4 <= 127, 3.2 * 64 > 127
