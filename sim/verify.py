"""``spiketrack verify``: fuzz the RTL against the golden model.

    spiketrack verify --fuzz N --seed S [--sim amaranth|icarus|verilator] [--types a,b] [--json]

runs ``N`` random layer cases, round-robin over every registered layer type, each through the RTL
(amaranth.sim) and the golden functions of :mod:`spiketrack.quant.golden`, and prints
``{"cases", "mismatches", "cycle_model_exact", "layer_types", ...}``; the exit status is 1 on any
mismatch or inexact cycle prediction. ``--sim icarus|verilator`` additionally runs the cocotb
cases (generated Verilog of the synaptic core and the neuron unit) on that simulator.

Registry
--------
:data:`CASES` maps a layer-type name to a generator ``fn(rng: random.Random) -> dict`` that builds
one random case, runs it and returns at least ``{"type", "match": bool, "cycles_exact": bool}``
(plus any detail). The accelerator's units are driven by the compiler's op-class registry: every
class of ``compiler.hwops.REGISTRY`` with a unit is a layer type ``accel.<kind>`` whose cases come
from its ``random_case`` (``sim/op_cases.py``), so a new hardware op is fuzzed as soon as it is
registered (and a test fails if it has no case). Add another type with the :func:`register` decorator in a module listed in
:data:`CASE_MODULES` (imported lazily), e.g. the memory unit's ``memory_build`` / ``retrieval`` /
``attention`` cases::

    from spiketrack.sim.verify import register

    @register("retrieval")
    def retrieval_case(rng):
        ...
        return {"type": "retrieval", "match": ok, "cycles_exact": exact}

Every case draws its shapes within the documented limits (docs/hw_cores.md) and its spike
density uniformly from ``{0, 0.1, ..., 1}`` (so 0% and 100% occur), and random input gaps /
output backpressure in half of the cases (the cycle check then uses
``busy == model + stall_in + stall_out``).
"""

from __future__ import annotations

import importlib
import json
import random
import sys
import time
from collections import Counter

import torch
from amaranth import signed
from amaranth.lib import data

__all__ = ["CASES", "CASE_MODULES", "register", "register_hw_ops", "run_fuzz", "add_arguments", "run",
           "core_case", "neuron_case", "encoder_case", "make_core", "core_packets"]

CASES: dict = {}
CASE_MODULES: tuple[str, ...] = ("spiketrack.sim.memory_unit_sim",)  #: extra modules that register cases (imported by run_fuzz)


def register(name: str):
    """Decorator: register a case generator under ``name``."""
    def deco(fn):
        CASES[name] = fn
        return fn
    return deco


def _gen(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.randrange(1 << 30))


def _density(rng):
    return rng.choice([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0])


def _timing(rng):
    return (1.0, 1.0) if rng.random() < 0.5 else (rng.choice([0.3, 0.6, 0.9]), rng.choice([0.3, 0.6, 0.9]))


# ---------------------------------------------------------------------------------------------
# synaptic core

def make_core(geom, gen: torch.Generator, *, lanes: int, w_bits: int = 8, bias: bool = True):
    """Random weights/bias for ``geom`` and the :class:`SynapticCore` holding them."""
    from spiketrack.hw.synaptic_core import SynapticCore

    wmax = (1 << (w_bits - 1)) - 1
    w = torch.randint(-wmax, wmax + 1, (geom.c_out, geom.cig, geom.k, geom.k), generator=gen)
    b = torch.randint(-4000, 4001, (geom.c_out,), generator=gen) if bias else None
    return SynapticCore(geom, w, b, lanes=lanes, w_bits=w_bits), w, b


def core_packets(geom, gen: torch.Generator, density: float):
    """Random input (spike levels, or uint8 pixels for the stem) and its event packets."""
    from spiketrack.hw.events import packet_from_levels
    from spiketrack.sim.cores_sim import random_levels

    if geom.planes > 1:
        px = torch.randint(0, 256, (geom.c_in, geom.h, geom.w), generator=gen)
        px = torch.where(torch.rand(px.shape, generator=gen) < density, px, torch.zeros_like(px))
        return px, [packet_from_levels(((px >> b) & 1).reshape(geom.c_in, -1)) for b in range(8)]
    k = random_levels(gen, (geom.c_in, geom.h, geom.w), density)
    return k, [packet_from_levels(k.reshape(geom.c_in, -1))]


