"""The run-time-configured conv engine against the golden functions, bit for bit, and against its
cycle model (hw/engine_cycles.conv_cost), cycle for cycle. One elaborated design serves every
layer shape below: only the descriptor and the memory contents change."""

import pytest
import torch

from spiketrack.hw.engine_cycles import Engine, conv_cost, retrieve_cost
from spiketrack.quant.golden.arith import requantize, saturate
from spiketrack.quant.golden.memory import retrieve
from spiketrack.quant.golden.neuron import Decay, neuron_layer
from spiketrack.quant.golden.synapse import conv2d_acc, stem_bitplane_acc
from spiketrack.quant.ir import Layer, TensorType
from spiketrack.sim.conv_engine_sim import conv_job, retrieval_job, run_conv_layer, run_jobs
from spiketrack.sim.cores_sim import random_levels

DECAYS = [[[1, 1]], [[1, 2], [-1, 4]], [[-1, 1], [1, 3]]]

# (T, C_in, H, W, C_out, k, stride, pad, depthwise, residual, neuron, density)
CASES = {
    "1x1": (1, 8, 4, 4, 8, 1, 1, 0, False, False, False, 0.4),
    "3x3_two_words": (1, 16, 5, 5, 8, 3, 1, 1, False, False, False, 0.4),
    "3x3_stride2_two_chunks": (1, 8, 6, 6, 16, 3, 2, 1, False, False, False, 0.4),
    "depthwise": (1, 16, 6, 6, 16, 3, 1, 1, True, False, False, 0.4),
    "residual_partial_chunk": (1, 8, 4, 4, 12, 1, 1, 0, False, True, False, 0.4),
    "neuron_T3_decays": (3, 12, 5, 5, 8, 3, 1, 1, False, False, True, 0.4),
    "7x7_stride2_pad3": (1, 8, 9, 9, 8, 7, 2, 3, False, False, False, 0.3),
    "all_zero_T2": (2, 8, 4, 4, 8, 1, 1, 0, False, False, False, 0.0),
    "dense_three_words": (1, 20, 4, 4, 8, 1, 1, 0, False, False, False, 1.0),
    "residual_neuron_T2": (2, 8, 4, 4, 8, 3, 1, 1, False, True, True, 0.5),
    # one output column / one output row, two chunks: the loop-end flags of a restarted counter
    "one_column_two_chunks": (1, 8, 5, 1, 16, 1, 1, 0, False, False, False, 0.5),
    "one_row_two_chunks": (1, 8, 1, 5, 16, 1, 1, 0, False, False, False, 0.5),
}


def _golden(lv, w, b, shifts, stride, pad, groups, res, decays, neuron):
    acc = conv2d_acc(lv, w, b, stride, pad, groups)
    s = torch.tensor(shifts).view(1, -1, 1, 1)
    if neuron:
        k, _, n = neuron_layer(acc, s, 8, 16, res, tuple(Decay(tuple(map(tuple, d))) for d in decays))
        return k, n
    x, n = requantize(acc, s, 16)
    if res is not None:
        x, n2 = saturate(x + res, 16)
        n += n2
    return x, n


def test_stem_on_pixels_equals_golden_bitplanes_and_cycle_model():
    """§IS-11: the stem's bit-plane accumulation on uint8 pixels, 7x7 stride 2 pad 3, two chunks."""
    g = torch.Generator().manual_seed(11)
    px = torch.randint(0, 256, (2, 3, 10, 10), generator=g)
    px[:, :, :2] = 0   # zero pixels cost one cycle per word like zero levels
    w = torch.randint(-127, 128, (12, 3, 7, 7), generator=g)
    b = torch.randint(-30000, 30000, (12,), generator=g)
    shifts = [int(s) for s in torch.randint(6, 12, (12,), generator=g)]
    out = run_conv_layer(px, w, b, shifts, stride=2, padding=3, stem=True, neuron=(8, DECAYS[:1]))
    acc = stem_bitplane_acc(px, w, b, 2, 3)
    ref, _, n_sat = neuron_layer(acc, torch.tensor(shifts).view(1, -1, 1, 1), 8, 16, None, (Decay(((1, 1),)),))
    assert torch.equal(out["out"], ref) and out["saturated"] == n_sat
    conv = Layer("c", "stem_conv", ["x"], {"stride": 2, "padding": 3, "groups": 1, "acc_bits": 24, "weight_bits": 8,
                                           "acc_exp": [0] * 12})
    model = conv_cost(Engine(8), conv, tuple(w.shape), TensorType((2, 3, 10, 10), "pixels", 8, False, 0),
                      TensorType((2, 12, 5, 5), "levels", 3, False, 2), px, residual=False)
    assert out["cycles"] == model.cycles


