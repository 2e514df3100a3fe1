"""The golden executor runs an integer network layer by layer with the golden functions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spiketrack.quant.executor import run_network
from spiketrack.quant.golden.memory import attention_acc
from spiketrack.quant.ir import ArtifactError, IntegerNetwork, Layer, TensorType, load_artifact, save_artifact


def _toy(rng):
    w1 = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    w2 = rng.integers(-127, 128, (8, 4, 1, 1)).astype(np.int8)
    return IntegerNetwork(
        layers=[
            Layer("stem", "stem_conv", ["pix"], {"stride": 2, "padding": 1, "groups": 1, "acc_bits": 20, "weight_bits": 8,
                                                  "acc_exp": [10, 11, 10, 9]}, {"weight": w1, "bias": np.zeros(4, np.int32)}),
            Layer("stem_q", "requant", ["stem"], {"shift": [6, 7, 6, 5], "bits": 12}),
            Layer("n0", "neuron", ["stem_q"], {"f_m": 4, "bits": 12, "decays": [[[1, 2]], [[1, 1], [-1, 3]]]}),
            Layer("pw", "conv", ["n0"], {"stride": 1, "padding": 0, "groups": 1, "acc_bits": 14, "weight_bits": 8,
                                         "acc_exp": [9] * 8}, {"weight": w2, "bias": np.arange(8, dtype=np.int32)}),
            Layer("pw_q", "requant", ["pw"], {"shift": 5, "bits": 12}),
            Layer("res", "add", ["pw_q", "pw_q"], {"bits": 12}),
            Layer("n1", "neuron", ["res"], {"f_m": 4, "bits": 12, "decays": [[[1, 2]], [[1, 2]]]}),
            Layer("kv", "memory_build", ["n0", "n1"], {"heads": 2}),
            Layer("r", "retrieve", ["n0", "kv"], {"heads": 2, "sigma": 0}),
            Layer("fuse", "mean_fusion", ["n1"], {}),
        ],
        inputs=["pix"], outputs=["r", "fuse"], meta={"config": "toy"},
        input_types={"pix": TensorType((3, 3, 8, 8), "pixels", 8, False, 0)},
    )


def test_toy_network_matches_composed_reference(tmp_path):
    rng = np.random.default_rng(0)
    net = load_artifact(save_artifact(_toy(rng), tmp_path))
    pix = torch.randint(0, 256, (3, 2, 3, 8, 8))
    res = run_network(net, {"pix": pix}, dump=True)
    # independent float64 check of the stem layer: bit-plane accumulation equals an ordinary conv
    w1 = torch.from_numpy(net.layer("stem").params["weight"]).double()
    ref = F.conv2d(pix.reshape(6, 3, 8, 8).double(), w1, stride=2, padding=1).reshape(3, 2, 4, 4, 4)
    assert torch.equal(res.tensors["stem"].double(), ref)
    n0, n1 = res.tensors["n0"], res.tensors["n1"]
    assert int(n0.min()) >= 0 and int(n0.max()) <= 4
    assert res.outputs["fuse"].shape == (1, 2, 8, 4, 4)
    # memory_build + retrieve on (Q=n0, K=n0, V=n1) is the backbone attention of §IS-8
    t, b = 3, 2
    q = n0.reshape(t * b, 2, 2, 16)
    v = n1.reshape(t * b, 2, 4, 16)
    expect = torch.stack([attention_acc(q[i], q[i], v[i]) for i in range(t * b)]).reshape(t, b, 8, 4, 4)
    assert torch.equal(res.outputs["r"], expect)


def test_saturations_are_counted_per_layer():
    rng = np.random.default_rng(1)
    net = _toy(rng)
    net.layer("res").attrs["bits"] = 6
    res = run_network(net, {"pix": torch.randint(0, 256, (3, 1, 3, 8, 8))})
    assert res.saturations.get("res", 0) > 0


def test_missing_input_and_time_mismatch():
    net = _toy(np.random.default_rng(2))
    with pytest.raises(ValueError, match="missing network inputs: pix"):
        run_network(net, {})
    net.layers.insert(8, Layer("n0_1", "select_time", ["n0"], {"start": 0, "stop": 1}))
    net.layer("r").inputs = ["n0_1", "kv"]
    with pytest.raises(ArtifactError, match="query has 1 timesteps, memory has 3"):
        run_network(net, {"pix": torch.randint(0, 256, (3, 1, 3, 8, 8))})
