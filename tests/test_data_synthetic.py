"""Synthetic generator: determinism, ground-truth consistency, challenge coverage."""

import numpy as np

from spiketrack.model.data import synthetic
from spiketrack.model.data.synthetic import SyntheticScene, benchmark_sequences, make_sequence


def test_deterministic_by_seed():
    a, b = make_sequence(7, 30), make_sequence(7, 30)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.frame(12), b.frame(12))
    c = make_sequence(8, 30)
    assert not np.array_equal(a.frame(0), c.frame(0))


def test_frames_and_boxes_shape():
    s = make_sequence(3, 20)
    f = s.frame(5)
    assert f.shape == (synthetic.FRAME_SIZE, synthetic.FRAME_SIZE, 3) and f.dtype == np.uint8
    assert s.boxes.shape == (20, 4) and s.visible.shape == (20,)
    assert s.visible[0], "first frame must show the target"
    v = s.boxes[s.visible]
    assert (v[:, 2] > 0).all() and (v[:, 0] >= 0).all() and (v[:, 0] + v[:, 2] <= synthetic.FRAME_SIZE + 1e-9).all()


def test_target_pixels_inside_box():
    """The rendered target changes pixels inside its box: compare against a scene without it."""
    scene = SyntheticScene(11)
    box, frac = scene.target_box(0)
    assert frac > 0.9
    img = scene.render(0).astype(int)
    tgt = scene.target
    scene.target = type(tgt)(**{**tgt.__dict__, "size": 1e-3})  # shrink target away
    img2 = scene.render(0).astype(int)
    diff = np.abs(img - img2).sum(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert xs.min() >= np.floor(box[0]) - 1 and xs.max() <= box[0] + box[2] + 1
    assert ys.min() >= np.floor(box[1]) - 1 and ys.max() <= box[1] + box[3] + 1


def test_benchmark_covers_challenges():
    seqs = benchmark_sequences()
    assert len(seqs) == synthetic.BENCHMARK_SEQUENCES
    assert all(len(s) == synthetic.BENCHMARK_FRAMES for s in seqs)
    # some sequences have absent frames (exit / full occlusion), most frames are visible
    vis = np.concatenate([s.visible for s in seqs])
    assert 0.6 < vis.mean() < 0.99
    assert sum((~s.visible).any() for s in seqs) >= 3
    scenes = [SyntheticScene(s.meta["seed"]) for s in seqs]
    assert sum(sc.occ is not None for sc in scenes) >= 3
    assert sum(len(sc.distractors) > 0 for sc in scenes) >= 6
    # scale change: box area varies within a sequence
    areas = seqs[0].boxes[seqs[0].visible, 2] * seqs[0].boxes[seqs[0].visible, 3]
    assert areas.max() / areas.min() > 1.05
