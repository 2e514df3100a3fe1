"""The integer-network artifact: round trip, validation, and clear errors on broken artifacts."""

import json

import numpy as np
import pytest

from spiketrack.quant.ir import FORMAT_VERSION, ArtifactError, IntegerNetwork, Layer, TensorType, load_artifact, save_artifact


def _net():
    w = np.arange(-8, 10, dtype=np.int8).reshape(2, 1, 3, 3)
    return IntegerNetwork(
        layers=[
            Layer("c1", "conv", ["x"], {"stride": 1, "padding": 1, "groups": 1, "acc_bits": 16, "weight_bits": 8,
                                        "acc_exp": [6, 7]}, {"weight": w, "bias": np.array([3, -4], dtype=np.int32)}),
            Layer("q1", "requant", ["c1"], {"shift": [2, 3], "bits": 12}),
            Layer("n1", "neuron", ["q1"], {"f_m": 4, "bits": 12, "decays": [[[1, 2]]]}),
        ],
        inputs=["x"],
        outputs=["n1"],
        meta={"config": "toy", "D": 4},
        input_types={"x": TensorType((2, 1, 5, 5), "levels", 3, False, 2)},
    )


def test_round_trip_is_exact(tmp_path):
    save_artifact(_net(), tmp_path / "a")
    net = load_artifact(tmp_path / "a")
    assert [l.name for l in net.layers] == ["c1", "q1", "n1"]
    assert net.layer("c1").params["weight"].dtype == np.int8
    assert np.array_equal(net.layer("c1").params["weight"], _net().layer("c1").params["weight"])
    assert net.layer("q1").attrs["shift"] == [2, 3]
    assert net.meta["config"] == "toy"
    assert net.types["c1"] == TensorType((2, 2, 5, 5), "acc", 16, True, (6, 7))
    assert net.types["q1"].exp == 4 and net.types["n1"] == TensorType((2, 2, 5, 5), "levels", 3, False, 2)


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
    m["version"] = 1  # an artifact from before the typed IR
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=f"version 1 is not supported .*reads version {FORMAT_VERSION}"):
        load_artifact(tmp_path)


def test_edited_tensor_types_are_refused(tmp_path):
    save_artifact(_net(), tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["tensors"]["q1"]["bits"] = 8
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="tensor 'q1' is stored as .*bits=8.* but its layers make .*bits=12"):
        load_artifact(tmp_path)


def test_attribute_schema_is_checked():
    net = _net()
    net.layer("n1").attrs["shift"] = [2, 3]
    with pytest.raises(ArtifactError, match="'n1' \\(neuron\\): unknown attribute 'shift'"):
        net.validate()
    net = _net()
    del net.layer("c1").attrs["acc_exp"]
    with pytest.raises(ArtifactError, match="required attribute 'acc_exp' is missing"):
        net.validate()
    net = _net()
    net.layer("c1").attrs["stride"] = [1]
    with pytest.raises(ArtifactError, match="attribute 'stride' = \\[1\\] is not of schema kind 'int'"):
        net.validate()
    net = _net()
    net.layer("n1").attrs["decays"] = [[[1, 2, 3]]]
    with pytest.raises(ArtifactError, match="'decays'"):
        net.validate()


def test_type_rules_refuse_mismatched_data_flow():
    net = _net()
    net.layer("n1").inputs = ["c1"]  # a neuron on raw accumulators
    with pytest.raises(ArtifactError, match="'n1' \\(neuron\\) input 0 \\('c1'\\) is acc, expected stream"):
        net.validate()
    net = _net()
    net.layer("q1").attrs["shift"] = [2, 2]  # channel 1 lands at exponent 5, not the membrane's 4
    with pytest.raises(ArtifactError, match="input exponent .* is not the membrane exponent f_m=4"):
        net.validate()
    net = _net()
    net.input_types = {}
    with pytest.raises(ArtifactError, match="network input 'x' has no type"):
        net.validate()


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
    net.layers[2].attrs["f_m"] = 0.5
    with pytest.raises(ArtifactError, match="is a float"):
        net.validate()


def test_unsupported_op_and_dangling_input():
    net = _net()
    net.layers.append(Layer("m", "matmul", ["n1"]))
    with pytest.raises(ArtifactError, match="unsupported op 'matmul'"):
        net.validate()
    net = _net()
    net.layers[2].inputs = ["nope"]
    with pytest.raises(ArtifactError, match="reads 'nope'"):
        net.validate()
