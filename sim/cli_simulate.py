"""``spiketrack simulate``: the accelerator top runs a template pass and search frames in simulation.

The integer network is compiled for the accelerator (``compiler/accel.py``), the images are
loaded over the command stream, and every hardware op's output (``--check layers``) or every
pass's results (``--check outputs``) is read back (READ commands, or under Verilator by default
the simulator's backdoor: ``--read``) and compared with the golden model on the same crops; every
run's cycle counter is compared with the cycle model. Exit status 1 on any mismatch or cycle
difference.
"""

from __future__ import annotations

import json
import sys

from spiketrack.cli import UserError


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--artifact", default=None,
                     help="integer-network artifact (default: lower the shipped default, the int8 QAT edge-t3, now)")
    src.add_argument("--reduced", action="store_true",
                     help="a reduced edge-t3 with random weights (16x16 crops; sim/reduced.py): the whole "
                          "accelerator in minutes of amaranth.sim")
    p.add_argument("--dataset", default="synthetic", help="crops from this benchmark (synthetic)")
    p.add_argument("--frames", type=int, default=1, help="search frames after the template pass")
    p.add_argument("--sim", default="amaranth", choices=("amaranth", "verilator"),
                   help="amaranth.sim, or the generated Verilog under cocotb + Verilator")
    p.add_argument("--backdoor", action="store_true",
                   help="preload the program, weights and tables (amaranth.sim) or bake them into the Verilog "
                        "(verilator), as a bitstream carries them, instead of streaming them")
    p.add_argument("--check", default="layers", choices=("layers", "outputs"),
                   help="compare every hardware op's output, or each pass's results only")
    p.add_argument("--read", default=None, choices=("host", "peek"),
                   help="how the checks read the memories: READ commands over the command stream (host), or "
                        "the simulator's backdoor, the block-RAM arrays read while the simulation stands still "
                        "(peek: Verilator only; no simulated cycle). Default: peek on verilator, host on amaranth")
    p.add_argument("--lanes", type=int, default=8, help="conv-engine lanes P (>= 8)")
    p.add_argument("--bank-rows", type=int, default=None,
                   help="rows per block-RAM bank of the simulated memories (default under verilator: one bank "
                        "per memory for long frames, the same port behaviour in fewer arrays, and 512-row banks for "
                        "short ones such as --reduced; 2048 builds them as the boards do)")
    p.add_argument("--external-weights", action="store_true",
                   help="weights in external memory (a fixed-latency model of the board's SDRAM inside the "
                        "design), streamed into a two-half weight cache by the fetch unit while the convolutions compute")
    p.add_argument("--gaps", type=float, default=0.0, help="probability of an idle cycle on the command stream")
    p.add_argument("--stall", type=float, default=0.0, help="probability of backpressure on the response stream")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--waves", default=None, help="dump waves (amaranth: this VCD file; cocotb: in its build folder)")
    p.add_argument("--json", action="store_true")


def summarise(rep: dict, frames: int) -> dict:
    """The report's headline figures (``cycles_per_frame`` etc.) from the per-pass counters."""
    search = [v for k, v in rep["per_pass"].items() if k.startswith("search_frame")]
    cyc = sum(v["cycles"] for v in search) / max(1, len(search))
    pred = sum(v["predicted_cycles"] for v in search) / max(1, len(search))
    # the compute units run one at a time; the fetch unit beside them (external weights)
    busy = sum(v["counters"].get("conv_busy", 0) + v["counters"].get("vec_busy", 0) + v["counters"].get("mb_busy", 0)
               for v in search)
    run = sum(v["counters"].get("run_cycles", 0) for v in search)
    conv = sum(v["counters"].get("conv_busy", 0) for v in search)
    fetch = sum(v["counters"].get("fetch_busy", 0) for v in search)
    return {"frames": frames, "layers_checked": rep["layers_checked"], "layers_total": rep["layers_total"],
            "outputs_checked": rep.get("outputs_checked", 0), "readback": rep.get("readback", "host"),
            "mismatches": rep["mismatches"], "first_mismatch": rep["first_mismatch"],
            "cycles_per_frame": round(cyc), "predicted_cycles_per_frame": round(pred),
            "template_cycles": rep["per_pass"].get("template_update", {}).get("cycles"),
            "cycle_model_exact": rep["cycle_model_exact"],
            "utilization": {"units_busy": round(busy / run, 4) if run else None,
                            "conv_engine": round(conv / run, 4) if run else None,
                            **({"fetch_unit": round(fetch / run, 4)} if fetch and run else {})},
            "fps_at_100mhz": round(100e6 / cyc, 2) if cyc else None,
            "seconds_per_frame": round(sum(v["wall_s"] for v in search) / max(1, len(search)), 2),
            "template_seconds": round(rep["per_pass"].get("template_update", {}).get("wall_s", 0.0), 2),
            "cpu_seconds_per_frame": round(sum(v.get("cpu_s", 0.0) for v in search) / max(1, len(search)), 2),
            "template_cpu_seconds": round(rep["per_pass"].get("template_update", {}).get("cpu_s", 0.0), 2),
            "seconds": rep["seconds"],
            "counters_per_frame": {k: round(sum(v["counters"].get(k, 0) for v in search) / max(1, len(search)))
                                   for k in (search[0]["counters"] if search else {})}}


