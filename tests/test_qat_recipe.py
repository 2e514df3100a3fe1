"""QAT recipe options: which parameters ``--qat-freeze`` keeps fixed and what ``--qat-lr-mult`` sets."""

import json

import pytest
import torch

from spiketrack.cli import main
from spiketrack.quant.qat import QuantConvBN, freeze_for_qat, quantize_model
from test_quant_cli import checkpoint  # noqa: F401  (a briefly trained edge-t1 checkpoint)


@pytest.fixture(scope="module")
def qmodel():
    from spiketrack.model import build_model

    return quantize_model(build_model("edge-t1").eval())


@pytest.fixture
def q(qmodel):
    """The module's quantised model with every parameter trainable again."""
    for p in qmodel.parameters():
        p.requires_grad_(True)
    return qmodel


def _frozen(model):
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def test_freeze_stem_fixes_exactly_the_pixel_convolution(q):
    stem = [n for n, m in q.named_modules() if isinstance(m, QuantConvBN) and m.pixels]
    assert len(stem) == 1
    names = freeze_for_qat(q, "stem")
    assert set(names) == _frozen(q) == {f"{stem[0]}.conv.weight", f"{stem[0]}.conv.bias"}
    assert len(list(q.parameters())) > 10 * len(names)  # everything else still trains


def test_freeze_module_paths_take_whole_components_and_combine_with_stem(q):
    names = freeze_for_qat(q, " stem , backbone.stages.0")
    assert _frozen(q) == set(names)
    assert any(n.startswith("backbone.stages.0.") for n in names) and any("stem" in n for n in names)
    assert not any(n.startswith(("backbone.stages.1", "backbone.stages.10")) for n in names)
    with pytest.raises(ValueError, match="backbone.stage'"):  # a partial component is no prefix
        freeze_for_qat(q, "backbone.stage")
    with pytest.raises(ValueError, match="nothing"):
        freeze_for_qat(q, "nothing")


def test_freeze_none_freezes_nothing(q):
    for spec in (None, "", "none"):
        assert freeze_for_qat(q, spec) == [] and not _frozen(q)


def test_qat_with_frozen_stem_keeps_the_stem_and_trains_the_rest(checkpoint, tmp_path, capsys):
    from spiketrack.model.checkpoint import model_from_checkpoint

    ck = tmp_path / "qat.pt"
    assert main(["quantize", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "art"), "--qat-steps", "2",
                 "--batch", "2", "--qat-lr", "1e-3", "--qat-freeze", "stem", "--qat-lr-mult", "0.5",
                 "--qat-lr-drop", "1.0", "--check-frames", "0", "--save-checkpoint", str(ck), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["qat_frozen"] == ["backbone.stem.conv.conv.weight", "backbone.stem.conv.conv.bias"]
    parent, _ = model_from_checkpoint(checkpoint)
    before = quantize_model(parent.eval()).state_dict()
    model, payload = model_from_checkpoint(ck)
    after = model.state_dict()
    for name in rep["qat_frozen"]:
        assert torch.equal(before[name], after[name]), name
    moved = [k for k in before if k.endswith("conv.weight") and k not in rep["qat_frozen"]
             and not torch.equal(before[k], after[k])]
    assert len(moved) > 10
    info = payload["extra"]["qat"]
    assert (info["freeze"], info["lr"], info["lr_mult"], info["lr_drop"], info["steps"]) == ("stem", 1e-3, 0.5, 1.0, 2)
    from spiketrack.model.checkpoint import load_checkpoint

    train_args = load_checkpoint(tmp_path / "art" / "qat-run" / "last.pt")["extra"]["train"]
    assert train_args["backbone_lr_mult"] == 0.5


def test_qat_recipe_option_errors(checkpoint, tmp_path, capsys):
    base = ["quantize", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    assert main(base + ["--qat-freeze", "stem"]) == 2
    assert "need --qat-steps" in capsys.readouterr().err
    assert main(base + ["--qat-steps", "1", "--qat-freeze", "no.such.module"]) == 2
    err = capsys.readouterr().err
    assert "no.such.module" in err and "Traceback" not in err
    assert main(base + ["--qat-steps", "1", "--qat-lr-mult", "0"]) == 2
    assert "positive" in capsys.readouterr().err
    # no checkpoint: the default is the QAT network itself, which --qat-steps must not fine-tune again
    assert main(["quantize", "--out", str(tmp_path / "o2"), "--qat-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--float" in err and "Traceback" not in err
    assert not (tmp_path / "o2").exists()
