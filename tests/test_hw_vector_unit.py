"""The run-time-configured vector unit against the golden functions (bit for bit, saturation
counts) and its cycle model (hw/engine_cycles.vector_cost, cycle for cycle): every op through
one elaborated design."""

import pytest
import torch

from spiketrack.hw.engine_cycles import Engine, vector_cost
from spiketrack.hw.vector_unit import HORNER_STEPS, VecMode, bilinear_fields, horner_fields, reads_per_word
from spiketrack.quant.golden.arith import csd_terms, requantize, saturate, times_csd
from spiketrack.quant.golden.neuron import Decay, mean_fusion, ni_lif
from spiketrack.quant.golden.resample import avg_pool_pow2, upsample_bilinear, upsample_nearest
from spiketrack.quant.ir import TensorType
from spiketrack.sim.vector_unit_sim import (add_job, bilinear_job, fusion_job, mul_const_job, neuron_job, pool_job,
                                            run_vector_jobs)


def _t(x, kind="stream"):
    return TensorType(tuple(x.shape), kind, 16 if kind == "stream" else 3, kind == "stream", 8 if kind == "stream" else 2)


def test_vector_ops_equal_golden_and_cycle_model():
    g = torch.Generator().manual_seed(0)
    decays = [[[1, 1]], [[1, 2], [-1, 4]]]
    x = torch.randint(-600, 900, (3, 12, 4, 4), generator=g)        # 12 channels: a partial second word
    c = torch.randint(-100, 100, (3, 12, 4, 4), generator=g)
    a = torch.randint(-30000, 30000, (1, 8, 4, 4), generator=g)     # broadcast over T = 2
    b = torch.randint(-30000, 30000, (2, 8, 2, 2), generator=g)     # upsampled x2
    p = torch.randint(-3000, 3000, (2, 10, 4, 4), generator=g)
    lv = torch.randint(0, 5, (3, 16, 2, 2), generator=g)
    jobs = [neuron_job(x, 8, decays, const=c), add_job(a, b, up=1), pool_job(p, 2), fusion_job(lv)]
    run_vector_jobs(jobs)
    e = Engine(8)

    xs, n1 = saturate(x + c, 16)
    k, _, n2 = ni_lif(xs, 8, 16, tuple(Decay(tuple(map(tuple, d))) for d in decays))
    assert torch.equal(jobs[0].result["out"], k) and jobs[0].result["saturated"] == n1 + n2
    assert jobs[0].result["cycles"] == vector_cost(e, _t(k, "levels"), [_t(x)], const_bits=8, neuron=True).cycles

    s, n = saturate(a + upsample_nearest(b, 2), 16)
    assert n > 0 and jobs[1].result["saturated"] == n
    assert torch.equal(jobs[1].result["out"], s)
    assert jobs[1].result["cycles"] == vector_cost(e, _t(s), [_t(a), _t(b)]).cycles

    pooled, n = avg_pool_pow2(p, 2, 16)
    assert torch.equal(jobs[2].result["out"], pooled)
    assert jobs[2].result["cycles"] == vector_cost(e, _t(pooled), [_t(p)], reads_per_word=4).cycles

    fused = mean_fusion(lv).unsqueeze(0)
    assert torch.equal(jobs[3].result["out"], fused)
    assert jobs[3].result["cycles"] == vector_cost(e, _t(fused, "levels"), [_t(lv, "levels")], reads_per_word=3).cycles


def test_neuron_ties_round_to_even_when_asked():
    """§IS-7 half_even (imported official models): exact ties at f_m = 8 fire to the even level."""
    x = (torch.arange(-2, 10) * 256 + 128).reshape(1, 12, 1, 1).repeat(1, 1, 2, 2)  # every value a tie
    jobs = run_vector_jobs([neuron_job(x, 8, [], rounding="half_even"), neuron_job(x, 8, [], rounding="half_up")])
    even, up = (ni_lif(x, 8, 16, (), r)[0] for r in ("half_even", "half_up"))
    assert not torch.equal(even, up)
    assert torch.equal(jobs[0].result["out"], even) and torch.equal(jobs[1].result["out"], up)


