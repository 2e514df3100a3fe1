"""The golden integer model equals the Brevitas quantisation-aware model, layer by layer, exactly."""

import numpy as np
import pytest
import torch

from spiketrack.model import build_model
from spiketrack.quant.compare import compare_with_golden
from spiketrack.quant.executor import run_network
from spiketrack.quant.ir import OPS, load_artifact, save_artifact
from spiketrack.quant.lower import lower
from spiketrack.quant.qat import QuantFormat, UnsupportedLayerError, quantize_model
from spiketrack.quant.tracking import tracking_model


def _trained_like(name: str, seed: int = 0):
    """A float model with non-trivial BN statistics, so spikes fire at realistic rates."""
    from spiketrack.sim.reduced import firing_batchnorm

    torch.manual_seed(seed)
    return firing_batchnorm(build_model(name).eval(), seed)


def _pixels(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    zp = torch.randint(0, 256, (cfg.timesteps, 1, 3, cfg.template_size, cfg.template_size), generator=g)
    xp = torch.randint(0, 256, (1, 1, 3, cfg.search_size, cfg.search_size), generator=g)
    return zp, xp


@pytest.mark.parametrize("name", ["edge-t1", "edge-t3"])
def test_golden_equals_brevitas_on_every_layer(name):
    q = quantize_model(_trained_like(name))
    net = lower(q)
    zp, xp = _pixels(q.cfg, 1)
    r = compare_with_golden(q.double(), net, zp, xp)
    assert r["mismatches"] == 0, r["mismatching_layers"][:5]
    assert r["unmatched_layers"] == []
    assert r["layers"] > 300 and r["elements"] > 10**6
    # spikes really fire: otherwise equality would be trivial
    res = run_network(net, {"template_pixels": zp, "search_pixels": xp}, dump=True)
    rates = [float(res.tensors[l.name].double().mean()) for l in net.layers if l.op == "neuron"]
    assert np.mean(rates) > 0.1 and max(rates) > 1.0
    if name == "edge-t3":
        assert any(l.op == "mean_fusion" for l in net.layers)
        assert any(l.attrs.get("decays") for l in net.layers if l.op == "neuron")


def test_search_from_cached_memories_equals_full_run():
    q = quantize_model(_trained_like("edge-t3", 2))
    net = lower(q)
    zp, xp = _pixels(q.cfg, 3)
    full = run_network(net, {"template_pixels": zp, "search_pixels": xp})
    mems = {n: full.outputs[n] for n in net.meta["memories"]}
    xp2 = torch.randint(0, 256, xp.shape, generator=torch.Generator().manual_seed(4))
    heads = [net.meta[k] for k in ("score", "size", "offset")]
    cached = run_network(net, {"search_pixels": xp, **mems}, outputs=heads)
    for h in heads:
        assert torch.equal(cached.outputs[h], full.outputs[h])
    # a different search frame never changes the memories
    other = run_network(net, {"template_pixels": zp, "search_pixels": xp2})
    for n in net.meta["memories"]:
        assert torch.equal(other.outputs[n], full.outputs[n])


def test_integer_network_has_no_float_and_multiplies_only_spike_levels(tmp_path):
    net = load_artifact(save_artifact(lower(quantize_model(_trained_like("edge-t3"))), tmp_path))
    producers = {l.name: l for l in net.layers}
    level_ops = {"neuron", "mean_fusion"}

    def is_spike(name):  # levels 0..D: a neuron output, or a time slice / concat of spike tensors
        layer = producers.get(name)
        if layer is None:
            return False
        if layer.op in ("select_time", "concat_time", "repeat_time"):
            return all(is_spike(s) for s in layer.inputs)
        return layer.op in level_ops

    for layer in net.layers:
        assert layer.op in OPS
        for arr in net.params_of(layer).values():
            assert arr.dtype.kind in "iu", (layer.name, arr.dtype)
        if layer.op == "conv":
            assert is_spike(layer.inputs[0]), f"{layer.name} multiplies a non-spike input"
        if layer.op == "memory_build":
            assert all(is_spike(s) for s in layer.inputs), layer.name
        if layer.op == "retrieve":
            assert is_spike(layer.inputs[0]) and producers[layer.inputs[1]].op == "memory_build", layer.name
        if layer.op == "stem_conv":
            assert layer.inputs == ["template_pixels"] or layer.inputs == ["search_pixels"]
    assert sum(l.op == "stem_conv" for l in net.layers) == 2  # one per branch, shared weights
    stems = [l for l in net.layers if l.op == "stem_conv"]
    assert stems[1].attrs["params_from"] == stems[0].name


def test_unsupported_layers_are_refused():
    import dataclasses

    from spiketrack.model import get_config

    cfg = get_config("edge-t3")
    with pytest.raises(UnsupportedLayerError, match="softmax temporal gate"):
        quantize_model(build_model(dataclasses.replace(cfg, fusion="gate")))
    with pytest.raises(UnsupportedLayerError, match="softmax temporal gate"):  # T1 never runs its gate; T3 does
        quantize_model(build_model("paper-s256-t3"))
    with pytest.raises(UnsupportedLayerError, match="ANN twin"):
        quantize_model(build_model("edge-t3-ann"))
    with pytest.raises(ValueError, match="weight bits"):
        QuantFormat(weight_bits=6)


def test_saturation_is_counted_with_a_narrow_stream():
    q = quantize_model(_trained_like("edge-t1"), QuantFormat(frac=8, bits=9))
    net = lower(q)
    zp, xp = _pixels(q.cfg, 5)
    res = run_network(net, {"template_pixels": zp, "search_pixels": xp})
    assert sum(res.saturations.values()) > 0
    r = compare_with_golden(q.double(), net, zp, xp)
    assert r["mismatches"] == 0 and r["saturations"] > 0  # saturation is part of the semantics, both sides


def test_tracking_model_matches_float_interface():
    m = _trained_like("edge-t1")
    tm = tracking_model(m)
    cfg = m.cfg
    z = torch.randn(1, 1, 3, cfg.template_size, cfg.template_size)
    x = torch.randn(1, 3, cfg.search_size, cfg.search_size)
    out = tm.encode_search(x, tm.encode_template(z))
    boxes, score = tm.decode_box(out)
    assert boxes.shape == (1, 4) and torch.isfinite(boxes).all() and 0 < float(score) < 1
