"""Tracker (init/update, mapping, template FIFO, validation), OPE evaluation and the track/eval CLIs."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spiketrack.cli import UserError
from spiketrack.model.data.synthetic import make_sequence
from spiketrack.model.evaluate import evaluate
from spiketrack.model.tracker import SpikeTrackTracker


class TinyModel(torch.nn.Module):
    """Stand-in with the SpikeTrack model API; predicts a fixed normalised crop box."""

    def __init__(self, T=3, size=32, feat=4, box=(0.5, 0.5, 0.25, 0.25), score=0.9):
        super().__init__()
        self.cfg = SimpleNamespace(name=f"tiny-t{T}", timesteps=T, template_size=size, search_size=size,
                                   feat_size=feat, ann=False)
        self.conv = torch.nn.Conv2d(3, 5, 1)
        self.box, self.score = torch.tensor(box), score
        self.n_template_calls = 0
        self.windows = []

    def encode_template(self, z):
        s = self.cfg.template_size
        assert z.shape[0] == self.cfg.timesteps and tuple(z.shape[2:]) == (3, s, s)
        self.n_template_calls += 1
        return [z.mean(dim=(0, 3, 4))]

    def encode_search(self, x, memories):
        B, f = x.shape[0], self.cfg.feat_size
        logit = torch.full((B, 1, f, f), -5.0)
        logit[:, :, f // 2, f // 2] = float(np.log(self.score / (1 - self.score)))
        return {"score_map": logit, "size_map": self.box[2:].view(1, 2, 1, 1).expand(B, 2, f, f),
                "offset_map": torch.zeros(B, 2, f, f)}

    def decode_box(self, out, window=None):
        self.windows.append(window)
        B = out["score_map"].shape[0]
        return self.box.expand(B, 4), torch.full((B,), self.score)


def _img(h=120, w=160):
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_fixed_prediction_keeps_box():
    tr = SpikeTrackTracker(TinyModel(T=1))
    box = [40, 30, 20, 20]
    tr.init(_img(), box)
    for _ in range(3):
        out = tr.update(_img())
    np.testing.assert_allclose(out, box, atol=1.0)
    assert tr.model.windows[-1].shape == (1, 1, 4, 4)


def test_size_damping():
    # the model always predicts half the crop (2x the box at factor 4): without damping the
    # box doubles per frame, with size_lr = 0.25 it grows by 1.25x, centre unchanged
    box = [60, 40, 10, 10]
    for lr, growth in ((1.0, 2.0), (0.25, 1.25)):
        tr = SpikeTrackTracker(TinyModel(T=1, box=(0.5, 0.5, 0.5, 0.5)), size_lr=lr)
        tr.init(_img(), box)
        out = tr.update(_img())
        np.testing.assert_allclose(out[2:], [10 * growth] * 2, atol=0.5)
        np.testing.assert_allclose(out[:2] + out[2:] / 2, [65, 45], atol=0.5)
    for bad in (0.0, 1.5, -1):
        with pytest.raises(UserError, match="size_lr"):
            SpikeTrackTracker(TinyModel(T=1), size_lr=bad)


def test_validation_set_is_disjoint_from_benchmark():
    from spiketrack.model.data.datasets import load_eval_dataset

    _, val = load_eval_dataset("synthetic-val", max_seqs=2)
    _, test = load_eval_dataset("synthetic", max_seqs=2)
    assert [s.name for s in val] == ["synthetic-val-000", "synthetic-val-001"]
    assert val[0].meta["seed"] != test[0].meta["seed"]
    assert not np.array_equal(val[0].frame(0), test[0].frame(0))


def test_clipping_margin():
    m = TinyModel(T=1, box=(1.0, 1.0, 0.25, 0.25))  # predicts at the crop corner -> off image
    tr = SpikeTrackTracker(m)
    tr.init(_img(), [140, 100, 15, 15])
    b = tr.update(_img())
    assert b[0] <= 160 - 10 and b[1] <= 120 - 10 and b[2] >= 10 and b[3] >= 10


def test_template_fifo_keeps_first():
    m = TinyModel(T=3, score=0.9)
    tr = SpikeTrackTracker(m, update_interval=2, update_threshold=0.5)
    tr.init(_img(), [40, 30, 20, 20])
    first = tr.templates[0]
    assert len(tr.templates) == 3 and all(t is first for t in tr.templates)
    for _ in range(4):
        tr.update(_img())
    assert tr.n_updates == 2 and len(tr.templates) == 3
    assert tr.templates[0] is first and tr.templates[1] is not first
    assert m.n_template_calls == 3
    # below threshold: never updates
    tr2 = SpikeTrackTracker(TinyModel(T=3, score=0.6), update_interval=1, update_threshold=0.7)
    tr2.init(_img(), [40, 30, 20, 20])
    tr2.update(_img())
    assert tr2.n_updates == 0
    # defaults
    assert SpikeTrackTracker(TinyModel()).update_interval == 25
    assert SpikeTrackTracker(TinyModel()).update_threshold == 0.7


@pytest.mark.parametrize("box,msg", [([0, 0, 0, 5], "positive"), ([0, 0, -3, 5], "positive"),
                                     ([np.nan, 0, 5, 5], "non-finite"), ([500, 0, 5, 5], "outside"),
                                     ([1, 2, 3], "4 numbers")])
def test_init_validation(box, msg):
    tr = SpikeTrackTracker(TinyModel())
    with pytest.raises(UserError, match=msg):
        tr.init(_img(), box)


def test_image_validation():
    tr = SpikeTrackTracker(TinyModel())
    with pytest.raises(UserError, match="before"):
        tr.update(_img())
    with pytest.raises(UserError, match="uint8"):
        tr.init(_img().astype(np.float32), [1, 1, 5, 5])


def test_evaluate_writes_toolkit_files(tmp_path):
    seqs = [make_sequence(5, 6, name="a"), make_sequence(6, 5, name="b")]
    summ = evaluate(SpikeTrackTracker(TinyModel(T=1)), seqs, tmp_path, progress=False)
    for k in ("auc", "precision", "norm_precision", "ao", "sr50", "sr75", "fps", "sequences", "frames"):
        assert k in summ
    assert summ["sequences"] == 2 and summ["frames"] == 11
    a = np.loadtxt(tmp_path / "lasot" / "a.txt", delimiter=",")
    assert a.shape == (6, 4)
    np.testing.assert_allclose(a[0], seqs[0].boxes[0], atol=1e-3)
    assert (tmp_path / "got10k" / "b" / "b_001.txt").exists()
    assert len(np.loadtxt(tmp_path / "got10k" / "b" / "b_time.txt")) == 5
    assert (tmp_path / "success.png").exists() and (tmp_path / "precision.png").exists()
    assert 0 <= summ["auc"] <= 1


def test_cli_errors(tmp_path, capsys, monkeypatch):
    from spiketrack import cli
    from spiketrack.model import checkpoint

    monkeypatch.setattr(checkpoint, "DEFAULT_CHECKPOINT", tmp_path / "none.pt")
    # only this layer's sub-commands, so the test does not depend on the others being importable
    monkeypatch.setattr(cli, "COMMANDS", {k: cli.COMMANDS[k] for k in ("train", "track", "eval")})
    rc = cli.main(["eval", "--max-seqs", "1"])
    assert rc == 2 and "spiketrack train" in capsys.readouterr().err
    rc = cli.main(["track", "--frames", str(tmp_path / "missing"), "--init", "1,2,3,4", "--out", "o.txt"])
    err = capsys.readouterr().err
    assert rc == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    rc = cli.main(["track", "--frames", str(tmp_path / "empty"), "--init", "1,2,3,4", "--out", "o.txt"])
    assert rc == 2 and "no images" in capsys.readouterr().err
    rc = cli.main(["track", "--frames", str(tmp_path / "empty"), "--init", "1,2,x", "--out", "o.txt"])
    assert rc == 2 and "--init" in capsys.readouterr().err


def test_video_frames_roundtrip(tmp_path):
    import imageio.v2 as iio

    from spiketrack.model.cli_track import draw_box, iter_frames

    frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(3)]
    with iio.get_writer(tmp_path / "v.mp4", fps=10, macro_block_size=1) as w:
        for f in frames:
            w.append_data(draw_box(f, [5, 5, 10, 10]))
    got = list(iter_frames(str(tmp_path / "v.mp4")))
    assert len(got) == 3 and got[0].shape == (32, 48, 3) and got[0].dtype == np.uint8
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(UserError, match="neither"):
        list(iter_frames(str(tmp_path / "notes.txt")))


def test_update_gate_per_dataset():
    """Reference test settings: LaSOT 40 frames / 0.8, every other dataset 25 / 0.7; flags override."""
    from spiketrack.model import get_config

    cfg = get_config("paper-s256-t3")
    assert cfg.update_gate("lasot") == (40, 0.8) and cfg.update_gate("LaSOT") == (40, 0.8)
    assert cfg.update_gate("got10k") == (25, 0.7) and cfg.update_gate(None) == (25, 0.7)
    m = TinyModel(T=3)
    m.cfg.update_gate = cfg.update_gate
    tr = SpikeTrackTracker(m, dataset="lasot")
    assert (tr.update_interval, tr.update_threshold) == (40, 0.8)
    tr = SpikeTrackTracker(m, dataset="otb", update_threshold=0.5)
    assert (tr.update_interval, tr.update_threshold) == (25, 0.5)
    # the gate decides: score 0.75 updates at 0.7 (other datasets) but not at 0.8 (LaSOT)
    for dataset, updates in (("got10k", 1), ("lasot", 0)):
        m = TinyModel(T=3, score=0.75)
        m.cfg.update_gate = cfg.update_gate
        tr = SpikeTrackTracker(m, dataset=dataset, update_interval=1)
        tr.init(_img(), [40, 30, 20, 20])
        tr.update(_img())
        assert tr.n_updates == updates
    with pytest.raises(UserError, match="at least 1"):
        SpikeTrackTracker(TinyModel(), update_interval=0)


def test_track_keeps_boxes_before_an_unreadable_frame(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from spiketrack import cli
    from spiketrack.model import checkpoint

    monkeypatch.setattr(checkpoint, "model_from_checkpoint", lambda *a, **k: (TinyModel(T=1), {}))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        Image.fromarray(_img()).save(frames / f"{i:04d}.png")
    (frames / "0002.png").write_bytes(b"not a png")
    out = tmp_path / "boxes.txt"
    rc = cli.main(["track", "--frames", str(frames), "--init", "40,30,20,20", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "frame 2 (0002.png) cannot be read" in err and str(out) in err
    boxes = np.loadtxt(out, delimiter=",")
    assert boxes.shape == (2, 4)
    np.testing.assert_allclose(boxes[0], [40, 30, 20, 20])


def test_got10k_adapter_equals_eval(tmp_path):
    """The got10k Tracker adapter, driven by the toolkit's own ``track``, gives eval's boxes."""
    from PIL import Image

    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.model.data.synthetic import make_sequence
    from spiketrack.model.evaluate import run_sequence
    from spiketrack.model.got10k_tracker import GOT10kTracker

    import got10k.trackers as got10k   # a pinned test dependency (pyproject.toml)

    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(None, float_default=True)
    seq = make_sequence(3, 8)
    files = []
    for i in range(len(seq)):
        files.append(tmp_path / f"{i:03d}.png")
        Image.fromarray(seq.frame(i)).save(files[-1])
    adapter = GOT10kTracker(model, name="spiketrack", dataset="got10k")
    assert isinstance(adapter, got10k.Tracker)
    boxes, times = adapter.track([str(f) for f in files], seq.boxes[0])
    want, _ = run_sequence(SpikeTrackTracker(model, dataset="got10k"), seq)
    assert boxes.shape == (8, 4) and len(times) == 8
    np.testing.assert_array_equal(boxes, want)
    assert not np.allclose(want[1:], want[0])   # the target moves: the boxes are not all the first one
