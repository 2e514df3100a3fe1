"""The run-time-configured vector unit against the golden functions (bit for bit, saturation
counts) and its cycle model (hw/engine_cycles.vector_cost, cycle for cycle): four ops through
one elaborated design."""

import torch

from spiketrack.hw.engine_cycles import Engine, vector_cost
from spiketrack.quant.golden.arith import saturate
from spiketrack.quant.golden.neuron import Decay, mean_fusion, ni_lif
from spiketrack.quant.golden.resample import avg_pool_pow2, upsample_nearest
from spiketrack.quant.ir import TensorType
from spiketrack.sim.vector_unit_sim import add_job, fusion_job, neuron_job, pool_job, run_vector_jobs


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