def core_case(geom, *, lanes: int, seed: int = 0, density: float = 0.3, valid_prob: float = 1.0,
              ready_prob: float = 1.0, w_bits: int = 8) -> dict:
    """One synaptic-core case: RTL vs golden (bit-exact) and vs the cycle model (exact)."""
    from spiketrack.hw.synaptic_core_cycles import core_cycles, useful_accumulations
    from spiketrack.quant.golden.synapse import conv2d_acc, stem_bitplane_acc
    from spiketrack.sim.cores_sim import simulate_core

    gen = torch.Generator().manual_seed(seed)
    dut, w, b = make_core(geom, gen, lanes=lanes, w_bits=w_bits)
    x, packets = core_packets(geom, gen, density)
    acc, res = simulate_core(dut, packets, valid_prob=valid_prob, ready_prob=ready_prob, seed=seed)
    if geom.planes > 1:
        gold = stem_bitplane_acc(x[None], w, b, geom.stride, geom.padding)[0]
    else:
        gold = conv2d_acc(x[None], w, b, geom.stride, geom.padding, geom.groups)[0]
    c = res.counters
    model = core_cycles(dut.plan, packets)
    return {"type": geom.kind, "match": bool(torch.equal(acc, gold)),
            "cycles_exact": c["busy"] == model + c["stall_in"] + c["stall_out"]
            and c["useful"] == useful_accumulations(dut.plan, packets),
            "busy": c["busy"], "model": model, "stall_in": c["stall_in"], "stall_out": c["stall_out"],
            "events": c["events"], "useful": c["useful"], "geom": geom.__dict__, "lanes": lanes}


def _core_random(rng, kind):
    from spiketrack.hw.synaptic_core import LayerGeometry

    h, w = rng.randint(1, 6), rng.randint(1, 6)
    if kind == "conv":
        k = rng.choice([2, 3, 3, 5])
        geom = LayerGeometry(rng.randint(1, 5), rng.randint(1, 9), max(h, k), max(w, k), k, rng.choice([1, 1, 2]),
                             rng.randrange(k))
    elif kind == "depthwise":
        c = rng.randint(1, 6)
        geom = LayerGeometry(c, c, max(h, 3), max(w, 3), 3, rng.choice([1, 2]), rng.randrange(3), groups=c)
    elif kind == "grouped":
        g = rng.choice([2, 3])
        geom = LayerGeometry(g * rng.randint(1, 3), g * rng.randint(1, 4), max(h, 3), max(w, 3), 3, 1, 1, groups=g)
    elif kind == "1x1":
        geom = LayerGeometry(rng.randint(1, 8), rng.randint(1, 12), h, w)
    elif kind == "linear":
        geom = LayerGeometry(rng.randint(1, 8), rng.randint(1, 12), 1, rng.randint(1, 12))
    else:  # stem
        geom = LayerGeometry(rng.randint(1, 3), rng.randint(1, 6), rng.randint(3, 6), rng.randint(3, 6),
                             rng.choice([3, 5]), 2, rng.choice([1, 2]), planes=8)
    vp, rp = _timing(rng)
    r = core_case(geom, lanes=rng.choice([1, 2, 4, 8]), seed=rng.randrange(1 << 30), density=_density(rng),
                  valid_prob=vp, ready_prob=rp, w_bits=rng.choice([8, 8, 4]))
    r["type"] = kind
    return r


for _kind in ("conv", "depthwise", "grouped", "1x1", "linear", "stem"):
    register(_kind)(lambda rng, _k=_kind: _core_random(rng, _k))


# ---------------------------------------------------------------------------------------------
# neuron unit

