"""Figures of the spiking cores: cycles vs density, lane utilisation, synthesis (docs/hw_cores.md).

    python benchmarks/bench_cores.py [--synth] [--out runs/bench_cores.json]

* density sweep: a 3x3 conv, 16 -> 16 channels, 16x16 map, P = 16, simulated (bit-exact vs golden,
  cycle model checked), densities 0..100 %;
* utilisation: useful accumulations / (lanes x busy cycles) on a 1x1 layer (64 -> 64, 16x16,
  P = 16) at 30 % density;
* ``--synth``: ECP5-85k synthesis + P&R of the synaptic core for P in {8, 16, 32} and one iCE40
  UP5K build of a small configuration (bitstreams.synth.synthesize).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from spiketrack.hw.synaptic_core import LayerGeometry
from spiketrack.sim.verify import core_case, make_core


def density_sweep(densities=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)):
    geom = LayerGeometry(16, 16, 16, 16, 3, 1, 1)
    rows = []
    for d in densities:
        r = core_case(geom, lanes=16, seed=1, density=d)
        assert r["match"] and r["cycles_exact"], r
        rows.append({"density": d, "events": r["events"], "cycles": r["busy"], "model": r["model"]})
    full = rows[-1]["cycles"]
    for r in rows:
        r["frac_of_full"] = round(r["cycles"] / full, 4)
    return rows


def utilization():
    geom = LayerGeometry(64, 64, 16, 16)
    r = core_case(geom, lanes=16, seed=2, density=0.3)
    assert r["match"] and r["cycles_exact"], r
    return {"layer": "1x1 64->64 16x16, P=16, density 0.3", "useful": r["useful"], "cycles": r["busy"],
            "utilization": round(r["useful"] / (16 * r["busy"]), 4)}


def synth(lanes_list=(8, 16, 32)):
    from spiketrack.bitstreams.synth import synthesize

    rows = []
    geom = LayerGeometry(16, 32, 16, 16, 3, 1, 1)
    for P in lanes_list:
        gen = torch.Generator().manual_seed(0)
        dut, _, _ = make_core(geom, gen, lanes=P)
        f = synthesize(dut, name=f"synaptic_core_p{P}", family="ecp5", clock_mhz=120)
        rows.append({"target": "ECP5-85k", "design": f"synaptic core 3x3 16->32 16x16, P={P}",
                     **{k: f.get(k) for k in ("lut", "ff", "ebr", "dsp", "carry", "fmax_mhz")},
                     "seconds": f.get("seconds", {}).get("total") if isinstance(f.get("seconds"), dict) else None})
    gen = torch.Generator().manual_seed(0)
    small = LayerGeometry(8, 8, 8, 8, 3, 1, 1)
    dut, _, _ = make_core(small, gen, lanes=4)
    f = synthesize(dut, name="synaptic_core_up5k", family="ice40", clock_mhz=30)
    rows.append({"target": "iCE40 UP5K", "design": "synaptic core 3x3 8->8 8x8, P=4",
                 **{k: f.get(k) for k in ("lut", "ff", "ebr", "dsp", "carry", "fmax_mhz")}})
    return rows


def synth_chain():
    """ECP5 figures of the memory unit -> neuron unit chain at an edge MRM site (T = 3)."""
    from spiketrack.bitstreams.synth import synthesize
    from spiketrack.hw.retrieval_neuron import RetrievalNeuron
    from spiketrack.quant.golden.neuron import Decay

    f = synthesize(lambda: RetrievalNeuron(heads=4, d_h=16, d_v=32, n_max=64, n_tokens=64, sigma=1, f_m=8,
                                           bits=16, n_slots=3, lanes=8, T=3,
                                           betas=(Decay(((1, 1),)), Decay(((1, 1),)))),
                   name="retrieval_neuron", family="ecp5", clock_mhz=120)
    return [{"target": "ECP5-85k", "design": "memory unit -> neuron unit, 4 heads d_h 16 d_v 32, 64 tokens, "
                                              "P=8, T=3",
             **{k: f.get(k) for k in ("lut", "ff", "ebr", "dsp", "carry", "fmax_mhz")}}]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth", action="store_true", help="ECP5 / iCE40 synthesis of the synaptic core")
    ap.add_argument("--synth-chain", action="store_true", help="ECP5 synthesis of the memory->neuron chain")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--out", default="runs/bench_cores.json")
    a = ap.parse_args(argv)
    out = {}
    if not a.no_sim:
        t = time.monotonic()
        out["density"] = density_sweep()
        out["utilization"] = utilization()
        out["sim_seconds"] = round(time.monotonic() - t, 1)
        print("density  events  cycles  frac_of_100%")
        for r in out["density"]:
            print(f"{r['density']:7.2f} {r['events']:7d} {r['cycles']:7d}  {r['frac_of_full']:.3f}")
        print("utilization:", out["utilization"])
    if a.synth:
        out["synth"] = synth()
        for r in out["synth"]:
            print(r)
    if a.synth_chain:
        out["synth_chain"] = synth_chain()
        for r in out["synth_chain"]:
            print(r)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    prev = {}
    if os.path.exists(a.out):
        prev = json.load(open(a.out))
    prev.update(out)
    json.dump(prev, open(a.out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