def run(args) -> int:
    import torch

    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.compiler.cli_compile import _artifact
    from spiketrack.compiler.fuse import CompileError
    from spiketrack.model.configs import get_config
    from spiketrack.quant.compare import synthetic_frames
    from spiketrack.sim.accel_sim import simulate

    if args.frames < 1:
        raise UserError("--frames must be >= 1")
    if args.bank_rows is not None and (args.bank_rows < 1 or args.bank_rows & (args.bank_rows - 1)):
        raise UserError(f"--bank-rows must be a power of two, got {args.bank_rows}")
    readback = args.read or ("peek" if args.sim == "verilator" else "host")
    if readback == "peek" and args.sim != "verilator":
        raise UserError(f"--read peek: backdoor reads need --sim verilator (not {args.sim})")
    if args.dataset != "synthetic":
        raise UserError(f"--dataset {args.dataset!r}: simulate draws its crops from 'synthetic' only")
    if args.reduced:
        from spiketrack.sim.reduced import reduced_network

        net, cfg = reduced_network()
    else:
        net = _artifact(args.artifact)
        cfg = get_config(net.meta["config"])
    try:
        ap = lower_to_accel(net, args.lanes, ext_weights=args.external_weights)
    except CompileError as e:
        raise UserError(str(e)) from None
    if args.reduced:   # the synthetic benchmark's crops at 16x16 are meaningless; random pixels
        g = torch.Generator().manual_seed(args.seed)
        inputs = [(torch.randint(0, 256, (cfg.timesteps, 1, 3, cfg.template_size, cfg.template_size), generator=g),
                   torch.randint(0, 256, (1, 1, 3, cfg.search_size, cfg.search_size), generator=g))
                  for _ in range(args.frames)]
    else:
        inputs = list(synthetic_frames(cfg, args.frames))

    def progress(i, n):
        print(f"\rsimulate [{args.sim}] run {i}/{n}", end="", file=sys.stderr, flush=True)

    rep = simulate(net, ap, inputs, check=args.check, sim=args.sim, progress=progress if args.sim == "amaranth" else None,
                   seed=args.seed, gaps=args.gaps, stall=args.stall, vcd=args.waves, backdoor=args.backdoor,
                   readback=readback, bank_rows=args.bank_rows)
    print(file=sys.stderr)
    out = summarise(rep, args.frames)
    out["sim"] = args.sim
    out["bank_rows"] = rep.get("bank_rows")
    from spiketrack.compiler.accel_energy import accelerator_energy
    from spiketrack.compiler.fuse import fuse

    search = [v for k, v in rep["per_pass"].items() if k.startswith("search_frame")]
    if search:
        e = accelerator_energy(fuse(net)[0], ap, search[0]["counters"])
        out["energy_per_frame"] = {"with_memory": {"snn_mj": e["snn_mj"], "ann_mj": e["ann_mj"], "ratio": e["ratio"]},
                                   "snn_memory_mj": e["snn"]["memory_mj"], "ann_memory_mj": e["ann"]["memory_mj"],
                                   "external_mj": e["snn"]["external_mj"]}
    out["external_weights"] = ap.ext_weights
    if args.json:
        print(json.dumps(out))
    else:
        checked = (f"{out['layers_checked']} of {out['layers_total']} layers checked" if args.check == "layers" else
                   f"{out['outputs_checked']} pass results checked ({out['layers_total']} layers run)")
        print(f"{args.frames} search frame(s) + template pass on {args.sim}: {checked} "
              f"(read back: {readback}), {out['mismatches']} mismatches; "
              f"{out['cycles_per_frame']} cycles per frame (model {out['predicted_cycles_per_frame']}, "
              f"{'exact' if out['cycle_model_exact'] else 'NOT exact'}), {out['fps_at_100mhz']} fps at 100 MHz")
    return 0 if out["mismatches"] == 0 and out["cycle_model_exact"] else 1