def test_bilinear_upsampling_and_constant_products_equal_golden_and_cycle_model():
    """The pooling datapath's two read sequences (§IS-13 bilinear by 2 and 4, borders clamped, a
    1×1 input; §IS-12 Horner product by 181, 209 and 3, saturating, with a left shift), interleaved
    with a plain pooling job so that no variant's setting leaks into the next op."""
    g = torch.Generator().manual_seed(1)
    x2 = torch.randint(-32768, 32768, (2, 12, 3, 4), generator=g)
    x4 = torch.randint(-32768, 32768, (1, 8, 2, 3), generator=g)
    x1 = torch.randint(-32768, 32768, (1, 8, 1, 1), generator=g)
    xm = torch.randint(-32768, 32768, (2, 10, 2, 3), generator=g)
    p = torch.randint(-3000, 3000, (1, 8, 4, 4), generator=g)
    ups, prods = [(x2, 2), (x4, 4), (x1, 4)], [(181, 6), (209, 7), (3, -2)]
    jobs = [bilinear_job(x, f) for x, f in ups[:2]] + [mul_const_job(xm, *ms) for ms in prods] + \
        [pool_job(p, 2), bilinear_job(*ups[2])]
    run_vector_jobs(jobs)
    e = Engine(8)
    for job, (x, f) in zip(jobs[:2] + jobs[-1:], ups):
        ref, n = upsample_bilinear(x, f, 16)
        assert torch.equal(job.result["out"], ref) and job.result["saturated"] == n, f
        assert job.result["cycles"] == vector_cost(e, _t(ref), [_t(x)], reads_per_word=(2 * f) ** 2).cycles
    for job, (m, s) in zip(jobs[2:5], prods):
        ref, n = requantize(times_csd(xm, csd_terms(m)), s, 16)
        assert n > 0 and torch.equal(job.result["out"], ref) and job.result["saturated"] == n, m
        assert job.result["cycles"] == vector_cost(e, _t(ref), [_t(xm)], reads_per_word=HORNER_STEPS).cycles
    pooled, _ = avg_pool_pow2(p, 2, 16)
    assert torch.equal(jobs[5].result["out"], pooled)
    assert jobs[5].result["cycles"] == vector_cost(e, _t(pooled), [_t(p)], reads_per_word=4).cycles


def test_descriptors_the_unit_would_run_differently_from_its_model_are_refused():
    """A bilinear step other than 2x / 4x (``up`` 1 or 2: the loop bound is 3 bits) or a Horner
    product with ``r_y`` != 1 (the unit would repeat its steps) has no exact cycle model: refused."""
    for p in (2, 4):
        assert reads_per_word({"mode": VecMode.POOL, **bilinear_fields(p, 3, 1)}) == (2 * p) ** 2
    assert reads_per_word({"mode": VecMode.POOL, "r_y": 1, **horner_fields(181, 6)}) == HORNER_STEPS
    with pytest.raises(ValueError, match="bilinear descriptor: up must be 1 or 2.*got 3"):
        reads_per_word({"mode": VecMode.POOL, "bil": 1, "up": 3})
    with pytest.raises(ValueError, match="Horner. descriptor: r_y must be 1, got 2"):
        reads_per_word({"mode": VecMode.POOL, **horner_fields(181, 6), "r_y": 2})


def test_one_column_and_one_row_outputs_equal_golden_and_cycle_model():
    """Outputs one column wide and one row high, two channel words, T = 2 and T = 1: every loop
    counter restarts with a bound of 0 somewhere (the loop-end flags of the sequencer)."""
    g = torch.Generator().manual_seed(3)
    e = Engine(8)
    shapes = [(2, 16, 3, 1), (2, 16, 1, 3)]
    xs = [torch.randint(-600, 900, s, generator=g) for s in shapes]
    ab = [(torch.randint(-30000, 30000, s, generator=g), torch.randint(-30000, 30000, s, generator=g))
          for s in shapes + [(1, 16, 2, 2)]]     # T = 1: t restarts with a bound of 0
    jobs = [neuron_job(x, 8, [[[1, 1]], [[1, 2]]]) for x in xs] + [add_job(a, b) for a, b in ab]
    run_vector_jobs(jobs)
    for job, x in zip(jobs[:2], xs):
        k, _, _ = ni_lif(x, 8, 16, (Decay(((1, 1),)), Decay(((1, 2),))))
        assert torch.equal(job.result["out"], k), tuple(x.shape)
        assert job.result["cycles"] == vector_cost(e, _t(k, "levels"), [_t(x)], neuron=True).cycles
    for job, (a, b) in zip(jobs[2:], ab):
        s, _ = saturate(a + b, 16)
        assert torch.equal(job.result["out"], s), tuple(a.shape)
        assert job.result["cycles"] == vector_cost(e, _t(s), [_t(a), _t(b)]).cycles
