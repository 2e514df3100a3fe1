"""The weight-precision table shipped beside the default checkpoint, and the ``precision`` block of
``spiketrack compile --json`` that reports it only for the network it was measured on."""

import copy
import json

import pytest

from spiketrack.cli import main
from spiketrack.model.checkpoint import DEFAULT_CHECKPOINT, FLOAT_CHECKPOINT, model_from_checkpoint
from spiketrack.quant.precision import (ROWS, file_sha256, load_table, network_sha256, precision_block, rule_pick,
                                        table_path)

TABLE = table_path(DEFAULT_CHECKPOINT)


@pytest.fixture(scope="module")
def default_net():
    """The shipped default's integer network, lowered as `spiketrack compile` lowers it."""
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import quantize_model

    model, _ = model_from_checkpoint(None)
    return lower(quantize_model(model.eval()))


def test_shipped_table_is_for_the_shipped_files_on_all_of_synthetic():
    t = load_table(TABLE)
    m = t["measured_for"]
    assert m["checkpoint"] == DEFAULT_CHECKPOINT.name and m["checkpoint_sha256"] == file_sha256(DEFAULT_CHECKPOINT)
    assert m["float_parent"] == FLOAT_CHECKPOINT.name and m["float_parent_sha256"] == file_sha256(FLOAT_CHECKPOINT)
    assert [r["model"] for r in t["rows"]] == list(ROWS)
    from spiketrack.model.data.datasets import load_eval_dataset

    n = len(load_eval_dataset("synthetic", None)[1])
    assert t["dataset"] == "synthetic" and t["sequences"] == n
    flags = {"float": ("--float", None), "int8": ("--float", "8"), "int4": ("--float", "4"),
             "mixed": ("--float", "mixed"), "qat-int8": (None, None)}
    for r in t["rows"]:
        cmd = r["command"].split()
        assert cmd[:2] == ["spiketrack", "eval"] and cmd[cmd.index("--dataset") + 1] == "synthetic", r
        assert "--max-seqs" not in cmd and "--checkpoint" not in cmd and "--rounding" not in cmd, r
        assert r["sequences"] == n and r["frames"] >= n and 0 < r["auc"] <= 1 and r["wall_s"] > 0, r
        fl, bits = flags[r["model"]]
        assert (fl in cmd) if fl else ("--float" not in cmd), r
        assert ("--quantized" in cmd) == (bits is not None), r
        if bits:
            assert cmd[cmd.index("--weight-bits") + 1] == bits, r


def test_shipped_table_weight_bytes_are_those_of_each_plan():
    from spiketrack.quant.qat import QuantFormat, quantize_model, weight_bytes

    rows = {r["model"]: r for r in load_table(TABLE)["rows"]}
    fmodel, _ = model_from_checkpoint(FLOAT_CHECKPOINT)
    for plan, bits in (("int8", 8), ("int4", 4), ("mixed", "mixed")):
        wb = weight_bytes(quantize_model(fmodel.eval(), QuantFormat(weight_bits=bits)))
        assert (rows[plan]["weight_bytes"], rows[plan]["weight_bytes_by_bits"]) == (wb["bytes"], wb["by_bits"]), plan
    assert rows["qat-int8"]["weight_bytes_by_bits"] == rows["int8"]["weight_bytes_by_bits"] == {"8": rows["int8"]["weight_bytes"]}
    assert rows["float"]["weight_bytes"] is None
    assert rows["int4"]["weight_bytes"] < rows["mixed"]["weight_bytes"] < rows["int8"]["weight_bytes"]


def test_rule_pick_is_the_cheapest_within_the_loss():
    def row(model, auc, nbytes):
        return {"model": model, "auc": auc, "weight_bytes": nbytes}

    rows = [row("float", 0.70, None), row("int8", 0.69, 100), row("int4", 0.67, 50), row("mixed", 0.685, 75)]
    assert rule_pick(rows) == "mixed"
    assert rule_pick(rows, max_loss=0.03) == "int4"
    assert rule_pick(rows, max_loss=0.005) is None
    rows.append(row("qat-int8", 0.70, 75))
    assert rule_pick(rows) == "qat-int8"  # as cheap as mixed, higher AUC


