"""Training sampler and crops."""

import math

import numpy as np
import pytest
import torch

from spiketrack.model.data.crops import box_from_crop, box_to_crop, clip_box, hann2d, sample_target
from spiketrack.model.data.sampler import TrackingPairs, parse_sources
from spiketrack.model.data.sequence import Sequence


def test_sample_target_geometry_and_padding():
    img = np.full((100, 200, 3), 255, np.uint8)
    crop, info = sample_target(img, (0, 0, 20, 5), 4.0, 64)
    assert crop.shape == (64, 64, 3)
    assert info.side == math.ceil(math.sqrt(100) * 4)
    assert crop[0, 0].sum() == 0 and crop[-1, -1].sum() > 0  # zero padding top-left
    b = box_to_crop((0, 0, 20, 5), info)
    back = box_from_crop([(b[0] + b[2] / 2) / 64, (b[1] + b[3] / 2) / 64, b[2] / 64, b[3] / 64], info)
    np.testing.assert_allclose(back, [0, 0, 20, 5], atol=1e-9)


def test_clip_box_margin():
    np.testing.assert_allclose(clip_box((-50, -50, 20, 20), 100, 100), [0, 0, 10, 10])
    np.testing.assert_allclose(clip_box((95, 10, 30, 30), 100, 100), [90, 10, 10, 30])


def test_hann2d():
    w = hann2d(8)
    assert w.shape == (1, 1, 8, 8)
    assert torch.allclose(w[0, 0], w[0, 0].T) and w.max() < 1 and w.min() > 0


def test_parse_sources():
    assert parse_sources("synthetic") == [("synthetic", 1.0)]
    assert parse_sources("mix:synthetic@1,got10k:/a/b@2.5") == [("synthetic", 1.0), ("got10k:/a/b", 2.5)]
    with pytest.raises(ValueError):
        parse_sources("mix:synthetic@-1")


def _toy_sequence(n=12):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(n)]
    boxes = np.array([[10 + i, 12, 16, 14] for i in range(n)], float)
    vis = np.ones(n, bool)
    vis[3] = False
    return Sequence("toy", lambda i: frames[i], boxes, vis, n_frames=n)


def test_pairs_shapes_determinism_and_box():
    ds = TrackingPairs([[_toy_sequence()]], n_templates=3, template_size=32, search_size=48,
                       samples_per_epoch=10, seed=1)
    z, x, box = ds[4]
    assert z.shape == (3, 3, 32, 32) and x.shape == (3, 48, 48) and box.shape == (4,)
    z2, x2, box2 = ds[4]
    assert torch.equal(z, z2) and torch.equal(box, box2)
    assert (box[:2] >= 0).all() and (box[:2] < 1).all() and (box[2:] > 0).all()
    ds.set_epoch(1)
    assert not torch.equal(ds[4][1], x)


def test_pairs_box_matches_crop_without_jitter():
    """With jitter off the search GT box sits in the centre with size 1/factor of the crop."""
    ds = TrackingPairs([[_toy_sequence()]], n_templates=1, template_size=32, search_size=64,
                       scale_jitter=0.0, center_jitter=0.0, augment=False, samples_per_epoch=5)
    for i in range(5):
        _, _, box = ds[i]
        np.testing.assert_allclose(box[:2].numpy(), [0.5, 0.5], atol=0.03)
        assert math.isclose(math.sqrt(box[2] * box[3]), 0.25, rel_tol=0.1)


def test_pairs_from_synthetic_spec():
    ds = TrackingPairs.from_spec("synthetic", n_templates=2, template_size=64, search_size=64,
                                 samples_per_epoch=4)
    z, x, box = ds[0]
    assert z.shape == (2, 3, 64, 64) and torch.isfinite(x).all()
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 2, 3, 64, 64) and batch[2].shape == (2, 4)


@pytest.mark.parametrize("cache", [0, 2])
def test_scene_cache_changes_speed_not_samples(cache):
    """A scene is a pure function of its seed: samples are identical whatever the cache holds."""
    kw = dict(n_templates=1, template_size=32, search_size=32, samples_per_epoch=6, seed=3)
    ref = TrackingPairs.from_spec("synthetic:4", scene_cache=4, **kw)
    other = TrackingPairs.from_spec("synthetic:4", scene_cache=cache, **kw)
    for i in (0, 1, 2, 3, 4, 5, 0):
        for a, b in zip(ref[i], other[i]):
            assert torch.equal(a, b)
    assert other.sources[0]._get.cache_info().maxsize == cache


def test_scene_cache_rejects_negative():
    with pytest.raises(ValueError, match="scene cache"):
        TrackingPairs.from_spec("synthetic:4", scene_cache=-1)
