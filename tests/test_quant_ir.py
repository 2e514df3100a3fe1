"""The integer-network artifact: round trip, validation, and clear errors on broken artifacts."""

import json

import numpy as np
import pytest

from spiketrack.quant.ir import ArtifactError, IntegerNetwork, Layer, load_artifact, save_artifact


def _net():
    w = np.arange(-8, 10, dtype=np.int8).reshape(2, 1, 3, 3)
    return IntegerNetwork(
        layers=[
            Layer("c1", "conv", ["x"], {"stride": 1, "padding": 1, "groups": 1, "acc_bits": 16}, {"weight": w, "bias": np.array([3, -4], dtype=np.int32)}),
            Layer("n1", "neuron", ["c1"], {"f_m": 4, "bits": 12, "shift": [2, 3], "decays": []}),
        ],
        inputs=["x"],
        outputs=["n1"],
        meta={"config": "toy", "D": 4},
    )


def test_round_trip_is_exact(tmp_path):
    save_artifact(_net(), tmp_path / "a")
    net = load_artifact(tmp_path / "a")
    assert [l.name for l in net.layers] == ["c1", "n1"]
    assert net.layer("c1").params["weight"].dtype == np.int8
    assert np.array_equal(net.layer("c1").params["weight"], _net().layer("c1").params["weight"])
    assert net.layer("n1").attrs["shift"] == [2, 3]
    assert net.meta["config"] == "toy"


def test_corrupted_params_are_detected(tmp_path):
    save_artifact(_net(), tmp_path)
    p = tmp_path / "params.npz"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_artifact(tmp_path)


def test_version_mismatch_is_reported(tmp_path):
    save_artifact(_net(), tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="version 99 is not supported"):
        load_artifact(tmp_path)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ArtifactError, match="missing manifest.json"):
        load_artifact(tmp_path)
    save_artifact(_net(), tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(tmp_path)


def test_float_parameters_and_attributes_are_refused():
    net = _net()
    net.layers[0].params["weight"] = np.zeros((2, 1, 3, 3), dtype=np.float32)
    with pytest.raises(ArtifactError, match="must be an integer array"):
        net.validate()
    net = _net()
    net.layers[1].attrs["scale"] = 0.5
    with pytest.raises(ArtifactError, match="is a float"):
        net.validate()


def test_unsupported_op_and_dangling_input():
    net = _net()
    net.layers.append(Layer("m", "matmul", ["n1"]))
    with pytest.raises(ArtifactError, match="unsupported op 'matmul'"):
        net.validate()
    net = _net()
    net.layers[1].inputs = ["nope"]
    with pytest.raises(ArtifactError, match="reads 'nope'"):
        net.validate()
