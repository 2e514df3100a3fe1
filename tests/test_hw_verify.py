"""spiketrack verify: registry, JSON summary, exit status."""

import json

from spiketrack.cli import main
from spiketrack.compiler.hwops import REGISTRY
from spiketrack.sim import verify


def test_verify_fuzz_json(capsys):
    assert main(["verify", "--fuzz", "24", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cases"] == 24 and out["mismatches"] == 0 and out["cycle_model_exact"]
    hw_ops = {f"accel.{k}" for k, c in REGISTRY.items() if not c.view}
    assert hw_ops == {"accel.spike_conv", "accel.stem", "accel.retrieval", "accel.memory_build", "accel.neuron",
                      "accel.add", "accel.avg_pool", "accel.upsample_bilinear", "accel.mul_const", "accel.mean_fusion"}
    assert set(out["layer_types"]) == {"conv", "depthwise", "grouped", "1x1", "linear", "stem", "neuron", "encoder",
                                       "memory_build", "retrieval", "attention", "retrieval_neuron"} | hw_ops


def test_every_hardware_op_class_has_a_random_rtl_case():
    """verify --fuzz is driven by the compiler's op-class registry: a class registered with a unit
    and no random case fails here, and each case runs on the unit and matches golden and model."""
    import random

    for kind, cls in REGISTRY.items():
        r = cls.random_case(random.Random(7))
        if cls.view:
            assert r is None
            continue
        assert r["type"] == f"accel.{kind}" and r["match"] and r["cycles_exact"], r


def test_hardware_op_cases_detect_a_broken_golden(monkeypatch):
    """The op cases compare with the golden functions: a conv accumulator off by one, a wrong
    memory build, or a cycle model off by one cycle must be reported."""
    import random

    from spiketrack.sim import op_cases

    real_conv, real_mb, real_vec = op_cases.conv2d_acc, op_cases.memory_build, op_cases.vector_cost
    monkeypatch.setattr(op_cases, "conv2d_acc", lambda *a: real_conv(*a) + 1)
    monkeypatch.setattr(op_cases, "memory_build", lambda k, v: real_mb(k, v) + 1)
    assert not op_cases.spike_conv_case(random.Random(1))["match"]
    assert not op_cases.memory_build_case(random.Random(1))["match"]
    monkeypatch.setattr(op_cases, "vector_cost", lambda *a, **k: type("C", (), {"cycles": real_vec(*a, **k).cycles + 1}))
    r = op_cases.add_case(random.Random(1))
    assert r["match"] and not r["cycles_exact"]


def test_paper_op_cases_detect_a_broken_golden(monkeypatch):
    """The bilinear and constant-product cases compare with the golden functions: a bilinear result
    off by one or a product by m + 1 must be reported."""
    import random

    from spiketrack.sim import op_cases

    real_up, real_csd = op_cases.upsample_bilinear, op_cases.times_csd
    monkeypatch.setattr(op_cases, "upsample_bilinear", lambda x, p, b: (real_up(x, p, b)[0] + 1, 0))
    monkeypatch.setattr(op_cases, "times_csd", lambda y, terms: real_csd(y, terms) + y)
    assert not op_cases.upsample_bilinear_case(random.Random(2))["match"]
    assert not op_cases.mul_const_case(random.Random(2))["match"]


def test_memory_unit_cases_detect_a_broken_golden(monkeypatch):
    """The memory-unit fuzz cases compare with the golden function: a wrong golden must be caught."""
    import random

    import spiketrack.quant.golden.memory as gm
    from spiketrack.sim import memory_unit_sim

    monkeypatch.setattr(gm, "retrieve", lambda q, m: gm.torch.einsum("hcn,hcj->hjn", q, m) + 1)
    r = verify.CASES["retrieval"](random.Random(5))
    assert not r["match"]
    assert memory_unit_sim.VERIFY_LAYER_TYPES == ("memory_build", "retrieval", "attention", "retrieval_neuron")


def test_chain_cases_detect_a_broken_neuron_golden(monkeypatch):
    """retrieval_neuron compares with golden neuron_layer: a wrong golden neuron must be caught."""
    import random

    import spiketrack.quant.golden.neuron as gn

    real = gn.neuron_layer
    monkeypatch.setattr(gn, "neuron_layer", lambda acc, *a, **k: (lambda r: ((r[0] + 1).clamp(max=gn.D), *r[1:]))(
        real(acc, *a, **k)))
    results = [verify.CASES["retrieval_neuron"](random.Random(s)) for s in range(3)]
    assert not all(r["match"] for r in results)


def test_verify_registry_and_failure_exit(capsys, monkeypatch):
    monkeypatch.setitem(verify.CASES, "broken", lambda rng: {"type": "broken", "match": False, "cycles_exact": True})
    assert main(["verify", "--fuzz", "2", "--types", "broken,encoder", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["mismatches"] == 1 and out["layer_types"] == {"broken": 1, "encoder": 1}