@pytest.mark.parametrize("name", list(CASES))
def test_engine_equals_golden_and_cycle_model(name):
    T, C, H, W, co, k, stride, pad, dw, residual, neuron, density = CASES[name]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    lv = random_levels(g, (T, C, H, W), density)
    w = torch.randint(-127, 128, (co, 1 if dw else C, k, k), generator=g)
    b = torch.randint(-3000, 3000, (co,), generator=g)
    shifts = [int(s) for s in torch.randint(-2, 9, (co,), generator=g)]  # negative shifts saturate
    ho, wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    res = torch.randint(-20000, 20000, (T, co, ho, wo), generator=g) if residual else None
    decays = DECAYS[:T - 1]
    out = run_conv_layer(lv, w, b, shifts, stride=stride, padding=pad, depthwise=dw, residual=res,
                         neuron=(8, decays) if neuron else None)
    ref, n_sat = _golden(lv, w, b, shifts, stride, pad, C if dw else 1, res, decays, neuron)
    assert torch.equal(out["out"], ref), (out["out"] != ref).nonzero()[:3].tolist()
    assert out["saturated"] == n_sat
    conv = Layer("c", "conv", ["x"], {"stride": stride, "padding": pad, "groups": C if dw else 1,
                                      "acc_bits": 20, "weight_bits": 8, "acc_exp": [0] * co})
    model = conv_cost(Engine(8), conv, tuple(w.shape), TensorType((T, C, H, W), "levels", 3, False, 2),
                      TensorType((T, co, ho, wo), "levels", 3, False, 2), lv, residual=residual)
    assert out["cycles"] == model.cycles


def test_one_design_runs_several_layers_back_to_back():
    """Memories are loaded at run time: three different layers through one elaborated engine."""
    g = torch.Generator().manual_seed(5)
    jobs, refs = [], []
    for k, pad, c_in, co, dw in ((1, 0, 8, 16, False), (3, 1, 16, 16, True), (3, 1, 12, 8, False)):
        lv = random_levels(g, (1, c_in, 4, 4), 0.5)
        w = torch.randint(-127, 128, (co, 1 if dw else c_in, k, k), generator=g)
        b = torch.randint(-500, 500, (co,), generator=g)
        jobs.append(conv_job(lv, w, b, 3, padding=pad, depthwise=dw))
        refs.append(requantize(conv2d_acc(lv, w, b, 1, pad, c_in if dw else 1), 3, 16)[0])
    run_jobs(jobs)
    for job, ref in zip(jobs, refs):
        assert torch.equal(job.result["out"], ref)


def test_retrieval_on_the_engine_equals_golden_and_cycle_model():
    """R = Q·M per head (§IS-8) as a grouped 1×1 conv with template-memory weights, T = 3 with one
    memory per timestep, then requantise and NI-LIF over T (the MRM's retrieve -> sn_r)."""
    g = torch.Generator().manual_seed(8)
    T, heads, d_h, d_v, H, W = 3, 2, 16, 16, 3, 4
    q = random_levels(g, (T, heads * d_h, H, W), 0.4)
    mem = torch.randint(0, 1 << 11, (T, heads, d_h, d_v), generator=g)
    job = retrieval_job(q, mem, 7, neuron=(8, DECAYS[:2]))
    run_jobs([job])
    r = torch.stack([retrieve(q[t].reshape(heads, d_h, -1), mem[t]) for t in range(T)]).reshape(T, heads * d_v, H, W)
    ref, _, n_sat = neuron_layer(r, 7, 8, 16, None, tuple(Decay(tuple(map(tuple, d))) for d in DECAYS[:2]))
    assert torch.equal(job.result["out"], ref) and job.result["saturated"] == n_sat
    model = retrieve_cost(Engine(8), TensorType((T, heads * d_h, H, W), "levels", 3, False, 2),
                          TensorType((T, heads, d_h, d_v), "memory", 11, False, 4),
                          TensorType((T, heads * d_v, H, W), "acc", 20, False, 7), q)
    assert job.result["cycles"] == model.cycles


def test_grouped_layout_that_would_misalign_words_is_refused():
    with pytest.raises(ValueError, match="C_out/groups = 12 to be multiples of 8"):
        retrieval_job(torch.zeros(1, 32, 2, 2, dtype=torch.int64), torch.zeros(1, 2, 16, 12, dtype=torch.int64), 7)


