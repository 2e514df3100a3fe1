"""`spiketrack quantize` and `spiketrack energy` on a real (briefly trained) checkpoint."""

import json

import pytest

from spiketrack.cli import main
from spiketrack.quant.ir import load_artifact


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "run"
    assert main(["train", "--config", "edge-t1", "--data", "synthetic", "--out", str(out), "--steps", "1",
                 "--batch", "2", "--no-progress"]) == 0
    return out / "last.pt"


def test_quantize_writes_a_checked_artifact(checkpoint, tmp_path, capsys):
    out = tmp_path / "art"
    assert main(["quantize", "--checkpoint", str(checkpoint), "--out", str(out), "--check-frames", "1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["golden_check"]["frames"] == 1
    assert rep["golden_check"]["mismatches"] == 0 and rep["golden_check"]["layers"] > 300
    net = load_artifact(out)
    assert net.meta["config"] == "edge-t1" and json.loads((out / "report.json").read_text())["layers"] == len(net.layers)


def test_energy_reports_the_contract_keys(checkpoint, capsys):
    assert main(["energy", "--checkpoint", str(checkpoint), "--frames", "1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("sops", "macs", "snn_mj", "ann_mj", "ratio"):
        assert key in rep
    assert rep["macs"] > rep["search"]["dense_macs"] > 0
    assert rep["ratio"] == pytest.approx(rep["ann_mj"] / rep["snn_mj"])


def test_quantize_bad_checkpoint_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["quantize", "--checkpoint", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and "Traceback" not in err


def test_eval_quantized_tracks_with_the_integer_semantics(checkpoint, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--max-seqs", "1", "--quantized",
                 "--out-dir", str(tmp_path / "ev"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["sequences"] == 1 and rep["frames"] == 100 and 0.0 <= rep["auc"] <= 1.0


def test_qat_steps_and_int4_weights_stay_bit_exact(checkpoint, tmp_path, capsys):
    out = tmp_path / "art4"
    assert main(["quantize", "--checkpoint", str(checkpoint), "--out", str(out), "--bits", "4", "--qat-steps", "1",
                 "--check-frames", "1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["qat"]["steps"] == 1 and rep["golden_check"]["mismatches"] == 0
    net = load_artifact(out)
    w = [net.params_of(l)["weight"] for l in net.layers if l.op == "conv" and "params_from" not in l.attrs]
    assert max(int(abs(a).max()) for a in w) <= 7  # narrow int4
