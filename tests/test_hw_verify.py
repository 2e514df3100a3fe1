"""spiketrack verify: registry, JSON summary, exit status."""

import json

from spiketrack.cli import main
from spiketrack.sim import verify


def test_verify_fuzz_json(capsys):
    assert main(["verify", "--fuzz", "24", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cases"] == 24 and out["mismatches"] == 0 and out["cycle_model_exact"]
    assert set(out["layer_types"]) == {"conv", "depthwise", "grouped", "1x1", "linear", "stem", "neuron", "encoder",
                                       "memory_build", "retrieval", "attention", "retrieval_neuron"}


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
