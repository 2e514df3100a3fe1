"""Training loop: resume equivalence, atomic checkpoints, validation of checkpoint files."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from spiketrack.cli import UserError
from spiketrack.model import checkpoint as C
from spiketrack.model.train import TrainConfig, init_from_checkpoint, param_groups, train

TINY = '''
import torch
from types import SimpleNamespace


class TinyTrainable(torch.nn.Module):
    """Trainable stand-in with the SpikeTrack model API (search/template 32 px, 4x4 map)."""

    def __init__(self, name="tiny-t1"):
        super().__init__()
        T = int(name.rsplit("t", 1)[1])
        self.cfg = SimpleNamespace(name=name, timesteps=T, template_size=32, search_size=32, feat_size=4,
                                   ann=False)
        self.stem = torch.nn.Conv2d(3, 8, 8, stride=8)
        self.bn = torch.nn.BatchNorm2d(8)
        self.mrm = torch.nn.Conv2d(16, 8, 1)
        self.head = torch.nn.Conv2d(8, 5, 1)
        if T > 1:
            self.gate = torch.nn.Parameter(torch.zeros(T))

    def encode_template(self, z):
        return [self.bn(self.stem(z.flatten(0, 1))).mean(dim=(2, 3)).view(z.shape[0], z.shape[1], 8).mean(0)]

    def encode_search(self, x, memories):
        f = self.bn(self.stem(x))
        m = memories[0][:, :, None, None].expand_as(f)
        h = self.head(torch.relu(self.mrm(torch.cat([f, m], 1))))
        return {"score_map": h[:, :1], "size_map": torch.sigmoid(h[:, 1:3]), "offset_map": h[:, 3:5]}

    def forward(self, z, x):
        return self.encode_search(x, self.encode_template(z))

    def decode_box(self, out, window=None):
        score = torch.sigmoid(out["score_map"])
        if window is not None:
            score = score * window
        B, _, h, w = score.shape
        conf, idx = score.flatten(1).max(dim=1)
        iy, ix = idx // w, idx % w
        ar = torch.arange(B)
        off, size = out["offset_map"][ar, :, iy, ix], out["size_map"][ar, :, iy, ix]
        cx, cy = (ix + off[:, 0]) / w, (iy + off[:, 1]) / h
        return torch.stack([cx, cy, size[:, 0], size[:, 1]], 1), conf


def simple_loss(out, box):
    """L1 on the size at the centre cell + a score term; stands in for the real loss."""
    B = box.shape[0]
    size = out["size_map"][:, :, 2, 2]
    l1 = (size - box[:, 2:].clamp(0, 1)).abs().mean()
    sc = torch.nn.functional.softplus(-out["score_map"][:, 0, 2, 2]).mean()
    return l1 + sc, {"l1": l1.detach(), "score": sc.detach()}
'''
_ns: dict = {}
exec(TINY, _ns)
TinyTrainable, simple_loss = _ns["TinyTrainable"], _ns["simple_loss"]


def _cfg(out, variant="tiny-t1", **kw):
    base = dict(variant=variant, data="synthetic", out=str(out), steps=4, batch=2, ckpt_every=1,
                samples_per_epoch=6, seed=3, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _run(cfg):
    return train(cfg, build=TinyTrainable, loss_fn=simple_loss)


def test_resume_equivalence(tmp_path):
    _run(_cfg(tmp_path / "a"))
    _run(_cfg(tmp_path / "b", stop_after=2))
    ck_mid = C.load_checkpoint(tmp_path / "b" / "last.pt")
    assert ck_mid["step"] == 2
    rep = _run(_cfg(tmp_path / "b", resume=True))
    assert rep["resumed_from"] == 2 and rep["steps"] == 4
    a = C.load_checkpoint(tmp_path / "a" / "last.pt")
    b = C.load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["variant"] == "tiny-t1" and a["config"]["timesteps"] == 1 and a["git_rev"]
    # one log line per checkpoint; the resumed run continues the same log
    import json
    rows = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all({"loss", "l1", "score", "lr"} <= set(r) for r in rows)
    ref = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref]


def test_existing_run_needs_resume(tmp_path):
    _run(_cfg(tmp_path, steps=1))
    with pytest.raises(UserError, match="--resume"):
        _run(_cfg(tmp_path, steps=1))


def test_variant_mismatch(tmp_path):
    _run(_cfg(tmp_path, steps=1))
    with pytest.raises(UserError, match="tiny-t1.*tiny-t3"):
        _run(_cfg(tmp_path, variant="tiny-t3", resume=True))


def test_init_from_t1_reports_new_tensors(tmp_path):
    _run(_cfg(tmp_path / "t1", steps=1))
    m = TinyTrainable("tiny-t3")
    info = init_from_checkpoint(m, tmp_path / "t1" / "last.pt")
    assert info["new"] == ["gate"] and "stem.weight" in info["loaded"]
    src = C.load_checkpoint(tmp_path / "t1" / "last.pt")["model"]
    assert torch.equal(m.stem.weight, src["stem.weight"])
    rep = _run(_cfg(tmp_path / "t3", variant="tiny-t3", steps=1, init_from=str(tmp_path / "t1" / "last.pt")))
    assert rep["init_from"]["new"] == 1


def test_param_groups():
    m = TinyTrainable("tiny-t1")
    g = {x["name"]: x for x in param_groups(m, 4e-4, 0.1, 1)}
    assert len(g["base"]["params"]) == 4  # mrm + head weights and biases when T = 1
    assert g["reduced"]["lr"] == pytest.approx(4e-5)
    m3 = TinyTrainable("tiny-t3")
    g3 = {x["name"]: x for x in param_groups(m3, 4e-4, 0.1, 3)}
    assert len(g3["base"]["params"]) == 2  # head joins the reduced group when T > 1


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    C.save_checkpoint_atomic(path, {"format": C.FORMAT, "old": True})
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"PK\x03\x04partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        C.save_checkpoint_atomic(path, {"new": True})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_corrupted_and_foreign_checkpoints(tmp_path):
    _run(_cfg(tmp_path, steps=1))
    good = (tmp_path / "last.pt").read_bytes()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="corrupted or truncated"):
        C.load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(UserError, match="not a SpikeTrack checkpoint"):
        C.load_checkpoint(foreign)
    with pytest.raises(UserError, match="not found"):
        C.load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_of_an_older_variant_definition(tmp_path):
    # an edge-t3 checkpoint made before the head widening (head_min_width 1) must be refused with the
    # differing tensor named, both when loading for eval/track and when resuming training
    import dataclasses

    from spiketrack.model import build_model, get_config

    old = build_model(dataclasses.replace(get_config("edge-t3"), head_min_width=1))
    path = tmp_path / "old.pt"
    C.save_checkpoint_atomic(path, C.make_payload(old, step=7))
    with pytest.raises(UserError, match=r"does not fit variant 'edge-t3'.*head\.ctr\.convs\.2\.conv\.weight: "
                                        r"shape \[8, 16, 3, 3\] in the checkpoint, \[16, 16, 3, 3\] in the model"):
        C.model_from_checkpoint(path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(path.read_bytes())
    with pytest.raises(UserError, match="does not fit variant 'edge-t3'"):
        train(_cfg(run, variant="edge-t3", resume=True))
    fits = tmp_path / "new.pt"
    C.save_checkpoint_atomic(fits, C.make_payload(build_model("edge-t3"), step=7))
    model, ck = C.model_from_checkpoint(fits)
    assert ck["step"] == 7 and C.state_dict_mismatch(model.state_dict(), ck["model"]) == []


# In the slow suite (`make bench`). A rank once aborted (SIGABRT) inside gloo. train() did not destroy the
# process group it created, so the gloo context was torn down at interpreter exit, when the peer rank may
# already have exited and closed its sockets: gloo's background thread then throws on the closed
# connection and the process aborts. train() now calls destroy_process_group() after the final barrier.
# The abort was not reproduced (9 reruns before the change and 1 after it passed), so the fix is not proven by a
# failing-then-passing run. It stays slow because it costs two Python processes importing torch and
# training: 25 s CPU, about 65 s wall on the shared 2-core machine, half the default suite's time.
@pytest.mark.slow
def test_torchrun_two_process_gloo(tmp_path):
    """Two gloo ranks through torchrun run the same train() code path (DDP + DistributedSampler)."""
    script = tmp_path / "ddp_run.py"
    script.write_text(TINY + textwrap.dedent(f'''
        import os
        from spiketrack.model.train import TrainConfig, train
        torch.set_num_threads(1)
        cfg = TrainConfig(variant="tiny-t1", data="synthetic", out={str(tmp_path / "ddp")!r}, steps=2, batch=2,
                          ckpt_every=1, samples_per_epoch=8, progress=False)
        rep = train(cfg, build=TinyTrainable, loss_fn=simple_loss)
        with open({str(tmp_path)!r} + "/rank" + os.environ["RANK"] + ".txt", "w") as f:
            f.write(f"{{rep['world_size']}} {{rep['steps']}}")
    '''))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["2 2", "2 2"]
    assert C.load_checkpoint(tmp_path / "ddp" / "last.pt")["step"] == 2


def _cli(module, argv):
    import argparse

    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return module.run(p.parse_args(argv))


def test_eval_and_track_cli_end_to_end(tmp_path, monkeypatch, capsys):
    """Train a tiny stand-in, then `eval --json` and `track` from its checkpoint."""
    import json

    import numpy as np
    from PIL import Image

    import spiketrack.model as sm
    from spiketrack.model import cli_eval, cli_track

    monkeypatch.setattr(sm, "build_model", TinyTrainable, raising=False)
    _run(_cfg(tmp_path / "run", steps=1))
    ck = str(tmp_path / "run" / "last.pt")
    capsys.readouterr()
    assert _cli(cli_eval, ["--checkpoint", ck, "--max-seqs", "2", "--json", "--out-dir", str(tmp_path / "ev"),
                           "--plot", str(tmp_path / "plots" / "success.png")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"auc", "precision", "norm_precision", "ao", "sr50", "sr75", "fps", "sequences", "frames"}
    assert res["sequences"] == 2 and res["frames"] == 200
    assert (tmp_path / "plots" / "precision.png").exists()
    assert (tmp_path / "ev" / "got10k" / "synthetic-000" / "synthetic-000_001.txt").exists()
    # the stand-in is not built from model/layers.py: the quantiser refuses it with a clear error (tests/test_quant_cli.py runs
    # --quantized on the real model)
    with pytest.raises(ValueError, match="needs a SpikeTrack model"):
        _cli(cli_eval, ["--checkpoint", ck, "--quantized"])
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        Image.fromarray(np.full((64, 80, 3), 30 * i, np.uint8)).save(frames / f"{i:04d}.png")
    out = tmp_path / "boxes.txt"
    assert _cli(cli_track, ["--checkpoint", ck, "--frames", str(frames), "--init", "10,12,20,16",
                            "--out", str(out), "--video", str(tmp_path / "o.mp4")]) == 0
    boxes = np.loadtxt(out, delimiter=",")
    assert boxes.shape == (4, 4) and (tmp_path / "o.mp4").stat().st_size > 0
    (frames / "0004.png").write_bytes(b"broken")
    with pytest.raises(UserError, match="cannot read image"):
        _cli(cli_track, ["--checkpoint", ck, "--frames", str(frames), "--init", "10,12,20,16", "--out", str(out)])


def test_init_from_t1_inflates_per_timestep_modules(tmp_path):
    """edge-t1 -> edge-t3: the MRM's per-timestep modules of t = 1, 2 start as copies of t = 0."""
    from spiketrack.model.spiketrack import build_model

    torch.manual_seed(0)
    t1 = build_model("edge-t1")
    with torch.no_grad():
        for p in t1.parameters():
            p.add_(torch.randn_like(p))     # distinguishable from any fresh initialisation
    C.save_checkpoint_atomic(tmp_path / "t1.pt", C.make_payload(t1))
    t3 = build_model("edge-t3")
    info = init_from_checkpoint(t3, tmp_path / "t1.pt")
    assert info["inflated"] and not info["shape_mismatch"]
    assert not [k for k in info["new"] if "detail_" in k]
    sd1, sd3 = t1.state_dict(), t3.state_dict()
    for site in range(len(t3.backbone.mrm)):
        for lst in ("detail_dw", "detail_pw"):
            for t in range(3):
                for name in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
                    k = f"backbone.mrm.{site}.{lst}.{t}.{name}"
                    assert torch.equal(sd3[k], sd1[k.replace(f".{lst}.{t}.", f".{lst}.0.")]), k
    # copies, not shared storage: training timestep 1 leaves timestep 0 alone
    w1 = t3.backbone.mrm[0].detail_dw[1].conv.weight
    with torch.no_grad():
        w1.add_(1.0)
    assert not torch.equal(w1, t3.backbone.mrm[0].detail_dw[0].conv.weight)
