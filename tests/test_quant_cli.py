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
                 "--max-frames", "20", "--out-dir", str(tmp_path / "ev"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["sequences"] == 1 and rep["frames"] == 20 and 0.0 <= rep["auc"] <= 1.0
    boxes = next((tmp_path / "ev" / "lasot").glob("*.txt"))
    assert len(boxes.read_text().splitlines()) == 20


def test_qat_steps_and_int4_weights_stay_bit_exact(checkpoint, tmp_path, capsys):
    out = tmp_path / "art4"
    assert main(["quantize", "--checkpoint", str(checkpoint), "--out", str(out), "--bits", "4", "--qat-steps", "1",
                 "--check-frames", "1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["qat"]["steps"] == 1 and rep["golden_check"]["mismatches"] == 0
    net = load_artifact(out)
    w = [net.params_of(l)["weight"] for l in net.layers if l.op == "conv" and "params_from" not in l.attrs]
    assert max(int(abs(a).max()) for a in w) <= 7  # narrow int4


def test_qat_run_resumes_and_saves_a_checkpoint_that_loads_as_the_integer_model(checkpoint, tmp_path, capsys):
    import numpy as np
    import torch

    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.quant.qat import QuantConvBN

    out, ck = tmp_path / "qat", tmp_path / "qat.pt"
    base = ["quantize", "--checkpoint", str(checkpoint), "--out", str(out), "--qat-steps", "2", "--batch", "2",
            "--bits", "mixed", "--data", "mix:synthetic@1,synthetic-hard@1", "--check-frames", "0", "--json"]
    assert main(base + ["--stop-after", "1"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["qat"]["steps"] == 1 and not (out / "manifest.json").exists()
    assert main(base + ["--resume", "--save-checkpoint", str(ck)]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["qat"]["resumed_from"] == 1 and rep["qat"]["steps"] == 2 and rep["saved_checkpoint"] == str(ck)
    model, payload = model_from_checkpoint(ck)
    assert payload["extra"]["quant"]["weight_bits"] == "mixed" and payload["extra"]["qat"]["parent"] == str(checkpoint)
    assert model.quant_format.plan == "mixed"
    # the reloaded QAT model has exactly the integer weights of the artifact written from the trained one
    net = load_artifact(out)
    convs = {p: m for p, m in model.named_modules() if isinstance(m, QuantConvBN)}
    checked = 0
    for layer in net.layers:
        path = layer.name.split("/", 1)[1].removesuffix(".acc")
        if layer.op in ("conv", "stem_conv") and "params_from" not in layer.attrs and path in convs:
            ip = convs[path].integer_params()
            np.testing.assert_array_equal(net.params_of(layer)["weight"], ip["weight"].numpy())
            np.testing.assert_array_equal(net.params_of(layer)["bias"], ip["bias"].numpy())
            checked += 1
    assert checked > 20
    # and it differs from post-training quantisation of the parent (the QAT steps changed it)
    parent, _ = model_from_checkpoint(checkpoint)
    assert any(not torch.equal(a, b) for a, b in zip(parent.state_dict().values(), model.state_dict().values())
               if a.shape == b.shape)


@pytest.fixture(scope="module")
def qat_checkpoint(checkpoint, tmp_path_factory):
    d = tmp_path_factory.mktemp("qat")
    assert main(["quantize", "--checkpoint", str(checkpoint), "--out", str(d / "art"), "--qat-steps", "1",
                 "--batch", "2", "--check-frames", "1", "--save-checkpoint", str(d / "qat.pt")]) == 0
    return d / "qat.pt"


def test_eval_refuses_to_requantise_a_qat_checkpoint(qat_checkpoint, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(qat_checkpoint), "--quantized", "--weight-bits", "4", "--max-seqs", "1",
                 "--out-dir", str(tmp_path / "ev2")]) == 2
    assert "already quantised" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(qat_checkpoint), "--weight-bits", "4", "--out-dir", str(tmp_path)]) == 2
    assert "need --quantized" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_tracks_with_a_qat_checkpoint(qat_checkpoint, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(qat_checkpoint), "--dataset", "synthetic-hard", "--max-seqs", "1",
                 "--quantized", "--out-dir", str(tmp_path / "ev"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["frames"] == 100 and 0.0 <= rep["auc"] <= 1.0


def test_quantize_option_errors(checkpoint, tmp_path, capsys):
    assert main(["quantize", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"), "--resume"]) == 2
    assert "need --qat-steps" in capsys.readouterr().err


def test_compare_reports_layers_and_box_agreement(checkpoint, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert main(["compare", "--checkpoint", str(checkpoint), "--dataset", "synthetic-hard", "--max-seqs", "1",
                 "--crops", "1", "--no-tracking", "--out", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads(out.read_text())["dataset"] == "synthetic-hard"
    kinds = {r["kind"] for r in rep["layers"]}
    assert {"conv", "neuron", "add", "memory_build", "retrieve"} <= kinds
    assert rep["summary"]["golden_mismatches"] == 0
    neurons = [r for r in rep["layers"] if r["kind"] == "neuron"]
    assert all(0.0 <= r["spike_match"] <= 1.0 for r in neurons) and min(r["spike_match"] for r in neurons) < 1.0
    assert all(r["saturations"] is not None for r in rep["layers"])
    assert 0.0 <= rep["crops"]["median_iou"] <= 1.0 and rep["crops"]["crops"] == 1
    assert rep["layers"][0]["name"] == "template/backbone.stem.conv"
    assert main(["compare", "--checkpoint", str(checkpoint), "--crops", "0"]) == 2
    assert "--crops" in capsys.readouterr().err


def test_tracking_agreement_is_one_for_identical_models_and_counts_frames(checkpoint):
    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.model.data.synthetic import make_sequence
    from spiketrack.quant.compare import tracking_agreement
    from spiketrack.quant.tracking import tracking_model

    model, _ = model_from_checkpoint(checkpoint)
    seqs = [make_sequence(5, 8)]
    same = tracking_agreement(model, model, seqs)
    assert same["frames"] == 7 and same["median_iou"] == 1.0 and same["p5_iou"] == 1.0
    assert same["float_auc"] == same["integer_auc"]
    diff = tracking_agreement(model, tracking_model(model), seqs)
    assert diff["frames"] == 7 and 0.0 <= diff["p5_iou"] <= diff["median_iou"] <= 1.0


def test_track_runs_a_qat_checkpoint_as_its_integer_network(qat_checkpoint, tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from spiketrack.model.data.synthetic import make_sequence
    from spiketrack.quant import tracking

    seq = make_sequence(3, 3)
    for i in range(3):
        Image.fromarray(seq.frame(i)).save(tmp_path / f"{i:04d}.png")
    wrapped = []
    real = tracking.QuantizedTracking.__init__

    def spy(self, qmodel):
        wrapped.append(qmodel)
        real(self, qmodel)

    monkeypatch.setattr(tracking.QuantizedTracking, "__init__", spy)
    box = ",".join(f"{v:.1f}" for v in seq.boxes[0])
    out = tmp_path / "boxes.txt"
    assert main(["track", "--checkpoint", str(qat_checkpoint), "--frames", str(tmp_path), "--init", box,
                 "--out", str(out)]) == 0
    assert len(wrapped) == 1 and wrapped[0].quant_format is not None
    assert np.loadtxt(out, delimiter=",").shape == (3, 4)
