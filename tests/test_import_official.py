"""Import of the authors' checkpoints (model/official.py, ``spiketrack import``).

Official-format state dicts are built with random values from the key listings in
tests/data/official_keys/ (names and shapes of the authors' ``state_dict()``).
"""

import argparse
import json
import re
from pathlib import Path

import pytest
import torch

from spiketrack.cli import UserError, main
from spiketrack.model.checkpoint import load_checkpoint, model_from_checkpoint
from spiketrack.model.official import (export_official, import_official, key_map, official_shapes,
                                       official_to_ours, ours_to_official)

LISTINGS = Path(__file__).parent / "data" / "official_keys"
VARIANTS = [f"paper-{f}-t{t}" for f in ("s256", "b256", "b384") for t in (1, 3)]
TOTAL_ELEMENTS = {"paper-s256-t1": 11_875_956, "paper-s256-t3": 12_851_340, "paper-b256-t1": 36_886_220,
                  "paper-b256-t3": 40_331_748, "paper-b384-t1": 43_574_860, "paper-b384-t3": 47_020_388}


def listing(variant: str) -> dict[str, tuple]:
    out = {}
    for line in (LISTINGS / f"official_keys_{variant}.txt").read_text().splitlines():
        key, shape = line.split(" ", 1)
        out[key] = tuple(int(x) for x in re.findall(r"\d+", shape))
    return out


