"""``spiketrack energy``: synaptic operations, MACs, firing rates and energy on real frames.

Counts come from golden runs of the integer network on synthetic-benchmark crops
(:mod:`spiketrack.quant.energy` documents every convention). Figures are per search frame, per
template update, and amortised: ``search + template / update_interval`` (the tracker re-encodes
the templates at most every ``update_interval`` frames; T1 models never do, so for them the
amortised figure is the search figure). The ANN reference is this network's own dense twin (same
layers, every spike replaced by a real-valued activation): every layer's MACs at 4.6 pJ.
"""

from __future__ import annotations

import json

from spiketrack.cli import UserError


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--artifact", default=None, help="integer-network folder from `spiketrack quantize`")
    src.add_argument("--checkpoint", default=None, help="checkpoint: a float one quantised on the fly, a QAT one as it is "
                                                        "(default: the shipped QAT edge-t3)")
    p.add_argument("--dataset", default="synthetic", choices=("synthetic",), help="frames to count on")
    p.add_argument("--frames", type=int, default=4, help="number of frames (default 4)")
    p.add_argument("--accelerator", action="store_true",
                   help="add the accelerator's figure with memory counted: its access counters for a search "
                        "frame (the model the RTL counters equal, tests/test_accel.py) against the ANN twin "
                        "on the same memories (docs/accelerator.md)")
    p.add_argument("--lanes", type=int, default=8, help="accelerator lanes P (with --accelerator)")
    p.add_argument("--json", action="store_true")


def _sum(rows_list):
    keys = ("sops", "macs")
    out = {}
    for rows in rows_list:
        for r in rows:
            acc = out.setdefault(r["layer"], {"layer": r["layer"], "op": r["op"], "sops": 0, "macs": 0,
                                              "dense": r.get("dense", False)})
            for k in keys:
                acc[k] += r[k]
            if "rate_level" in r:
                acc["rate_level"] = acc.get("rate_level", 0.0) + r["rate_level"]
                acc["neurons"] = r["neurons"]
    n = len(rows_list)
    for acc in out.values():
        for k in keys:
            acc[k] /= n
        if "rate_level" in acc:
            acc["rate_level"] /= n
            acc["rate_binary"] = acc["rate_level"] / 4
    return list(out.values())


def measure(net, cfg, frames: int) -> dict:
    """Energy figures of ``net`` on ``frames`` synthetic crops (see the module docstring)."""
    from spiketrack.quant.compare import synthetic_frames
    from spiketrack.quant.energy import count_ops, energy_report
    from spiketrack.quant.executor import run_network

    per_frame = []
    for zp, xp in synthetic_frames(cfg, frames):
        inputs = {"template_pixels": zp, "search_pixels": xp}
        res = run_network(net, inputs, dump=True)
        per_frame.append(count_ops(net, res.tensors, inputs))
    rows = _sum(per_frame)
    search = [r for r in rows if r["layer"].startswith("search/")]
    template = [r for r in rows if r["layer"].startswith("template/")]
    s, t = energy_report(search), energy_report(template)
    interval = getattr(cfg, "update_interval", 25)
    amortise = (1.0 / interval) if cfg.timesteps > 1 else 0.0
    def amort(key, sub=None):
        a = s[key] if sub is None else s[sub][key]
        b = t[key] if sub is None else t[sub][key]
        return a + amortise * b
    out = {
        "frames": frames, "config": cfg.name, "update_interval": interval,
        "sops": amort("sops"), "macs": amort("macs"),
        "snn_mj": amort("snn_mj"), "ann_mj": amort("ann_mj"),
        "integer": {"snn_mj": amort("snn_mj", "integer"), "ann_mj": amort("ann_mj", "integer")},
        "with_memory": {"snn_mj": amort("snn_mj", "with_memory"), "ann_mj": amort("ann_mj", "with_memory")},
        "search": s, "template_update": t,
        "layers": rows,
    }
    out["ratio"] = out["ann_mj"] / out["snn_mj"]
    for k in ("integer", "with_memory"):
        out[k]["ratio"] = out[k]["ann_mj"] / out[k]["snn_mj"]
    return out


