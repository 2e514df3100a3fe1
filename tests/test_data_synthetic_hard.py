"""synthetic-hard: fixed set + disjoint validation twin, and each hard case does what it says."""

import math

import numpy as np
import pytest

from spiketrack.model.data import synthetic
from spiketrack.model.data.datasets import load_eval_dataset
from spiketrack.model.data.sampler import load_source
from spiketrack.model.data.synthetic import HARD_CASES, HardSyntheticScene, make_sequence


def _scene_with(case: str, start: int = 0) -> HardSyntheticScene:
    for seed in range(start, start + 400):
        s = HardSyntheticScene(seed)
        if case in s.cases:
            return s
    raise AssertionError(f"no scene with {case}")


def test_fixed_sets_are_deterministic_and_disjoint():
    kind, a = load_eval_dataset("synthetic-hard", 3)
    _, b = load_eval_dataset("synthetic-hard", 3)
    _, v = load_eval_dataset("synthetic-hard-val", 3)
    _, plain = load_eval_dataset("synthetic", 3)
    assert kind == "synthetic-hard" and [s.name for s in a] == ["synthetic-hard-000", "synthetic-hard-001",
                                                                "synthetic-hard-002"]
    np.testing.assert_array_equal(a[1].boxes, b[1].boxes)
    np.testing.assert_array_equal(a[1].frame(40), b[1].frame(40))
    seeds = {s.meta["seed"] for s in a} | {s.meta["seed"] for s in v} | {s.meta["seed"] for s in plain}
    assert len(seeds) == 9  # no scene shared between the sets
    assert all(len(s) == synthetic.BENCHMARK_FRAMES and s.visible[0] for s in a + v)
    assert all(2 <= len(s.meta["cases"]) <= 4 and set(s.meta["cases"]) <= set(HARD_CASES) for s in a + v)


def test_every_case_occurs_in_the_benchmark():
    _, seqs = load_eval_dataset("synthetic-hard")
    assert len(seqs) == 24
    seen = {c for s in seqs for c in s.meta["cases"]}
    assert seen == set(HARD_CASES)


def test_plain_scenes_are_unchanged_by_the_hard_generator():
    # the hard class must not perturb the plain generator's draws (benchmark figures depend on them)
    a = make_sequence(synthetic.BENCHMARK_SEED, 5)
    b = synthetic.SyntheticScene(synthetic.BENCHMARK_SEED)
    np.testing.assert_array_equal(a.boxes, b.ground_truth(5)[0])
    assert not hasattr(b, "cases")


def test_beside_distractor_looks_like_the_target_and_stays_near_it():
    s = _scene_with("beside")
    comp = [d for d in s.distractors if getattr(d, "mode", None) == "beside"][0]
    assert np.abs(comp.tex - s.target.tex).mean() < 20  # near-identical texture
    for t in range(0, 100, 10):
        cx, cy, w, h, _ = s.target.state(t)
        dx, dy, *_ = comp.state(t)
        assert 0.5 * math.sqrt(w * h) < math.hypot(dx - cx, dy - cy) < 2.0 * math.sqrt(w * h)


def test_crossing_distractor_passes_through_the_target():
    s = _scene_with("cross")
    comp = [d for d in s.distractors if getattr(d, "mode", None) == "cross"][0]
    d = []
    for t in range(100):
        cx, cy, w, h, _ = s.target.state(t)
        x, y, *_ = comp.state(t)
        d.append(math.hypot(x - cx, y - cy) / math.sqrt(w * h))
    assert min(d) < 0.2 and d[0] > 0.9 and d[-1] > 0.9


def test_jumps_are_15_to_20_px():
    s = _scene_with("jumps")
    steps = np.hypot(*np.diff(s.target.offsets[:100], axis=0).T)
    jumps = steps[steps > 0]
    assert len(jumps) >= 5 and jumps.min() >= 15 - 1e-9 and jumps.max() <= 20 + 1e-9


def test_partial_occlusion_hides_part_of_the_target_only():
    s = _scene_with("partial_occlusion")
    t = int(s.occ["t0"]) + 2
    _, frac = s.target_box(t)
    assert 0.25 < frac < 0.8
    _, frac_before = s.target_box(0)
    assert frac_before > frac


def test_low_contrast_and_border_cases():
    lc = _scene_with("low_contrast")
    plain = synthetic.SyntheticScene(lc.seed)
    assert lc.render(10).astype(float).std() < plain.render(10).astype(float).std()
    b = _scene_with("border")
    vis = [b.target_box(t)[1] for t in range(100)]
    assert min(vis) < 0.95  # truncated at the border at some point


def test_training_source_and_errors():
    src = load_source("synthetic-hard:3")
    assert len(src) == 3 and src[0].meta["dataset"] == "synthetic-hard"
    assert src[0].meta["seed"] == synthetic.HARD_TRAIN_SEED_BASE
    with pytest.raises(ValueError, match="scene count"):
        load_source("synthetic-hard:x")
    with pytest.raises(ValueError, match="synthetic-hard"):
        load_eval_dataset("synthetic-hardest")
