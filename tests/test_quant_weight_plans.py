"""Per-layer weight precision (int8 / int4 / mixed), the stored format, and the stem's padding."""

import pytest
import torch

from spiketrack.model import build_model
from spiketrack.quant.compare import compare_with_golden, normalise_pixels
from spiketrack.quant.lower import lower
from spiketrack.quant.qat import QuantConvBN, QuantFormat, mixed_weight_bits, quantize_model, weight_bytes
from tests.test_quant_golden_model import _pixels, _trained_like


def test_mixed_plan_puts_int4_on_dense_1x1_backbone_convs_only():
    q = quantize_model(_trained_like("edge-t1"), QuantFormat(weight_bits="mixed"))
    seen = {4: 0, 8: 0}
    for path, m in q.named_modules():
        if not isinstance(m, QuantConvBN):
            continue
        c = m.conv
        expect = 4 if (tuple(c.kernel_size) == (1, 1) and c.groups == 1 and not path.startswith("head.")) else 8
        assert m.weight_bits == expect, path
        w = m.integer_params()["weight"]
        assert int(w.abs().max()) <= 2 ** (m.weight_bits - 1) - 1, path
        seen[m.weight_bits] += 1
    assert seen[4] > 10 and seen[8] > 10
    wb = weight_bytes(q)
    n = wb["weights"]
    assert n // 2 < wb["bytes"] < n and wb["by_bits"]["4"] + wb["by_bits"]["8"] == wb["bytes"]
    assert wb["by_bits"]["4"] * 2 == sum(m.conv.weight.numel() for m in q.modules()
                                         if isinstance(m, QuantConvBN) and m.weight_bits == 4)


def test_mixed_plan_stays_bit_exact_with_the_golden_model():
    q = quantize_model(_trained_like("edge-t1"), QuantFormat(weight_bits="mixed"))
    net = lower(q)
    zp, xp = _pixels(q.cfg, 4)
    r = compare_with_golden(q.double(), net, zp, xp)
    assert r["mismatches"] == 0 and r["layers"] > 300


def test_custom_plan_and_errors():
    q = quantize_model(_trained_like("edge-t1"), QuantFormat(layer_weight_bits=lambda p, c: 4 if "stem" in p else 8))
    assert q.backbone.stem.conv.weight_bits == 4 and q.quant_format.plan == "custom"
    with pytest.raises(ValueError, match="cannot be stored"):
        q.quant_format.spec()
    with pytest.raises(ValueError, match="weight plan"):
        QuantFormat(weight_bits="int3")
    with pytest.raises(ValueError, match="weight bits must be 8 or 4"):
        quantize_model(build_model("edge-t1"), QuantFormat(layer_weight_bits=lambda p, c: 2))
    assert mixed_weight_bits("head.ctr.out", torch.nn.Conv2d(4, 1, 1)) == 8
    assert mixed_weight_bits("backbone.stages.0.blocks.0.sep.pw1", torch.nn.Conv2d(4, 8, 1)) == 4


def test_format_spec_round_trip_and_requantisation_refused():
    f = QuantFormat(10, 18, "mixed")
    g = QuantFormat.from_spec(f.spec())
    assert g.spec() == f.spec() == {"frac": 10, "bits": 18, "weight_bits": "mixed", "levels": 4}
    with pytest.raises(ValueError, match="lacks bits"):
        QuantFormat.from_spec({"frac": 8, "weight_bits": "8"})
    q = quantize_model(_trained_like("edge-t1"), f)
    assert quantize_model(q).quant_format.spec() == f.spec()  # already quantised: copied as it is
    with pytest.raises(ValueError, match="already quantised"):
        quantize_model(q, QuantFormat())


@torch.no_grad()
def test_black_stem_padding_is_what_the_integer_stem_computes():
    m = _trained_like("edge-t1")
    q = quantize_model(m).double()
    m = m.double()
    _, xp = _pixels(m.cfg, 6)
    x = normalise_pixels(xp)
    yq = q.backbone.stem(x, "search")
    errs = {}
    for pad in ("zero", "black"):
        m.backbone.stem.pad = pad
        yf = m.backbone.stem(x, "search")
        e = yf - yq
        errs[pad] = float((e ** 2).sum() / (yf ** 2).sum())
        border = float(e[..., 0, :].abs().max())
        interior = float(e[..., 4:-4, 4:-4].abs().max())
        errs[pad + "_border"], errs[pad + "_interior"] = border, interior
    # the interior agrees either way (weights and rounding only); the border only with black padding
    assert errs["zero_interior"] == pytest.approx(errs["black_interior"])
    assert errs["zero_border"] > 10 * errs["black_border"]
    assert errs["black"] < errs["zero"] / 5
    with pytest.raises(ValueError, match="stem_pad"):
        import dataclasses

        from spiketrack.model import get_config
        dataclasses.replace(get_config("edge-t1"), stem_pad="grey")
