"""The paper variants' integer forms: non-power-of-two attention scales (§IS-12) and bilinear
upsampling (§IS-13); golden equals Brevitas on a small network of the paper's structure."""

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spiketrack.model import build_model, get_config
from spiketrack.model.layers import Upsample
from spiketrack.quant.compare import compare_with_golden
from spiketrack.quant.executor import run_network
from spiketrack.quant.fake_quant import SCALE_FRAC, scale_constant
from spiketrack.quant.golden.arith import csd_terms, times_csd
from spiketrack.quant.golden.resample import bilinear_taps, upsample_bilinear
from spiketrack.quant.ir import ArtifactError, load_artifact, save_artifact
from spiketrack.quant.lower import lower
from spiketrack.quant.qat import QuantFormat, QuantUpsample, UnsupportedLayerError, quantize_model
from test_quant_golden_model import _pixels, _trained_like


def small_paper(T: int = 1, rounding: str = "half_even", size: int = 32):
    """paper-s256-tT with the paper's head split (8 heads of 4/8/16/24 channels -> 2 heads of the
    same d_h), bilinear MRM upsampling by 4 and 2, one block per stage: seconds on a CPU."""
    return dataclasses.replace(get_config(f"paper-s256-t{T}", rounding=rounding), dims=(8, 16, 32, 48), heads=2,
                               depths=(1, 1, 1, 1), mrm_sites=((1, 0), (2, 0), (3, 0), (4, 0)), head_channels=16,
                               search_size=size, template_size=size)


_firing = _trained_like  # random weights, BatchNorms that make spikes fire


# --------------------------------------------------------------------------- §IS-12 constants
def test_csd_terms_are_non_adjacent_and_exact():
    for m in range(1, 5000):
        t = csd_terms(m)
        assert sum(s << a for s, a in t) == m
        shifts = [a for _, a in t]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:])), (m, t)
        assert all(s in (1, -1) for s, _ in t)
    assert csd_terms(181) == [[1, 0], [1, 2], [-1, 4], [-1, 6], [1, 8]]   # 2·8**-0.5 ≈ 181 · 2**-8
    assert csd_terms(209) == [[1, 0], [1, 4], [-1, 6], [1, 8]]            # 2·24**-0.5 ≈ 209 · 2**-9
    y = torch.randint(-2**20, 2**20, (1000,))
    for m in (1, 3, 181, 209, 4095):
        assert torch.equal(times_csd(y, csd_terms(m)), y * m)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            csd_terms(bad)


def test_scale_constant():
    for d_h, want in ((1, (1, -1)), (4, (1, 0)), (16, (1, 1)), (64, (1, 2)), (8, (181, 8)), (24, (209, 9))):
        assert scale_constant(2 / math.sqrt(d_h)) == want, d_h
    for d_h in range(1, 200):
        s = 2 / math.sqrt(d_h)
        m, k = scale_constant(s)
        assert m % 2 == 1 and abs(m * 2.0 ** -k - s) <= 2.0 ** -(SCALE_FRAC + 1)
    for bad in (0.0, -0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive and finite"):
            scale_constant(bad)


# --------------------------------------------------------------------------- §IS-13 bilinear
@pytest.mark.parametrize("p", [2, 4, 8])
def test_bilinear_golden_equals_torch_rounded(p):
    g = torch.Generator().manual_seed(p)
    x = torch.randint(-2**15, 2**15, (2, 3, 5, 7), generator=g)
    x[0, 0] = 2**15 - 1  # extremes: a convex combination never saturates
    x[0, 1] = -2**15
    y, n = upsample_bilinear(x, p, 16)
    ref = F.interpolate(x.double() / 256, scale_factor=p, mode="bilinear", align_corners=False)
    assert torch.equal(y.double(), torch.floor(ref * 256 + 0.5)) and n == 0
    lo, hi, wl, wh = bilinear_taps(6, p)
    assert torch.equal(wl + wh, torch.full_like(wl, 2 * p)) and int(wl.min()) >= 1 and int(wh.min()) >= 1
    assert int(lo.min()) == 0 and int(hi.max()) == 5


def test_bilinear_refuses_other_factors():
    with pytest.raises(ValueError, match="power of two"):
        upsample_bilinear(torch.zeros(1, 1, 2, 2, dtype=torch.int64), 3, 16)
    with pytest.raises(UnsupportedLayerError, match="bilinear upsampling by 3"):
        QuantUpsample(Upsample(3, "bilinear"), QuantFormat())


# --------------------------------------------------------------------------- whole network
@pytest.mark.parametrize("rounding", ["half_even", "half_up"])
def test_golden_equals_brevitas_on_paper_structure(rounding):
    q = quantize_model(_firing(small_paper(1, rounding)))
    net = lower(q)
    ops = [l.op for l in net.layers]
    assert "mul_const" in ops and "upsample_bilinear" in ops
    assert sorted({l.attrs["factor"] for l in net.layers if l.op == "upsample_bilinear"}) == [2, 4]
    assert {l.attrs["frac"] for l in net.layers if l.op == "mul_const"} == {8, 9}   # d_h = 8 and 24
    zp, xp = _pixels(q.cfg, 1)
    r = compare_with_golden(q.double(), net, zp, xp)
    assert r["mismatches"] == 0, r["mismatching_layers"][:5]
    assert r["unmatched_layers"] == [] and r["layers"] > 250
    res = run_network(net, {"template_pixels": zp, "search_pixels": xp}, dump=True)
    rates = [float(res.tensors[l.name].double().mean()) for l in net.layers if l.op == "neuron"]
    assert np.mean(rates) > 0.1   # spikes fire: equality is not trivial
    for l in net.layers:  # the scaled retrievals and the upsamplings carry real values
        if l.op in ("mul_const", "upsample_bilinear"):
            assert int(res.tensors[l.name].abs().max()) > 0, l.name


def test_artifact_round_trip_and_schema(tmp_path):
    net = lower(quantize_model(_firing(small_paper(1))))
    back = load_artifact(save_artifact(net, tmp_path / "a"))
    assert [(l.name, l.op, l.attrs) for l in back.layers] == [(l.name, l.op, l.attrs) for l in net.layers]
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    layer = next(l for l in man["layers"] if l["op"] == "mul_const")
    layer["attrs"]["terms"] = [[2, 0]]
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ArtifactError, match="terms"):
        load_artifact(tmp_path / "a")