def test_shift_range_ends_equal_golden_and_shifts_outside_are_refused():
    """The epilogue applies right shifts up to 31 and left shifts up to 15 (SHIFT_MAX, SHIFT_MIN):
    both ends equal the golden requantisation; one step past either end, or a bias wider than the
    table's field, is refused when the tables are packed instead of wrapping silently."""
    from spiketrack.hw.conv_engine import BIAS_BITS, SHIFT_MAX, SHIFT_MIN

    g = torch.Generator().manual_seed(31)
    lv = random_levels(g, (1, 8, 3, 3), 0.5)
    w = torch.randint(-3, 4, (8, 8, 1, 1), generator=g)
    b = torch.randint(-2, 3, (8,), generator=g)
    shifts = [SHIFT_MAX, SHIFT_MIN, SHIFT_MAX - 1, SHIFT_MIN + 1, 0, 1, -1, -8]
    out = run_conv_layer(lv, w, b, shifts, stride=1, padding=0)
    ref, n_sat = _golden(lv, w, b, shifts, 1, 0, 1, None, [], False)
    assert torch.equal(out["out"], ref) and out["saturated"] == n_sat and n_sat > 0
    for bad in (SHIFT_MIN - 1, SHIFT_MAX + 1):
        with pytest.raises(ValueError, match=f"channel 0: requantisation shift {bad} is outside"):
            run_conv_layer(lv, w, b, [bad] + shifts[1:], stride=1, padding=0)
    with pytest.raises(ValueError, match=f"channel 2: bias {1 << (BIAS_BITS - 1)} does not fit"):
        run_conv_layer(lv, w, torch.tensor([0, 0, 1 << (BIAS_BITS - 1), 0, 0, 0, 0, 0]), shifts, stride=1, padding=0)


def _ranges(chunks):
    """Chunk ranges that cover 0..chunks-1: single chunks first, then the rest in one range."""
    return [(c, c + 1) for c in range(min(2, chunks - 1))] + [(min(2, chunks - 1), chunks)]


@pytest.mark.parametrize("kind", ["plain", "depthwise", "stem", "retrieval"])
def test_chunk_ranges_cover_the_layer_and_each_is_cycle_exact(kind):
    """A layer run as several descriptors, each over a range of output chunks (as the compiler
    splits a layer whose weights stream through a cache): together they write exactly the whole
    layer's output, and each range takes ``conv_cost(chunk_range=)`` cycles."""
    from spiketrack.hw.conv_engine import chunk_range_fields

    g = torch.Generator().manual_seed(23)
    T, H, W = 2, 5, 5
    if kind == "retrieval":   # grouped (one group per head, two chunks per head): g_first / cig_first
        q = random_levels(g, (T, 16, H, W), 0.5)
        mem = torch.randint(0, 1 << 11, (T, 2, 8, 16), generator=g)
        whole = retrieval_job(q, mem, 6, neuron=(8, DECAYS[:T - 1]))
    else:
        C, co = (24, 24) if kind == "depthwise" else (3, 24) if kind == "stem" else (16, 24)
        x = (torch.randint(0, 256, (T, 3, H, W), generator=g) if kind == "stem" else random_levels(g, (T, C, H, W), 0.5))
        w = torch.randint(-127, 128, (co, 1 if kind == "depthwise" else C, 3, 3), generator=g)
        b = torch.randint(-3000, 3000, (co,), generator=g)
        whole = conv_job(x, w, b, [int(s) for s in torch.randint(1, 9, (co,), generator=g)], padding=1,
                         depthwise=kind == "depthwise", stem=kind == "stem", neuron=(8, DECAYS[:T - 1]))
    chunks = whole.desc["chunks"]
    assert chunks == 3 + (kind == "retrieval")
    parts = [type(whole)(chunk_range_fields(whole.desc, a, b), whole.images, whole.out_shape, whole.levels_out)
             for a, b in _ranges(chunks)]
    run_jobs([whole, *parts])
    out = torch.zeros_like(whole.result["out"])
    for (a, b), job in zip(_ranges(chunks), parts):
        out[:, a * 8:b * 8] = job.result["out"][:, a * 8:b * 8]
    assert torch.equal(out, whole.result["out"])
    # the cycle model of each range
    if kind == "retrieval":
        return   # retrieval ranges: weights from the template memory, never fetched (no split)
    lay = Layer("c", "stem_conv" if kind == "stem" else "conv", ["x"],
                {"stride": 1, "padding": 1, "groups": co if kind == "depthwise" else 1, "acc_bits": 24,
                 "weight_bits": 8, "acc_exp": [0] * co})
    in_t = TensorType((T, C, H, W), "pixels" if kind == "stem" else "levels", 8 if kind == "stem" else 3, False, 0)
    out_t = TensorType((T, co, H, W), "levels", 3, False, 2)
    for (a, b), job in zip(_ranges(chunks), parts):
        model = conv_cost(Engine(8), lay, tuple(w.shape), in_t, out_t, x, residual=False, chunk_range=(a, b))
        assert job.result["cycles"] == model.cycles, (a, b)
    assert sum(conv_cost(Engine(8), lay, tuple(w.shape), in_t, out_t, x, residual=False, chunk_range=r).cycles
               for r in _ranges(chunks)) > conv_cost(Engine(8), lay, tuple(w.shape), in_t, out_t, x, residual=False).cycles
