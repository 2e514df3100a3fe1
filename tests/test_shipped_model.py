"""The shipped default: the int8 QAT edge-t3 (``model/checkpoints/edge-t3-qat8.pt``) and its float
parent (``model/checkpoints/edge-t3.pt``, ``--float``).

Fast: what the shipped QAT checkpoint holds (weights only, the recipe of docs/quant.md, the stem
frozen at its post-training values, the parent it records is the shipped float file), and that the
commands load it (its integer network) by default and the float parent with ``--float``.

Slow (``make bench``): the tracking bars of issue #17 on the full benchmarks: the QAT default's
integer network reaches AUC >= 0.66 on `synthetic` and stays within 0.02 of its float parent on
`synthetic-hard`; the float parent keeps issue #3's bar (AUC >= 0.60 on `synthetic`, docs/tracking.md
2.1). Measured figures: docs/quant.md ("Stem frozen").
"""

import hashlib
import json

import numpy as np
import pytest
import torch

from spiketrack.cli import main
from spiketrack.model.checkpoint import (DEFAULT_CHECKPOINT, FLOAT_CHECKPOINT, load_checkpoint,
                                         model_from_checkpoint)


def test_the_shipped_default_is_the_stem_frozen_int8_qat_of_the_shipped_float_parent():
    from spiketrack.quant.qat import QuantFormat, freeze_for_qat, quantize_model

    ck = load_checkpoint(DEFAULT_CHECKPOINT)
    assert DEFAULT_CHECKPOINT.name == "edge-t3-qat8.pt" and FLOAT_CHECKPOINT.name == "edge-t3.pt"
    assert ck["variant"] == "edge-t3" and ck["optimizer"] is None and ck["step"] == 150
    assert ck["extra"]["quant"] == QuantFormat().spec()          # int8 weights, f = 8, 16-bit stream
    qat = ck["extra"]["qat"]
    assert (qat["freeze"], qat["lr"], qat["steps"], qat["lr_drop"] * qat["schedule_steps"], qat["data"]) == \
        ("stem", 1e-4, 150, 100, "mix:synthetic@1,synthetic-hard@1")
    assert qat["parent_sha256"] == hashlib.sha256(FLOAT_CHECKPOINT.read_bytes()).hexdigest()
    assert load_checkpoint(FLOAT_CHECKPOINT)["extra"].get("quant") is None

    model, _ = model_from_checkpoint(None)
    parent, _ = model_from_checkpoint(None, float_default=True)
    assert model.quant_format.spec() == QuantFormat().spec() and getattr(parent, "quant_format", None) is None
    ptq = quantize_model(parent, QuantFormat())
    stem = freeze_for_qat(ptq, "stem")
    q, p = dict(model.named_parameters()), dict(ptq.named_parameters())
    assert stem and all(torch.equal(q[n], p[n]) for n in stem)            # frozen: the post-training stem
    moved = [n for n in p if n not in stem and not torch.equal(q[n], p[n])]
    assert len(moved) > len(p) // 2                                       # the rest was fine-tuned


def test_quantize_lowers_the_qat_default_and_float_the_parent(tmp_path, capsys):
    assert main(["quantize", "--out", str(tmp_path / "q"), "--check-frames", "0", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["checkpoint"] == str(DEFAULT_CHECKPOINT) and rep["qat_checkpoint"]["freeze"] == "stem"
    assert main(["quantize", "--float", "--out", str(tmp_path / "f"), "--check-frames", "0", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["checkpoint"] == str(FLOAT_CHECKPOINT) and "qat_checkpoint" not in rep
    a, b = (np.load(tmp_path / d / "params.npz") for d in ("q", "f"))
    assert sorted(a.files) == sorted(b.files) and any(not np.array_equal(a[k], b[k]) for k in a.files)


def test_float_excludes_checkpoint_and_artifact(tmp_path, capsys):
    for argv in (["eval", "--float", "--checkpoint", str(FLOAT_CHECKPOINT), "--max-seqs", "1"],
                 ["eval", "--float", "--artifact", str(tmp_path)],
                 ["track", "--float", "--checkpoint", str(FLOAT_CHECKPOINT), "--frames", str(tmp_path),
                  "--init", "1,2,3,4", "--out", str(tmp_path / "o.txt")],
                 ["quantize", "--float", "--checkpoint", str(FLOAT_CHECKPOINT), "--out", str(tmp_path / "o")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "--float" in err and "Traceback" not in err


def test_track_runs_the_qat_default_as_its_integer_network_and_float_the_parent(tmp_path, monkeypatch):
    """``track`` without --checkpoint: the QAT default's integer network (the golden backend's boxes);
    ``--float``: the float parent's model, unquantised."""
    from PIL import Image

    from spiketrack.model import checkpoint
    from spiketrack.model.data.synthetic import make_sequence

    torch.set_num_threads(1)
    seq = make_sequence(3, 4)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(len(seq)):
        Image.fromarray(seq.frame(i)).save(frames / f"{i:04d}.png")
    box = ",".join(f"{v:.1f}" for v in seq.boxes[0])
    loaded = []
    real = checkpoint.model_from_checkpoint

    def spy(*a, **k):
        model, ck = real(*a, **k)
        loaded.append(getattr(model, "quant_format", None) is not None)
        return model, ck

    monkeypatch.setattr(checkpoint, "model_from_checkpoint", spy)
    boxes = {}
    for name, extra in (("default", []), ("golden", ["--backend", "golden"]), ("float", ["--float"])):
        out = tmp_path / f"{name}.txt"
        assert main(["track", "--frames", str(frames), "--init", box, "--out", str(out), *extra]) == 0
        boxes[name] = np.loadtxt(out, delimiter=",")
    assert loaded == [True, True, False]
    assert boxes["default"].shape == (4, 4)
    np.testing.assert_array_equal(boxes["default"], boxes["golden"])
    assert not np.array_equal(boxes["default"][1:], boxes["float"][1:])


def _eval(argv, capsys):
    assert main(["eval", *argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with capsys.disabled():            # not swallowed by the next eval's readouterr
        print(argv, out)
    assert out["sequences"] == 24
    return out


@pytest.mark.slow
def test_float_parent_reaches_auc_060(capsys, tmp_path, monkeypatch):
    """Issue #3's bar for the embedded float model (~1 min)."""
    monkeypatch.chdir(tmp_path)        # result files and plots land here, not in the checkout
    out = _eval(["--float", "--dataset", "synthetic"], capsys)
    assert out["frames"] == 2400 and out["auc"] >= 0.60, out


@pytest.mark.slow
def test_qat_default_reaches_auc_066_on_synthetic(capsys, tmp_path, monkeypatch):
    """Issue #17: no regression on `synthetic` (AUC >= 0.66; measured 0.668). The QAT network runs
    in Brevitas at ~4 frames/s: about 11 min on one core."""
    monkeypatch.chdir(tmp_path)
    out = _eval(["--dataset", "synthetic"], capsys)
    assert out["frames"] == 2400 and out["auc"] >= 0.66, out


@pytest.mark.slow
def test_qat_default_holds_on_synthetic_hard(capsys, tmp_path, monkeypatch):
    """Issue #17: on `synthetic-hard` the QAT default's integer network is at most 0.02 below its float
    parent (measured 0.465 against 0.455). About 12 min on one core."""
    monkeypatch.chdir(tmp_path)
    qat = _eval(["--dataset", "synthetic-hard", "--out-dir", "qat"], capsys)
    parent = _eval(["--float", "--dataset", "synthetic-hard", "--out-dir", "float"], capsys)
    assert qat["auc"] >= parent["auc"] - 0.02, (qat, parent)
