"""§IS-5 primitives: round-half-up shifts and counted saturation."""

import pytest
import torch

from spiketrack.quant.golden.arith import bit_width_signed, requantize, saturate, shift_round


def test_shift_round_is_half_up_for_both_signs():
    y = torch.tensor([5, -5, 3, -3, 7, -7, 4, -4])  # /2: 2.5 -2.5 1.5 -1.5 3.5 -3.5 2 -2
    assert shift_round(y, 1).tolist() == [3, -2, 2, -1, 4, -3, 2, -2]


def test_shift_round_matches_floor_of_half_up_exhaustively():
    y = torch.arange(-300, 301)
    for s in range(0, 6):
        expected = [int((v + (1 << s) / 2) // (1 << s)) if s else v for v in y.tolist()]
        assert shift_round(y, s).tolist() == expected


def test_negative_shift_is_exact_left_shift():
    assert shift_round(torch.tensor([3, -3]), -2).tolist() == [12, -12]


def test_per_channel_shift_tensor_equals_scalar_shifts():
    y = torch.randint(-1000, 1000, (4, 3, 5))
    s = torch.tensor([2, 0, -1]).view(1, 3, 1)
    out = shift_round(y, s)
    for c, sc in enumerate([2, 0, -1]):
        assert torch.equal(out[:, c], shift_round(y[:, c], sc))


def test_saturate_clamps_and_counts():
    x, n = saturate(torch.tensor([-200, -128, 0, 127, 300]), 8)
    assert x.tolist() == [-128, -128, 0, 127, 127]
    assert n == 2
    _, n = requantize(torch.tensor([1000]), 2, 8)  # 250 > 127
    assert n == 1


def test_float_tensors_are_refused():
    with pytest.raises(TypeError, match="integer tensor"):
        shift_round(torch.tensor([1.5]), 1)


def test_bit_width_signed():
    assert bit_width_signed(127) == 8 and bit_width_signed(128) == 9
