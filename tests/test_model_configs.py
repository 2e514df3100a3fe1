"""Variant registry, parameter budgets (spec §2.2), edge constraints and `spiketrack info`."""

import dataclasses
import json
import math

import pytest
import torch

from spiketrack.cli import main
from spiketrack.model import SpikeTrackConfig, build_model, get_config, list_configs
from spiketrack.model.flops import count_params
from spiketrack.model.layers import AvgPool, Retrieve, Upsample
from spiketrack.model.mrm import GateFusion, MeanFusion

SPEC_PARAMS_M = {  # spec §2.2: (total, without positional embeddings)
    "paper-s256-t1": (11.76, 9.34), "paper-s256-t3": (12.72, 10.30),
    "paper-b256-t1": (36.66, 31.95), "paper-b256-t3": (40.08, 35.37),
    "paper-b384-t1": (43.35, 32.75), "paper-b384-t3": (46.77, 36.17),
}


@pytest.mark.parametrize("name", list(SPEC_PARAMS_M))
def test_paper_parameter_counts(name):
    torch.manual_seed(0)
    total, no_pos = count_params(build_model(name))
    want_total, want_no_pos = SPEC_PARAMS_M[name]
    assert abs(total / 1e6 / want_total - 1) < 0.05, total
    assert abs(no_pos / 1e6 / want_no_pos - 1) < 0.05, no_pos


def test_edge_budget_and_constraints():
    t1, t3 = get_config("edge-t1"), get_config("edge-t3")
    assert dataclasses.replace(t1, name="x", timesteps=3) == dataclasses.replace(t3, name="x")
    for cfg in (t1, t3):
        assert cfg.search_size == cfg.template_size == 128 and cfg.feat_size == 8 and cfg.grid == 8
        assert cfg.fusion == "mean" and cfg.upsample == "nearest" and not cfg.ann
        assert cfg.mrm_sites == ((2, 2), (3, 2), (4, 1)) and cfg.depths[2:] == (2, 1)
        m = build_model(cfg)
        total, _ = count_params(m)
        assert total <= 600_000, total
        mods = list(m.modules())
        retrieves = [r for r in mods if isinstance(r, Retrieve)]
        assert len(retrieves) == 2 * 3 + 3  # 2 per MRM + one per attention block
        for r in retrieves:  # attention scale 2 d_h^-0.5 is an exact power of two
            assert math.log2(r.scale) == int(math.log2(r.scale))
        for d in cfg.dims[2:]:
            assert cfg.dim_per_head(d) in (4, 16, 64)
        assert not any(isinstance(x, GateFusion) for x in mods)
        assert sum(isinstance(x, MeanFusion) for x in mods) == 3
        pools = [x.p for x in mods if isinstance(x, AvgPool)]
        assert pools and all(p & (p - 1) == 0 for p in pools)
        assert all(x.mode == "nearest" for x in mods if isinstance(x, Upsample))


def _head_widths(model):
    return {b: [c.conv.weight.shape[0] for c in getattr(model.head, b).convs] + [getattr(model.head, b).out.weight.shape[0]]
            for b in ("ctr", "offset", "size")}


def test_head_taper_reference_and_edge_floor():
    # paper variants: the reference taper C -> C/2 -> C/4 -> C/8; edge: floored at 16 channels so the
    # last spiking layer before the 1x1 box convs is not a 4-channel, 5-level bottleneck
    paper = _head_widths(build_model("paper-s256-t1"))
    assert paper == {"ctr": [192, 96, 48, 24, 1], "offset": [192, 96, 48, 24, 2], "size": [192, 96, 48, 24, 2]}
    edge = _head_widths(build_model("edge-t1"))
    assert edge == {"ctr": [32, 16, 16, 16, 1], "offset": [32, 16, 16, 16, 2], "size": [32, 16, 16, 16, 2]}
    narrow = _head_widths(build_model(dataclasses.replace(get_config("edge-t1"), head_min_width=1)))
    assert narrow["size"] == [32, 16, 8, 4, 2]


def test_ann_twin_naming():
    a = get_config("edge-t3-ann")
    assert a.ann and a.name == "edge-t3-ann"
    assert get_config("edge-t3", ann=True) == a
    assert get_config("edge-t3-ann", ann=False) == get_config("edge-t3")
    assert "edge-t3-ann" in list_configs() and "paper-s256-t1" in list_configs()
    assert isinstance(get_config("edge-t1"), SpikeTrackConfig)


def test_unknown_config():
    with pytest.raises(ValueError, match=r"unknown config 'edge-t9'.*valid: .*edge-t3"):
        get_config("edge-t9")
    with pytest.raises(ValueError, match=r"unknown config 'foo'"):
        build_model("foo")
    with pytest.raises(ValueError, match=r"timesteps must be 1..3"):
        get_config("edge-t3", timesteps=4)


def test_info_json(capsys):
    assert main(["info", "--config", "edge-t3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"config", "params", "params_no_pos", "search_macs", "template_macs", "timesteps"}
    assert d["config"] == "edge-t3" and d["timesteps"] == 3
    assert 0 < d["params_no_pos"] < d["params"] <= 600_000
    assert 1e7 < d["search_macs"] < d["template_macs"]  # 3 template timesteps > 1 search step
    assert main(["info", "--config", "edge-t3"]) == 0
    assert "MACs per search frame" in capsys.readouterr().out
    assert main(["info", "--config", "nope"]) == 2
    assert "unknown config 'nope'" in capsys.readouterr().err


def test_paper_macs_match_spec():
    """Spec §7.4: S256-T1 search convs 3.03 G + head 0.42 G (+ ~0.1 G matmuls); template 2.60 G."""
    from spiketrack.model.flops import model_macs

    r = model_macs(build_model("paper-s256-t1"))
    assert 3.45e9 < r["search_macs"] < 3.65e9
    assert 2.55e9 < r["template_macs"] < 2.75e9
