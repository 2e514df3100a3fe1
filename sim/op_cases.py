"""Random RTL-vs-golden cases for the compiler's hardware ops (``compiler/hwops.py``).

Each function builds one random instance of one hardware op, runs it on the accelerator unit that
executes it (conv engine, vector unit or memory builder, in amaranth.sim through
``sim/unit_sim.py``), computes the reference with the golden functions of
:mod:`spiketrack.quant.golden` and the cycle count with the cycle model of
:mod:`spiketrack.hw.engine_cycles`, and returns::

    {"type": "accel.<kind>", "match": bool, "cycles_exact": bool, "cycles": int, "model": int,
     "geom": {...}}

:meth:`HwOp.random_case` calls ``<kind>_case`` for the op class of that ``kind``; ``spiketrack
verify --fuzz`` registers one layer type ``accel.<kind>`` per op class of
:data:`compiler.hwops.REGISTRY` that has a unit (the view op has none). Shapes stay small (amaranth.sim runs a few thousand cycles a case) and
within the units' limits (docs/hw_conv_engine.md); spike density is drawn from 0 to 1.
"""

from __future__ import annotations

import random

import torch

from spiketrack.hw.engine_cycles import Engine, conv_cost, memory_build_cost, retrieve_cost, vector_cost
from spiketrack.hw.vector_unit import HORNER_STEPS
from spiketrack.quant.golden.arith import csd_terms, requantize, saturate, times_csd
from spiketrack.quant.golden.memory import memory_build, retrieve
from spiketrack.quant.golden.neuron import Decay, mean_fusion, neuron_layer, ni_lif
from spiketrack.quant.golden.resample import avg_pool_pow2, upsample_bilinear, upsample_nearest
from spiketrack.quant.golden.synapse import conv2d_acc, stem_bitplane_acc
from spiketrack.quant.ir import Layer, TensorType
from spiketrack.sim.cores_sim import random_levels

__all__ = ["spike_conv_case", "stem_case", "retrieval_case", "memory_build_case", "neuron_case", "add_case",
           "avg_pool_case", "upsample_bilinear_case", "mul_const_case", "mean_fusion_case"]

LANES = 8
#: NI-LIF decay tables of the template pass (T = 1, 2, 3): ``decays[:T-1]`` (§IS-7)
DECAYS = [[[1, 1]], [[1, 2], [-1, 4]], [[-1, 1], [1, 3]]]


def _gen(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.randrange(1 << 30))


def _density(rng: random.Random) -> float:
    return rng.choice([0.0, 0.1, 0.3, 0.5, 0.7, 1.0])


def _decays(T: int):
    return tuple(Decay(tuple(map(tuple, d))) for d in DECAYS[:T - 1])


def _t(shape, kind: str) -> TensorType:
    return TensorType(tuple(shape), kind, 16 if kind == "stream" else 3, kind == "stream", 8 if kind == "stream" else 2)


def _result(kind: str, out: torch.Tensor, ref: torch.Tensor, sat, ref_sat, cycles: int, model: int, geom: dict) -> dict:
    match = tuple(out.shape) == tuple(ref.shape) and torch.equal(out, ref) and (sat is None or sat == ref_sat)
    return {"type": f"accel.{kind}", "match": bool(match), "cycles_exact": int(cycles) == int(model),
            "cycles": int(cycles), "model": int(model), "geom": geom}


# ---------------------------------------------------------------------------------------------- conv engine