def test_block_of_the_shipped_default_carries_the_table(default_net, tmp_path):
    t = load_table(TABLE)
    b = precision_block(default_net, 8, DEFAULT_CHECKPOINT)
    assert b["matches"] is True and b["table_file"] == str(TABLE) and b["weight_bits"] == 8
    assert b["auc"] == {r["model"]: r["auc"] for r in t["rows"]} and b["sequences"] == t["sequences"]
    assert b["rule_pick"] == rule_pick(t["rows"]) and b["network_row"] == "qat-int8"
    # a pick other than this network is said, with both rows' figures
    assert (b["rule_pick"] == "qat-int8") == ("note" not in b)
    if "note" in b:
        assert f"this network is the qat-int8 row (AUC {b['auc']['qat-int8']:.3f}" in b["note"], b["note"]
    # the same network saved as an artifact and read back (compile --artifact): the same digest
    from spiketrack.quant.ir import load_artifact, save_artifact

    art = load_artifact(save_artifact(default_net, tmp_path / "art"))
    assert network_sha256(art) == network_sha256(default_net) == t["measured_for"]["network_sha256"]
    assert precision_block(art, 8)["matches"] is True


def test_a_mismatching_checkpoint_or_network_gets_no_table(default_net, tmp_path):
    # another checkpoint file: no table of its own beside it, and the shipped one is not its
    b = precision_block(default_net, 8, FLOAT_CHECKPOINT)
    assert b["matches"] is False and b["auc"] is None and "no precision table at" in b["note"]
    b = precision_block(default_net, 8, FLOAT_CHECKPOINT, table=TABLE)
    assert b["matches"] is False and b["auc"] is None and "rows" not in b
    assert f"checkpoint {FLOAT_CHECKPOINT} has SHA-256 {file_sha256(FLOAT_CHECKPOINT)}" in b["note"]
    assert str(TABLE) in b["note"] and "no AUC figures" in b["note"]
    # one weight changed: another network
    other = copy.deepcopy(default_net)
    layer = next(l for l in other.layers if l.op == "conv")
    layer.params["weight"].flat[0] += 1
    b = precision_block(other, 8)
    assert b["matches"] is False and b["auc"] is None and network_sha256(other) in b["note"]
    # no table, or a foreign file
    b = precision_block(default_net, 8, DEFAULT_CHECKPOINT, table=tmp_path / "none.json")
    assert b["matches"] is False and b["auc"] is None and "no precision table at" in b["note"]
    (tmp_path / "bad.json").write_text(json.dumps({"format": "x"}))
    b = precision_block(default_net, 8, DEFAULT_CHECKPOINT, table=tmp_path / "bad.json")
    assert b["matches"] is False and "is not a version-1" in b["note"]


def test_compile_json_of_the_shipped_default_has_the_precision_block(default_net, tmp_path, capsys, monkeypatch):
    """The wiring of `spiketrack compile --json` (the compilation itself, minutes, is stubbed: its
    report is covered by tests/test_compiler.py)."""
    import spiketrack.compiler.build as build
    import spiketrack.compiler.cli_compile as cli_compile

    seen = {}

    def fake_compile(net, **kw):
        seen["net"] = net
        return {"report": {"weight_bits": 8, "fits": True}}

    monkeypatch.setattr(cli_compile, "_artifact", lambda path: default_net if path is None else None)
    monkeypatch.setattr(build, "compile_network", fake_compile)
    monkeypatch.setattr(build, "write_compiled", lambda result, sha, out: out)
    assert main(["compile", "--board", "ulx3s-85f", "--out", str(tmp_path / "c"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    t = load_table(TABLE)
    assert seen["net"] is default_net
    p = rep["precision"]
    assert p["matches"] is True and p["weight_bits"] == 8 and p["table_file"] == str(TABLE)
    assert p["auc"] == {r["model"]: r["auc"] for r in t["rows"]} and list(p["auc"]) == list(ROWS)
    assert p["measured_for"]["checkpoint_sha256"] == file_sha256(DEFAULT_CHECKPOINT)