def random_official(variant: str, seed: int = 0, fill=None) -> dict[str, torch.Tensor]:
    """A state dict with the listing's keys and shapes: random floats, random counters."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for k, s in listing(variant).items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.randint(0, 10**6, s, generator=gen)
        elif fill is not None:
            sd[k] = torch.full(s, fill)
        else:
            sd[k] = torch.randn(s, generator=gen)
    return sd


def assert_same(a: dict, b: dict) -> None:
    assert list(sorted(a)) == list(sorted(b))
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("variant", VARIANTS)
def test_key_map_is_the_listing(variant):
    want = listing(variant)
    assert official_shapes(variant) == want
    assert sum(torch.Size(s).numel() for s in want.values()) == TOTAL_ELEMENTS[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_round_trip_every_tensor_once(variant):
    sd = random_official(variant, seed=len(variant))
    ours, slot2 = official_to_ours(sd, variant)   # raises if a tensor is used twice / ours left unfilled
    from spiketrack.model.official import our_shapes

    shapes = our_shapes(variant)
    assert set(ours) == set(shapes)
    assert all(tuple(ours[k].shape) == shapes[k] for k in ours)
    assert len(slot2) == sum(k.endswith(".decay") for k in sd)
    assert_same(ours_to_official(ours, variant, slot2), sd)


def test_mapping_semantics():
    """Spot checks of what goes where (a swap of same-shaped tensors would still round-trip)."""
    sd = random_official("paper-s256-t3", seed=3)
    ours, slot2 = official_to_ours(sd, "paper-s256-t3")
    b = "encoder.block3.1"
    assert torch.equal(ours["backbone.stages.2.blocks.1.attn.pos.pos_embed_search"].flatten(2),
                       sd[f"{b}.attn.s_pos_embed"])
    for j in range(4):
        assert torch.equal(ours["backbone.stages.2.blocks.1.attn.pos.pos_embed_template"][j].flatten(1),
                           sd[f"{b}.attn.t_pos_embeds.{j}"][0])
    assert torch.equal(ours["backbone.stages.2.blocks.1.mlp.fc1.conv.weight"][..., 0], sd[f"{b}.mlp.fc1_conv.weight"])
    assert torch.equal(ours["backbone.stages.2.blocks.1.mlp.sn2.decay_logit"], sd[f"{b}.mlp.fc2_spike.decay"][:2])
    assert torch.equal(slot2[f"{b}.mlp.fc2_spike.decay"], sd[f"{b}.mlp.fc2_spike.decay"][2:])
    r = "encoder.mrm.4.retriever"
    for sn in ("sn_q", "sn_r"):   # the reference reuses q_spike for the retrieval neuron
        assert torch.equal(ours[f"backbone.mrm.4.{sn}.decay_logit"], sd[f"{r}.q_spike.decay"][:2])
    assert torch.equal(ours["backbone.mrm.4.detail_pw.2.conv.weight"], sd[f"{r}.seg_responder_pw.2.0.weight"])
    assert torch.equal(ours["backbone.mrm.4.fusion.fc1.weight"], sd[f"{r}.gate.mlp.0.weight"])
    assert torch.equal(ours["head.size.convs.3.bn.running_var"], sd["decoder.conv4_size.1.running_var"])
    assert torch.equal(ours["head.offset.sns.0.decay_logit"], sd["decoder.offset1_spike.decay"][:2])
    assert torch.equal(ours["backbone.stages.1.blocks.1.conv2.bn.bias"], sd["encoder.ConvBlock2_2.0.bn2.bias"])
    assert int(ours["backbone.stages.2.blocks.0.attn.q.bn.num_batches_tracked"]) == 0   # frozen in the official
    assert len(key_map("paper-s256-t3")) > len(sd)


def test_export_refuses_untied_retrieval_neuron():
    sd = random_official("paper-s256-t1")
    ours, slot2 = official_to_ours(sd, "paper-s256-t1")
    ours["backbone.mrm.0.sn_r.decay_logit"] = ours["backbone.mrm.0.sn_r.decay_logit"] + 1
    with pytest.raises(UserError, match="backbone.mrm.0.sn_r.decay_logit differs"):
        ours_to_official(ours, "paper-s256-t1", slot2)


# --------------------------------------------------------------------------- files and the CLI
@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    sd = random_official("paper-s256-t1", seed=7)
    path = tmp_path_factory.mktemp("official") / "SpikeTrack_ep0320.pth.tar"
    torch.save({"net": sd, "epoch": 320}, path)
    return path, sd


def test_cli_import_then_eval_ready_and_round_trip(official_file, tmp_path, capsys):
    src, sd = official_file
    out = tmp_path / "imported.pt"
    assert main(["import", "--official", str(src), "--config", "paper-s256-t1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["official_tensors"] == 1215 and summary["official_elements"] == TOTAL_ELEMENTS["paper-s256-t1"]
    assert summary["rounding"] == "half_even"
    ck = load_checkpoint(out)
    assert ck["variant"] == "paper-s256-t1" and ck["config"]["rounding"] == "half_even"
    assert ck["extra"]["official"]["format"] == "official-spiketrack"
    assert ck["extra"]["official"]["sha256"] == summary["sha256"]
    model, _ = model_from_checkpoint(out)
    assert model.cfg.rounding == "half_even"
    assert {m.rounding for m in model.modules() if hasattr(m, "rounding")} == {"half_even"}
    assert_same(export_official(ck)["net"], sd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imported.pt"]


def test_imported_model_runs_and_differs_only_by_rounding(official_file):
    """The float model of an import is the paper variant with ties-to-even fire rounding."""
    from spiketrack.model.neuron import NILIF

    _, sd = official_file
    ours, _ = official_to_ours(sd, "paper-s256-t1")
    from spiketrack.model import build_model, get_config

    model = build_model(get_config("paper-s256-t1", rounding="half_even"))
    model.load_state_dict(ours)
    assert all(m.rounding == "half_even" for m in model.modules() if isinstance(m, NILIF))


def _refuses(tmp_path, capsys, argv_extra, src, match, config="paper-s256-t1"):
    out = tmp_path / "out" / "x.pt"
    out.parent.mkdir(exist_ok=True)
    rc = main(["import", "--official", str(src), "--config", config, "--out", str(out)] + argv_extra)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert re.search(match, err), err
    assert list(out.parent.iterdir()) == []   # nothing written, no temp file left
    return err


def test_refuses_another_variant(tmp_path, capsys):
    src = tmp_path / "t3.pth"
    torch.save({"net": random_official("paper-s256-t3", fill=0.0)}, src)
    _refuses(tmp_path, capsys, [], src, r"unexpected key encoder\.mrm\.0\.retriever\.seg_responder_dw\.1\.0\.weight "
             r"\(128, 1, 3, 3\).*official paper-s256-t3 checkpoint")
    src2 = tmp_path / "s.pth"
    torch.save({"net": random_official("paper-s256-t1", fill=0.0)}, src2)
    _refuses(tmp_path, capsys, [], src2, r"encoder\.downsample1_1\.encode_conv\.weight has shape \(16, 3, 7, 7\), "
             r"expected \(32, 3, 7, 7\).*paper-s256-t1", config="paper-b256-t1")


def test_refuses_truncated_file(official_file, tmp_path, capsys):
    src = tmp_path / "cut.pth"
    data = official_file[0].read_bytes()
    src.write_bytes(data[: len(data) // 2])
    _refuses(tmp_path, capsys, [], src, "corrupted or truncated")


def test_refuses_extra_and_missing_keys(official_file, tmp_path, capsys):
    sd = dict(official_file[1])
    extra = dict(sd, **{"encoder.extra_head.weight": torch.zeros(4, 2)})
    src = tmp_path / "extra.pth"
    torch.save({"net": extra}, src)
    _refuses(tmp_path, capsys, [], src, r"unexpected key encoder\.extra_head\.weight \(4, 2\)")
    missing = dict(sd)
    del missing["decoder.conv3_size.1.running_var"]
    torch.save({"net": missing}, src)
    _refuses(tmp_path, capsys, [], src, r"missing key decoder\.conv3_size\.1\.running_var \(48,\)")
    torch.save({"model": sd}, src)
    _refuses(tmp_path, capsys, [], src, "no 'net' state dict")


def test_pickle_needs_trust(official_file, tmp_path, capsys):
    src = tmp_path / "trainer.pth.tar"
    torch.save({"net": official_file[1], "settings": argparse.Namespace(epoch=320)}, src)
    err = _refuses(tmp_path, capsys, [], src, r"Python objects besides tensors.*--trust-pickle")
    assert "argparse.Namespace" in err
    out = tmp_path / "trusted.pt"
    assert main(["import", "--official", str(src), "--config", "paper-s256-t1", "--out", str(out),
                 "--trust-pickle"]) == 0
    assert_same(export_official(load_checkpoint(out))["net"], official_file[1])


def test_refuses_edge_config(official_file, tmp_path):
    with pytest.raises(UserError, match="no official counterpart"):
        import_official(official_file[0], "edge-t3", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
