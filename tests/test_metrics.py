"""OPE / GOT-10k metrics against hand-computed cases (and the got10k toolkit if installed)."""

import numpy as np
import pytest

from spiketrack.model import metrics as M


def test_iou_hand_cases():
    gt = np.array([[0, 0, 10, 10]] * 5, float)
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 10], [np.nan] * 4])
    np.testing.assert_allclose(M.iou(pred, gt), [1.0, 50 / 150, 0.0, 0.0, 0.0])


def test_iou_bound_clips_boxes_outside_image():
    # prediction half outside a 10x10 image: clipped to the image it equals the gt
    np.testing.assert_allclose(M.iou([[5, 0, 10, 5]], [[5, 0, 5, 5]], bound=(10, 10)), [1.0])
    np.testing.assert_allclose(M.iou([[5, 0, 10, 5]], [[5, 0, 5, 5]]), [0.5])
    # the toolkit's rule moves x to 0 but keeps w (capped at the image width)
    np.testing.assert_allclose(M.clip_to_image([[-5, 0, 10, 5]], 10, 10), [[0, 0, 10, 5]])


def test_center_errors():
    np.testing.assert_allclose(M.center_error([[3, 4, 10, 10]], [[0, 0, 10, 10]]), [5.0])
    np.testing.assert_allclose(M.normalized_center_error([[3, 4, 10, 20]], [[0, 0, 10, 20]]),
                               [np.hypot(0.3, 0.2)])
    assert np.isinf(M.center_error([[0, 0, 0, 0]], [[0, 0, 10, 10]])[0])


def test_sequence_and_summary_hand_computed():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4])
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [30, 0, 10, 10], [0, 0, 10, 10]])
    s = M.score_sequence(pred, gt, image_size=(100, 100))
    assert s.n_evaluated == 3
    # ious 1, 1/3, 0 -> success at t: t=0 -> 2/3 (strict >), t<=0.3 -> 2/3, t>=0.35 -> 1/3, t=1 -> 0
    thr = M.SUCCESS_THRESHOLDS
    exp = np.where(thr < 1 / 3, 2 / 3, 1 / 3)
    exp[-1] = 0.0
    np.testing.assert_allclose(s.success, exp)
    assert s.auc == pytest.approx(exp.mean())
    # centre errors 0, 5, 30: precision at 20 px = 2/3
    assert s.precision[20] == pytest.approx(2 / 3)
    # GOT: first frame skipped, NaN frame skipped -> ious [1/3, 0]
    np.testing.assert_allclose(s.got_ious, [1 / 3, 0])
    summ = M.summarize([s, None])
    assert summ["ao"] == pytest.approx(1 / 6) and summ["sr50"] == 0.0 and summ["sequences"] == 1
    # absent="fail": the invalid frame counts as a failure in the denominator
    f = M.score_sequence(pred, gt, absent="fail")
    assert f.precision[20] == pytest.approx(2 / 4)


def test_visibility_mask_and_frame_weighted_ao():
    gt = np.tile([0, 0, 10, 10], (4, 1)).astype(float)
    pred = gt.copy()
    pred[2] = [50, 50, 10, 10]
    s1 = M.score_sequence(pred, gt, visible=[True, True, False, True])
    assert s1.success[10] == 1.0 and len(s1.got_ious) == 2
    s2 = M.score_sequence(gt[:2], gt[:2])  # one GOT frame, IoU 1
    summ = M.summarize([s1, s2])
    assert summ["ao"] == pytest.approx(1.0)
    s3 = M.score_sequence(pred, gt)
    assert M.summarize([s3, s2])["ao"] == pytest.approx(3 / 4)  # frames: 1, 0, 1, 1 weighted


def test_no_valid_frames():
    assert M.score_sequence([[0, 0, 1, 1]], [[0, 0, 0, 0]]) is None
    with pytest.raises(ValueError):
        M.summarize([None])
    with pytest.raises(ValueError, match="ground-truth"):
        M.score_sequence([[0, 0, 1, 1]], [[0, 0, 1, 1], [0, 0, 1, 1]])


def test_against_got10k_toolkit():
    gm = pytest.importorskip("got10k.utils.metrics")
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(50, 30, (200, 4))) + 1
    b = np.abs(rng.normal(50, 30, (200, 4))) + 1
    np.testing.assert_allclose(M.iou(a, b), gm.rect_iou(a.copy(), b.copy()), atol=1e-12)
    np.testing.assert_allclose(M.iou(a, b, bound=(80, 60)), gm.rect_iou(a.copy(), b.copy(), bound=(80, 60)),
                               atol=1e-12)
    np.testing.assert_allclose(M.center_error(a, b), gm.center_error(a, b))
    # OTB experiment curves: success = mean(iou > linspace(0,1,21)), precision = mean(ce <= 0..50)
    s = M.score_sequence(a, b)
    ious = gm.rect_iou(a.copy(), b.copy())
    np.testing.assert_allclose(s.success, np.mean(ious[:, None] > np.linspace(0, 1, 21)[None], 0))
    ce = gm.center_error(a, b)
    np.testing.assert_allclose(s.precision, np.mean(ce[:, None] <= np.arange(51)[None], 0))