def run(args) -> int:
    if args.frames < 1:
        raise UserError("--frames must be at least 1")
    if args.artifact:
        from spiketrack.model import get_config
        from spiketrack.quant.ir import load_artifact

        net = load_artifact(args.artifact)
        cfg = get_config(net.meta["config"])
    else:
        from spiketrack.model.checkpoint import model_from_checkpoint
        from spiketrack.quant.lower import lower
        from spiketrack.quant.qat import quantize_model

        model, _ = model_from_checkpoint(args.checkpoint)
        cfg = model.cfg
        net = lower(quantize_model(model.eval()))
    rep = measure(net, cfg, args.frames)
    if args.accelerator:
        rep["accelerator"] = accelerator_figures(net, cfg, args.frames, args.lanes)
    if args.json:
        print(json.dumps({k: v for k, v in rep.items() if k != "layers"}))
        return 0
    print(f"{cfg.name}: energy per search frame (template updates amortised over {rep['update_interval']} frames),"
          f" {rep['frames']} synthetic frames")
    print(f"  SOPs {rep['sops'] / 1e6:.2f} M   dense MACs {rep['macs'] / 1e6:.2f} M   "
          f"mean spike level {rep['search']['mean_level']:.3f} (binary rate {rep['search']['mean_binary_rate']:.3f})")
    print(f"  {'convention':<34}{'SNN mJ':>12}{'ANN twin mJ':>14}{'ANN/SNN':>10}")
    print(f"  {'paper (E_AC 0.9, E_MAC 4.6 pJ fp32)':<34}{rep['snn_mj']:>12.5f}{rep['ann_mj']:>14.5f}{rep['ratio']:>10.2f}")
    for k, label in (("integer", "integer ops (int32 add, int8 MAC)"), ("with_memory", "integer ops + SRAM traffic")):
        r = rep[k]
        print(f"  {label:<34}{r['snn_mj']:>12.5f}{r['ann_mj']:>14.5f}{r['ratio']:>10.2f}")
    if args.accelerator:
        r = rep["accelerator"]["with_memory"]
        print(f"  {'accelerator counters, BRAM + adds':<34}{r['snn_mj']:>12.5f}{r['ann_mj']:>14.5f}{r['ratio']:>10.2f}")
    return 0


def accelerator_figures(net, cfg, frames: int, lanes: int) -> dict:
    """Per search frame: the accelerator's counters (cycle model, equal to the RTL's) and its energy
    with memory counted against the ANN twin on the same memories; averaged over ``frames`` crops."""
    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.compiler.accel_energy import accelerator_energy
    from spiketrack.compiler.fuse import fuse
    from spiketrack.compiler.schedule import programs, run_program
    from spiketrack.quant.compare import synthetic_frames

    graph, _ = fuse(net)
    ap = lower_to_accel(net, lanes, graph=graph)
    progs = programs(graph)
    totals: dict = {}
    for zp, xp in synthetic_frames(cfg, frames):
        env_t = run_program(graph, progs["template_update"], {"template_pixels": zp[:, :1]})
        mems = {m: env_t[m] for m in progs["template_update"].outputs}
        env = {**env_t, **run_program(graph, progs["search_frame"], {"search_pixels": xp[:, :1], **mems})}
        for k, v in ap.predicted_counters(graph, "search_frame", env).items():
            totals[k] = totals.get(k, 0) + v / frames
    e = accelerator_energy(graph, ap, totals)
    return {"lanes": lanes, "counters_per_frame": {k: round(v) for k, v in totals.items()},
            "with_memory": {"snn_mj": e["snn_mj"], "ann_mj": e["ann_mj"], "ratio": e["ratio"]},
            "snn": {k: e["snn"][k] for k in ("memory_mj", "arith_mj", "bits_by_memory")},
            "ann": {k: e["ann"][k] for k in ("memory_mj", "arith_mj", "macs")}}