def neuron_case(*, c: int, n: int, lanes: int, T: int, shift, f_m: int, bits: int, residual: bool,
                betas, seed: int = 0, valid_prob: float = 1.0, ready_prob: float = 1.0,
                acc_bits: int = 16, rounding: str = "half_up") -> dict:
    """One neuron-unit case on random accumulators: RTL vs ``neuron_layer`` and the cycle model.

    ``rounding_matters``: the other fire rounding would give other levels on this data (ties fired).
    """
    from spiketrack.hw.neuron_unit import NeuronUnit
    from spiketrack.hw.neuron_unit_cycles import neuron_cycles
    from spiketrack.quant.golden.neuron import neuron_layer
    from spiketrack.sim.cores_sim import stream_sim

    gen = torch.Generator().manual_seed(seed)
    P = lanes
    lay = data.StructLayout({"pos": max(1, (n - 1).bit_length()), "chan": max(1, (c - 1).bit_length()),
                             "acc": data.ArrayLayout(signed(acc_bits), P), "mask": P, "last": 1})
    acc = torch.randint(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), (T, c, n), generator=gen)
    acc = acc >> torch.randint(0, acc_bits - 2, (T, c, n), generator=gen)
    res = torch.randint(-(1 << (bits - 1)), 1 << (bits - 1), (T, c, n), generator=gen) if residual else None
    nch = -(-c // P)
    beats, rbeats = [], []
    for t in range(T):
        for pos in range(n):
            for ch in range(nch):
                lanes_ = range(ch * P, ch * P + P)
                beats.append({"pos": pos, "chan": ch * P, "mask": (1 << min(P, c - ch * P)) - 1,
                              "acc": [int(acc[t, j, pos]) if j < c else 0 for j in lanes_],
                              "last": int(pos == n - 1 and ch == nch - 1)})
                if residual:
                    rbeats.append({"res": [int(res[t, j, pos]) if j < c else 0 for j in lanes_]})
    dut = NeuronUnit(lay, n_beats=n * nch, c_out=c, shift=shift, f_m=f_m, bits=bits, T=T, betas=betas,
                     residual=residual, rounding=rounding)

    def unpack(p):
        return int(p.pos), int(p.chan), [int(p.levels[i]) for i in range(P)], int(p.mask)
    r = stream_sim(dut, beats, i_name="i_acc", o_name="o_spk", unpack=unpack, valid_prob=valid_prob,
                   ready_prob=ready_prob, seed=seed, n_out=len(beats),
                   extra_inputs=[("i_res", rbeats)] if residual else None)
    k = torch.full((T, c, n), -1, dtype=torch.int64)
    for idx, (pos, chan, lv, mask) in enumerate(r.out):
        for i in range(P):
            if mask >> i & 1:
                k[idx // (n * nch), chan + i, pos] = lv[i]
    sh = shift if isinstance(shift, int) else torch.as_tensor(shift).view(-1, 1)
    gk, _, gsat = neuron_layer(acc, sh, f_m, bits, res, tuple(betas), rounding)
    other = neuron_layer(acc, sh, f_m, bits, res, tuple(betas), "half_even" if rounding == "half_up" else "half_up")[0]
    cn = r.counters
    model = neuron_cycles(n * nch, T)
    return {"type": "neuron", "match": bool(torch.equal(k, gk)) and cn["saturated"] == gsat,
            "cycles_exact": cn["busy"] == model + cn["stall_in"] + cn["stall_out"],
            "busy": cn["busy"], "model": model, "saturated": cn["saturated"], "golden_saturated": gsat,
            "rounding_matters": not torch.equal(gk, other)}


@register("neuron")
def _neuron_random(rng):
    from spiketrack.quant.golden.neuron import Decay

    c, T = rng.randint(1, 9), rng.choice([1, 1, 2, 4])
    f_m = rng.randint(2, 6)
    bits = rng.randint(f_m + 4, 14)
    shift = rng.randint(-2, 8) if rng.random() < 0.5 else [rng.randint(-2, 10) for _ in range(c)]
    betas = []
    for _ in range(T - 1):
        terms = [(1, rng.randint(1, 4))]
        if rng.random() < 0.5:
            terms.append((rng.choice([1, -1]), rng.randint(terms[0][1] + 1, 6)))
        betas.append(Decay(tuple(terms)))
    vp, rp = _timing(rng)
    return neuron_case(c=c, n=rng.randint(1, 6), lanes=rng.choice([1, 2, 4]), T=T, shift=shift, f_m=f_m,
                       bits=bits, residual=rng.random() < 0.5, betas=betas, seed=rng.randrange(1 << 30),
                       valid_prob=vp, ready_prob=rp)


# ---------------------------------------------------------------------------------------------
# spike encoder

def encoder_case(*, c: int, n: int, width: int, density: float, seed: int = 0, valid_prob: float = 1.0,
                 ready_prob: float = 1.0) -> dict:
    """One encoder map: events equal ``packet_from_levels`` and the cycle model is exact."""
    from spiketrack.hw.events import packet_from_levels
    from spiketrack.hw.spike_encoder import SpikeEncoder, words_from_levels
    from spiketrack.hw.spike_encoder_cycles import encoder_cycles
    from spiketrack.sim.cores_sim import random_levels, stream_sim

    gen = torch.Generator().manual_seed(seed)
    lv = random_levels(gen, (c, n), density)
    words, ref = words_from_levels(lv, width), packet_from_levels(lv)
    dut = SpikeEncoder(max(1, (n - 1).bit_length()), max(1, (c - 1).bit_length()), width)

    def unpack(p):
        return {"pos": int(p.pos), "chan": int(p.chan), "level": int(p.level), "empty": int(p.empty),
                "last": int(p.last)}
    r = stream_sim(dut, words, i_name="i_levels", o_name="o_events", unpack=unpack, valid_prob=valid_prob,
                   ready_prob=ready_prob, seed=seed, n_out=len(ref))
    cn = r.counters
    model = encoder_cycles(words)
    return {"type": "encoder", "match": r.out == ref,
            "cycles_exact": cn["busy"] == model + cn["stall_in"] + cn["stall_out"],
            "busy": cn["busy"], "model": model, "events": len(ref)}


@register("encoder")
def _encoder_random(rng):
    vp, rp = _timing(rng)
    return encoder_case(c=rng.randint(1, 12), n=rng.randint(1, 8), width=rng.choice([1, 2, 4, 8]),
                        density=_density(rng), seed=rng.randrange(1 << 30), valid_prob=vp, ready_prob=rp)


# ---------------------------------------------------------------------------------------------

def register_hw_ops() -> list[str]:
    """Register one layer type ``accel.<kind>`` per op class of the compiler's registry
    (``compiler.hwops.REGISTRY``) that runs on a unit: its :meth:`HwOp.random_case`. Returns the
    names. Views (folded into addressing) have no case."""
    from spiketrack.compiler.hwops import REGISTRY

    names = []
    for kind, cls in REGISTRY.items():
        if cls.view:
            continue
        name = f"accel.{kind}"
        CASES.setdefault(name, cls.random_case)
        names.append(name)
    return names


def run_fuzz(n: int, seed: int = 0, types=None, sim: str = "amaranth") -> dict:
    """Run ``n`` random cases round-robin over ``types`` (default: all registered: the per-layer
    cores' cases and one ``accel.<kind>`` per hardware op class)."""
    for mod in CASE_MODULES:
        importlib.import_module(mod)
    register_hw_ops()
    names = list(types or CASES)
    unknown = [t for t in names if t not in CASES]
    if unknown:
        raise ValueError(f"unknown layer types {unknown}; registered: {sorted(CASES)}")
    rng = random.Random(seed)
    t0 = time.monotonic()
    per_type, bad, inexact, failures = Counter(), 0, 0, []
    for i in range(n):
        name = names[i % len(names)]
        r = CASES[name](random.Random(rng.randrange(1 << 62)))
        per_type[name] += 1
        if not r["match"]:
            bad += 1
        if not r["cycles_exact"]:
            inexact += 1
        if not (r["match"] and r["cycles_exact"]):
            failures.append({"case": i, **{k: v for k, v in r.items() if k != "geom"}, "geom": r.get("geom")})
    out = {"cases": n, "mismatches": bad, "cycle_model_exact": inexact == 0, "cycle_model_inexact": inexact,
           "layer_types": dict(per_type), "seed": seed, "sim": sim, "seconds": round(time.monotonic() - t0, 1)}
    if sim != "amaranth":
        from spiketrack.sim.cocotb_cores import run_cocotb_cases
        co = run_cocotb_cases(sim, seed=seed)
        out["cocotb"] = co
        if not co["ok"]:
            bad += 1
            out["mismatches"] = bad
    if failures:
        out["failures"] = failures[:10]
    return out


def add_arguments(p):
    p.add_argument("--network", action="store_true",
                   help="run a real frame node by node on the run-time-configured RTL (sim/network_verify.py)")
    p.add_argument("--artifact", default=None, help="--network: integer-network artifact (default: the shipped default, the int8 QAT edge-t3)")
    p.add_argument("--frames", type=int, default=1, help="--network: search frames after the template pass")
    p.add_argument("--max-nodes", type=int, default=None, help="--network: check at most this many nodes")
    p.add_argument("--max-nodes-per-kind", type=int, default=None, help="--network: check at most this many of each kind")
    p.add_argument("--max-node-cycles", type=int, default=None,
                   help="--network: check only nodes of at most this many predicted cycles (quick runs)")
    p.add_argument("--fuzz", type=int, default=20, metavar="N", help="random cases to run (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sim", choices=("amaranth", "icarus", "verilator"), default="amaranth",
                   help="amaranth.sim for the fuzz cases; icarus/verilator also run the cocotb cases. --network: "
                        "amaranth (node by node on each unit) or verilator (every node on the accelerator top)")
    p.add_argument("--types", default=None, help="comma-separated layer types (default: all)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _run_network(args) -> int:
    from spiketrack.compiler.cli_compile import _artifact
    from spiketrack.model.configs import get_config
    from spiketrack.quant.compare import synthetic_frames
    from spiketrack.sim.network_verify import verify_network

    if args.sim == "icarus":
        raise ValueError("--network runs on amaranth.sim (node by node) or verilator (the accelerator top), "
                         "not icarus")
    if args.frames < 1:
        raise ValueError("--frames must be >= 1")
    net = _artifact(args.artifact)
    frames = list(synthetic_frames(get_config(net.meta["config"]), args.frames))
    if args.sim == "verilator":
        out = _network_on_accelerator(net, frames)
    else:
        out = verify_network(net, frames, max_nodes=args.max_nodes, max_node_cycles=args.max_node_cycles,
                             max_per_kind=args.max_nodes_per_kind)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['nodes_checked']} nodes ({out['layers_checked']} of {out['layers_total']} layers) on the RTL, "
              f"{out['mismatches']} mismatches, cycle model exact: {out['cycle_model_exact']}, "
              f"unchecked: {out['unchecked_nodes']}, {out['seconds']} s")
        if out["first_mismatch"]:
            print("  first mismatch:", out["first_mismatch"], file=sys.stderr)
    return 0 if out["mismatches"] == 0 and out["cycle_model_exact"] else 1


def _network_on_accelerator(net, frames) -> dict:
    """``verify --network --sim verilator``: every node of the template pass and of each search frame
    runs alone on the accelerator top's Verilog (its run-time-configured units: one build for all
    of them), its output read back and compared with the golden run, its cycles with the model
    (:func:`spiketrack.sim.accel_sim.simulate` with ``check="layers"``)."""
    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.sim.accel_sim import simulate

    rep = simulate(net, lower_to_accel(net, 8), frames, check="layers", sim="verilator", backdoor=True)
    search = [v["cycles"] for k, v in rep["per_pass"].items() if k.startswith("search_frame")]
    return {"frames": len(frames), "layers_total": rep["layers_total"], "layers_checked": rep["layers_checked"],
            "nodes_checked": rep["runs"], "mismatches": rep["mismatches"], "first_mismatch": rep["first_mismatch"],
            "cycle_model_exact": rep["cycle_model_exact"], "unchecked_nodes": {},
            "cycles": {"template_update": rep["per_pass"]["template_update"]["cycles"],
                       "search_frame": search},
            "on": "accelerator top (Verilator)", "seconds": rep["seconds"]}


def run(args) -> int:
    if args.network:
        return _run_network(args)
    types = args.types.split(",") if args.types else None
    out = run_fuzz(args.fuzz, args.seed, types, args.sim)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['cases']} cases ({', '.join(f'{k}: {v}' for k, v in out['layer_types'].items())}), "
              f"{out['mismatches']} mismatches, cycle model exact: {out['cycle_model_exact']}, "
              f"{out['seconds']} s")
        for f in out.get("failures", []):
            print("  FAIL", f, file=sys.stderr)
    return 0 if out["mismatches"] == 0 and out["cycle_model_exact"] else 1