def spike_conv_case(rng: random.Random) -> dict:
    """conv -> requant -> [add] / [neuron]: k×k, strided, depthwise, 1×1, residual or NI-LIF."""
    from spiketrack.sim.conv_engine_sim import run_conv_layer

    g = _gen(rng)
    dw = rng.random() < 0.25
    k = rng.choice([1, 3, 3, 5]) if not dw else rng.choice([3, 5])
    stride = rng.choice([1, 1, 2])
    pad = rng.randint(0, k // 2)
    T = rng.randint(1, 3)
    C = rng.choice([8, 16]) if dw else rng.randint(3, 24)
    co = C if dw else rng.choice([8, 12, 16])
    H, W = rng.randint(max(k - 2 * pad, 2), 7), rng.randint(max(k - 2 * pad, 2), 7)
    ho, wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    neuron = rng.random() < 0.5
    residual = rng.random() < 0.3
    lv = random_levels(g, (T, C, H, W), _density(rng))
    w = torch.randint(-127, 128, (co, 1 if dw else C, k, k), generator=g)
    b = torch.randint(-3000, 3000, (co,), generator=g)
    shifts = [int(s) for s in torch.randint(-1, 9, (co,), generator=g)]
    res = torch.randint(-20000, 20000, (T, co, ho, wo), generator=g) if residual else None
    out = run_conv_layer(lv, w, b, shifts, stride=stride, padding=pad, depthwise=dw, residual=res,
                         neuron=(8, DECAYS[:T - 1]) if neuron else None)
    acc = conv2d_acc(lv, w, b, stride, pad, C if dw else 1)
    s = torch.tensor(shifts).view(1, -1, 1, 1)
    if neuron:
        ref, _, n_sat = neuron_layer(acc, s, 8, 16, res, _decays(T))
    else:
        ref, n_sat = requantize(acc, s, 16)
        if res is not None:
            ref, n2 = saturate(ref + res, 16)
            n_sat += n2
    conv = Layer("c", "conv", ["x"], {"stride": stride, "padding": pad, "groups": C if dw else 1, "acc_bits": 20,
                                      "weight_bits": 8, "acc_exp": [0] * co})
    model = conv_cost(Engine(LANES), conv, tuple(w.shape), _t((T, C, H, W), "levels"),
                      _t((T, co, ho, wo), "levels" if neuron else "stream"), lv, residual=residual).cycles
    return _result("spike_conv", out["out"], ref, out["saturated"], n_sat, out["cycles"], model,
                   {"T": T, "C": C, "H": H, "W": W, "C_out": co, "k": k, "stride": stride, "pad": pad,
                    "depthwise": dw, "neuron": neuron, "residual": residual})


def stem_case(rng: random.Random) -> dict:
    """The stem's bit-plane convolution on uint8 pixels (§IS-11) -> requant [-> NI-LIF]."""
    from spiketrack.sim.conv_engine_sim import run_conv_layer

    g = _gen(rng)
    T, co = rng.randint(1, 2), rng.choice([8, 12, 16])
    k, stride = rng.choice([(3, 1), (3, 2), (7, 2)])
    pad = k // 2
    H, W = rng.randint(4, 9), rng.randint(4, 9)
    ho, wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    px = torch.randint(0, 256, (T, 3, H, W), generator=g)
    px = torch.where(torch.rand(T, 1, H, W, generator=g) < _density(rng), px, torch.zeros_like(px))
    w = torch.randint(-127, 128, (co, 3, k, k), generator=g)
    b = torch.randint(-30000, 30000, (co,), generator=g)
    shifts = [int(s) for s in torch.randint(6, 12, (co,), generator=g)]
    neuron = rng.random() < 0.7
    out = run_conv_layer(px, w, b, shifts, stride=stride, padding=pad, stem=True,
                         neuron=(8, DECAYS[:T - 1]) if neuron else None)
    acc = stem_bitplane_acc(px, w, b, stride, pad)
    s = torch.tensor(shifts).view(1, -1, 1, 1)
    if neuron:
        ref, _, n_sat = neuron_layer(acc, s, 8, 16, None, _decays(T))
    else:
        ref, n_sat = requantize(acc, s, 16)
    conv = Layer("c", "stem_conv", ["x"], {"stride": stride, "padding": pad, "groups": 1, "acc_bits": 24,
                                           "weight_bits": 8, "acc_exp": [0] * co})
    model = conv_cost(Engine(LANES), conv, tuple(w.shape), TensorType((T, 3, H, W), "pixels", 8, False, 0),
                      _t((T, co, ho, wo), "levels" if neuron else "stream"), px, residual=False).cycles
    return _result("stem", out["out"], ref, out["saturated"], n_sat, out["cycles"], model,
                   {"T": T, "H": H, "W": W, "C_out": co, "k": k, "stride": stride, "neuron": neuron})


def retrieval_case(rng: random.Random) -> dict:
    """R = Q·M per head (§IS-8) -> requant -> NI-LIF over T, template-memory weight lines."""
    from spiketrack.sim.conv_engine_sim import retrieval_job, run_jobs

    g = _gen(rng)
    T, heads = rng.randint(1, 3), rng.randint(1, 3)
    d_h, d_v = rng.choice([8, 16]), rng.choice([8, 16])
    H, W = rng.randint(1, 4), rng.randint(1, 4)
    shift = rng.randint(4, 10)
    q = random_levels(g, (T, heads * d_h, H, W), _density(rng))
    mem = torch.randint(0, 1 << 11, (T, heads, d_h, d_v), generator=g)
    job = retrieval_job(q, mem, shift, neuron=(8, DECAYS[:T - 1]))
    run_jobs([job], LANES)
    r = torch.stack([retrieve(q[t].reshape(heads, d_h, -1), mem[t]) for t in range(T)]).reshape(T, heads * d_v, H, W)
    ref, _, n_sat = neuron_layer(r, shift, 8, 16, None, _decays(T))
    model = retrieve_cost(Engine(LANES), _t(q.shape, "levels"), TensorType((T, heads, d_h, d_v), "memory", 11, False, 4),
                          TensorType((T, heads * d_v, H, W), "acc", 20, False, 7), q).cycles
    return _result("retrieval", job.result["out"], ref, job.result["saturated"], n_sat, job.result["cycles"], model,
                   {"T": T, "heads": heads, "d_h": d_h, "d_v": d_v, "H": H, "W": W})


# ---------------------------------------------------------------------------------------------- memory builder

def memory_build_case(rng: random.Random) -> dict:
    """M = Kᵀ·V per head and timestep (§IS-8)."""
    from spiketrack.sim.memory_builder_sim import mb_job, run_mb_jobs

    g = _gen(rng)
    T, heads = rng.randint(1, 3), rng.randint(1, 3)
    d_h, d_v = rng.choice([8, 16]), rng.choice([8, 16])
    H, W = rng.randint(1, 3), rng.randint(1, 3)
    k = random_levels(g, (T, heads * d_h, H, W), _density(rng))
    v = random_levels(g, (T, heads * d_v, H, W), _density(rng))
    job = mb_job(k, v, heads, LANES)
    run_mb_jobs([job], LANES)
    ref = torch.stack([memory_build(k[t].reshape(heads, d_h, -1), v[t].reshape(heads, d_v, -1)) for t in range(T)])
    model = memory_build_cost(Engine(LANES), _t(k.shape, "levels"), _t(v.shape, "levels"),
                              TensorType((T, heads, d_h, d_v), "memory", 12, False, 6)).cycles
    return _result("memory_build", job.result["out"], ref, None, None, job.result["cycles"], model,
                   {"T": T, "heads": heads, "d_h": d_h, "d_v": d_v, "H": H, "W": W})


# ---------------------------------------------------------------------------------------------- vector unit

def _vec_shape(rng):
    return rng.randint(1, 3), rng.randint(3, 20), rng.randint(1, 4), rng.randint(1, 4)


def neuron_case(rng: random.Random) -> dict:
    """[positional table add (§IS-6)] -> NI-LIF (§IS-7) over a stream."""
    from spiketrack.sim.vector_unit_sim import neuron_job, run_vector_jobs

    g = _gen(rng)
    T, C, H, W = _vec_shape(rng)
    x = torch.randint(-2000, 3000, (T, C, H, W), generator=g)
    const = torch.randint(-200, 200, (T, C, H, W), generator=g) if rng.random() < 0.5 else None
    rounding = rng.choice(["half_up", "half_up", "half_even"])
    job = neuron_job(x, 8, DECAYS[:T - 1], const=const, lanes=LANES, rounding=rounding)
    run_vector_jobs([job], LANES)
    xs, n1 = saturate(x + const, 16) if const is not None else (x, 0)
    ref, _, n2 = ni_lif(xs, 8, 16, _decays(T), rounding)
    model = vector_cost(Engine(LANES), _t(ref.shape, "levels"), [_t(x.shape, "stream")],
                        const_bits=8 if const is not None else 0, neuron=True).cycles
    return _result("neuron", job.result["out"], ref, job.result["saturated"], n1 + n2, job.result["cycles"], model,
                   {"T": T, "C": C, "H": H, "W": W, "const": const is not None, "rounding": rounding})


def add_case(rng: random.Random) -> dict:
    """Saturating add (§IS-6), one operand broadcast over T or read upsampled (§IS-10)."""
    from spiketrack.sim.vector_unit_sim import add_job, run_vector_jobs

    g = _gen(rng)
    T, C, hb, wb = _vec_shape(rng)
    up = rng.choice([0, 0, 1])
    H, W = hb << up, wb << up
    a = torch.randint(-30000, 30000, (rng.choice([1, T]), C, H, W), generator=g)
    b = torch.randint(-30000, 30000, (T, C, hb, wb), generator=g)
    job = add_job(a, b, up=up, lanes=LANES)
    run_vector_jobs([job], LANES)
    ref, n = saturate(a + upsample_nearest(b, 1 << up), 16)
    model = vector_cost(Engine(LANES), _t(ref.shape, "stream"), [_t(a.shape, "stream"), _t(b.shape, "stream")]).cycles
    return _result("add", job.result["out"], ref, job.result["saturated"], n, job.result["cycles"], model,
                   {"T": T, "C": C, "H": H, "W": W, "up": up, "broadcast": a.shape[0] == 1 and T > 1})


def avg_pool_case(rng: random.Random) -> dict:
    """Power-of-two average pooling (§IS-10)."""
    from spiketrack.sim.vector_unit_sim import pool_job, run_vector_jobs

    g = _gen(rng)
    T, C, h, w = _vec_shape(rng)
    p = rng.choice([2, 4])
    x = torch.randint(-3000, 3000, (T, C, h * p, w * p), generator=g)
    job = pool_job(x, p, LANES)
    run_vector_jobs([job], LANES)
    ref, _ = avg_pool_pow2(x, p, 16)
    model = vector_cost(Engine(LANES), _t(ref.shape, "stream"), [_t(x.shape, "stream")], reads_per_word=p * p).cycles
    return _result("avg_pool", job.result["out"], ref, None, None, job.result["cycles"], model,
                   {"T": T, "C": C, "H": h * p, "W": w * p, "p": p})


def upsample_bilinear_case(rng: random.Random) -> dict:
    """Bilinear upsampling by 2 or 4 (§IS-13): edges clamped, full 16-bit range. ``(2p)²`` cycles
    per output word: by 4, one timestep and inputs up to 2×2 keep a case near 8,000 cycles."""
    from spiketrack.sim.vector_unit_sim import bilinear_job, run_vector_jobs

    g = _gen(rng)
    p = rng.choice([2, 4])
    T, C = (rng.randint(1, 3) if p == 2 else 1), rng.randint(3, 12)
    h, w = rng.randint(1, 4 if p == 2 else 2), rng.randint(1, 4 if p == 2 else 2)
    lim = rng.choice([300, 1 << 15])
    x = torch.randint(-lim, lim, (T, C, h, w), generator=g)
    job = bilinear_job(x, p, LANES)
    run_vector_jobs([job], LANES)
    ref, n = upsample_bilinear(x, p, 16)
    model = vector_cost(Engine(LANES), _t(ref.shape, "stream"), [_t(x.shape, "stream")],
                        reads_per_word=(2 * p) ** 2).cycles
    return _result("upsample_bilinear", job.result["out"], ref, job.result["saturated"], n, job.result["cycles"], model,
                   {"T": T, "C": C, "H": h, "W": w, "p": p})


def mul_const_case(rng: random.Random) -> dict:
    """``requant(x · m, s)`` (§IS-12, §IS-5): the attention-scale constants 181 and 209 or any
    1..255, a stream in the full 16-bit range or the non-negative saturated retrieval range."""
    from spiketrack.sim.vector_unit_sim import mul_const_job, run_vector_jobs

    g = _gen(rng)
    T, C, H, W = _vec_shape(rng)
    m = rng.choice([181, 209, rng.randint(1, 255)])
    shift = rng.randint(-2, 12)
    lo = rng.choice([-(1 << 15), 0])
    x = torch.randint(lo, 1 << 15, (T, C, H, W), generator=g)
    job = mul_const_job(x, m, shift, LANES)
    run_vector_jobs([job], LANES)
    ref, n = requantize(times_csd(x, csd_terms(m)), shift, 16)
    model = vector_cost(Engine(LANES), _t(ref.shape, "stream"), [_t(x.shape, "stream")],
                        reads_per_word=HORNER_STEPS).cycles
    return _result("mul_const", job.result["out"], ref, job.result["saturated"], n, job.result["cycles"], model,
                   {"T": T, "C": C, "H": H, "W": W, "m": m, "shift": shift})


def mean_fusion_case(rng: random.Random) -> dict:
    """Compare-only mean over the template's timesteps (§IS-10)."""
    from spiketrack.sim.vector_unit_sim import fusion_job, run_vector_jobs

    g = _gen(rng)
    T, C, H, W = _vec_shape(rng)
    T += 1
    lv = random_levels(g, (T, C, H, W), _density(rng))
    job = fusion_job(lv, LANES)
    run_vector_jobs([job], LANES)
    ref = mean_fusion(lv).unsqueeze(0)
    model = vector_cost(Engine(LANES), _t(ref.shape, "levels"), [_t(lv.shape, "levels")], reads_per_word=T).cycles
    return _result("mean_fusion", job.result["out"], ref, None, None, job.result["cycles"], model,
                   {"T": T, "C": C, "H": H, "W": W})