def test_t3_softmax_gate_is_still_refused():
    with pytest.raises(UnsupportedLayerError, match="softmax temporal gate"):
        quantize_model(build_model(small_paper(3)))


# --------------------------------------------------------------------------- edge unchanged
#: SHA-256 of the shipped float edge-t3's post-training lowering (layers, attributes, parameters, meta)
#: with the default format, taken before the paper forms were added: its artifact must stay bit-identical.
SHIPPED_EDGE_T3_LOWERING = "1bd53d4e635824be69e7196fddcb9a0a7954e4615d46f971538e00016b37226e"
#: The same for the shipped default, the int8 QAT edge-t3 (edge-t3-qat8.pt), taken when it was made
#: the default (its artifact then equalled the one measured in docs/quant.md, build/qat-default).
SHIPPED_QAT_DEFAULT_LOWERING = "065130ec5442334668ce704d0b2b1757844354206ad94eda2135fc32d79d94f6"


def lowering_digest(net) -> str:
    h = hashlib.sha256()
    for l in net.layers:
        h.update(json.dumps([l.name, l.op, l.inputs, l.attrs], sort_keys=True).encode())
        for k in sorted(l.params):
            a = l.params[k]
            h.update(f"{k}{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    h.update(json.dumps(net.meta, sort_keys=True).encode())
    return h.hexdigest()


def test_shipped_edge_lowering_is_unchanged():
    from spiketrack.model.checkpoint import model_from_checkpoint

    model, _ = model_from_checkpoint(None, float_default=True)
    net = lower(quantize_model(model.eval(), QuantFormat()))
    assert not any(l.op in ("mul_const", "upsample_bilinear") for l in net.layers)
    assert lowering_digest(net) == SHIPPED_EDGE_T3_LOWERING
    qat, _ = model_from_checkpoint(None)
    net = lower(quantize_model(qat.eval(), QuantFormat()))
    assert lowering_digest(net) == SHIPPED_QAT_DEFAULT_LOWERING


# --------------------------------------------------------------------------- the real size (slow)
@pytest.mark.slow
def test_paper_s256_t1_golden_equals_brevitas():
    """The whole paper-s256-t1 (random weights, firing BatchNorms, half_even as an import) at 256x256."""
    cfg = get_config("paper-s256-t1", rounding="half_even")
    q = quantize_model(_firing(cfg))
    net = lower(q)
    zp, xp = _pixels(cfg, 2)
    r = compare_with_golden(q.double(), net, zp, xp)
    assert r["mismatches"] == 0, r["mismatching_layers"][:5]
    assert r["unmatched_layers"] == [] and r["layers"] > 700
