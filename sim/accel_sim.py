"""The accelerator top in amaranth.sim, driven by the host driver, checked against the golden model.

:func:`run_session` elaborates :class:`~spiketrack.hw.accel.Accelerator` for a compiled
:class:`~spiketrack.compiler.accel.AccelProgram` and runs ``fn(driver)`` in a thread while a
testbench moves the words of the command and response streams (with random gaps on the command
stream and random backpressure on the response stream when asked).

:func:`simulate` is the main job: load the images over the command stream, run the template
pass, then search frames; after every hardware op (``check="layers"``) or every pass
(``check="outputs"``) read the results back and compare them with the golden run of the same
crops, element for element, and the cycles of every run with the cycle model. The first mismatch
is reported by pass, layer, element and the cycle counter at that point.
"""

from __future__ import annotations

import os
import random
import time

import torch

from spiketrack.compiler.accel import AccelProgram, memory_rows, rows_tensor, tensor_rows
from spiketrack.compiler.fuse import fuse
from spiketrack.compiler.schedule import programs, run_program
from spiketrack.hw.accel.protocol import TIMEOUT, RunKind
from spiketrack.hw.accel.top import Accelerator
from spiketrack.hw.banked_memory import BANK_ROWS
from spiketrack.sim.accel_driver import AccelDriver, SimTransport
from spiketrack.sim.unit_sim import run_simulator

__all__ = ["run_session", "golden_passes", "build_plan", "execute_plan", "simulate"]

LOAD_CHUNK = 512   #: rows per WRITE command when loading images


def run_session(ap: AccelProgram, fn, *, seed: int = 0, gaps: float = 0.0, stall: float = 0.0,
                vcd: str | None = None, timeout: int = TIMEOUT, abort_at=None, preload=None,
                bank_rows: int | None = None, sdram_mhz: float | None = None):
    """Run ``fn(driver)`` against the simulated accelerator; returns ``fn``'s result.

    gaps, stall : probability of an idle cycle on the command stream / of ``ready`` low on the
        response stream (random, from ``seed``).
    abort_at : optional callable ``(cycle) -> bool``; while it is true the design is held in
        reset (the memories keep their contents), to test a reset in the middle of a frame.
    preload : optional ``{memory: rows}`` written into the memories before the first cycle
        (a simulation backdoor: amaranth.sim takes minutes for the command stream's image load).
    sdram_mhz : with external weights, serve the accelerator's external-memory port
        (``Accelerator(ext="port")``) with the board's SDRAM controller at this clock and the
        behavioural chip model on its pins (``hw/sdram/``: every timing rule checked; a 2 µs
        power-up), instead of the fixed-latency model; the host loads memory EXT itself, or with
        ``preload`` the chip model starts holding the external image (``ap.images["ext"]``).
    """
    from amaranth.hdl import ResetInserter
    from amaranth.sim import Simulator

    from amaranth import Module, Signal

    kw = ap.accel_kwargs(preload is not None)
    if sdram_mhz:
        kw.update(ext="port", ext_init=())
    dut = Accelerator(ap.lanes, ap.depths, ap.addr_bits, timeout=timeout, bank_rows=bank_rows or BANK_ROWS, **kw)
    rst = Signal()
    wrapper = Module()
    wrapper.submodules.acc = ResetInserter({"sync": rst})(dut)
    chip = None
    if sdram_mhz:
        from spiketrack.hw.accel.board import connect_sdram_bus
        from spiketrack.hw.sdram.bench import FAST_INIT_TIMINGS
        from spiketrack.hw.sdram.controller import SDRAMController
        from spiketrack.hw.sdram.model import SDRAMChipModel

        wrapper.submodules.sdram = ctrl = SDRAMController(sdram_mhz, timings=FAST_INIT_TIMINGS)
        connect_sdram_bus(wrapper, dut.ext, ctrl.bus)   # as on the board
        g = ctrl.geometry
        image = ap.images.get("ext", []) if preload is not None else []
        chip = SDRAMChipModel(ctrl.sdram, sdram_mhz, FAST_INIT_TIMINGS, geometry=g,
                              init={g.split(a): w for a, w in enumerate(image)})
    sim = Simulator(wrapper)
    sim.add_clock(1e-8)
    if chip is not None:
        sim.add_process(chip.process)
    tr = SimTransport()
    state: dict = {}

    async def tb(ctx):
        rng = random.Random(seed)
        cur = None
        quiet = 0
        cycle = 0
        driven = {"valid": None, "payload": None, "ready": None, "rst": None}

        def put(name, sig, value):   # a set only on change: every set makes the simulator settle
            if driven[name] != value:
                ctx.set(sig, value)
                driven[name] = value

        for name, rows in (preload or {}).items():
            for i, row in enumerate(rows):
                ctx.set(dut.mems[name].row(i), dut.stored_row(name, row))
        thread = tr.start_host(lambda: fn(AccelDriver(tr, dut.widths), state))
        while not tr.closed.is_set():
            if cur is None:
                cur = tr.next_word(quiet, timeout + 32)
            drive = cur is not None and (gaps == 0 or rng.random() >= gaps)
            put("valid", dut.i_cmd.valid, int(drive))
            if drive:
                put("payload", dut.i_cmd.payload, cur)
            ready = stall == 0 or rng.random() >= stall
            put("ready", dut.o_rsp.ready, int(ready))
            held = bool(abort_at and abort_at(cycle))
            put("rst", rst, int(held))
            _, _, cmd_ready, rsp_valid, rsp_word, busy, collided = await ctx.tick().sample(
                dut.i_cmd.ready, dut.o_rsp.valid, dut.o_rsp.payload, dut.busy, dut.collided)
            cycle += 1
            if collided and "collided" not in state:
                state["collided"] = cycle
            state["cycle"] = cycle
            if drive and cmd_ready and not held:
                cur = None
            if rsp_valid and ready and not held:
                tr.deliver((int(rsp_word),))
            quiet = 0 if (cur is not None or busy or rsp_valid) else quiet + 1
            tr.observe_busy(busy)
        thread.join()

    sim.add_testbench(tb)
    run_simulator(sim, vcd)
    if tr.error is not None:
        raise tr.error
    if "collided" in state:
        raise RuntimeError(f"a memory read collided with a write to the same row (by cycle {state['collided']}): "
                           "its data are undefined on the board (hw/banked_memory.py)")
    return tr.result


def golden_passes(net, inputs):
    graph, _ = fuse(net)
    progs = programs(graph)
    zp = inputs[0][0][:, :1]
    env_t = run_program(graph, progs["template_update"], {"template_pixels": zp})
    mems = {m: env_t[m] for m in progs["template_update"].outputs}
    passes = [("template_update", env_t, {"template_pixels": zp})]
    for _, xp in inputs:
        env_s = run_program(graph, progs["search_frame"], {"search_pixels": xp[:, :1], **mems})
        passes.append(("search_frame", {**env_t, **env_s}, {"search_pixels": xp[:, :1]}))
    return graph, passes


def _read_steps(ap: AccelProgram, net, name: str, expected: torch.Tensor, label: str, node: str) -> dict:
    """One check: the rows of tensor ``name`` and the rows the golden value packs to."""
    pl = ap.placement[name]
    ty = net.types[name]
    exp = expected[:, 0] if expected.dim() == 5 else expected
    if ty.kind == "memory":
        rows = memory_rows(exp, ap.lanes)
        spans = [(pl.base, len(rows))]
    else:
        rows = tensor_rows(exp, ty.kind, ap.lanes)
        per_t = len(rows) // ty.shape[0]
        spans = [(pl.base + t * pl.t_stride, per_t) for t in range(ty.shape[0])]
    return {"op": "check", "pass": label, "layer": node, "tensor": name, "mem": pl.mem, "spans": spans,
            "expected": rows, "shape": list(ty.shape), "kind": ty.kind}


def build_plan(net, ap: AccelProgram, inputs, check: str = "layers", load: bool = True,
               load_ext: bool = False) -> list[dict]:
    """The host's session as a list of steps (loads, runs with their predicted cycles, checks).

    ``inputs``: a tracker's ``[(template_pixels, search_pixels), ...]`` (a template pass, then one
    search frame per pair), or for a one-program network (``ap.programs == {"run": ...}``) its
    inputs ``{name: [T, B, C, H, W]}`` (one RAW run, batch 0).

    Executed by :func:`execute_plan` over any transport (amaranth.sim, cocotb, a board), so the
    simulation and the board run the same host code. ``load``: the plan writes every image first;
    ``load_ext``: with external weights, it writes memory EXT first even without ``load`` (a
    bitstream carries the on-chip images, never the SDRAM's).
    """
    if check not in ("layers", "outputs"):
        raise ValueError(f"check must be 'layers' or 'outputs', got {check!r}")
    if "run" in ap.programs:   # not a tracker: one program on the inputs {name: [T, B, ...]}
        graph, _ = fuse(net)
        env = run_program(graph, programs(graph)["run"], {k: v[:, :1] for k, v in inputs.items()})
        passes = [("run", env, {k: v[:, :1] for k, v in inputs.items()})]
    else:
        graph, passes = golden_passes(net, inputs)
    net = graph.net   # the compiler's network (its IR rewrite, compiler/fuse.py)
    steps: list[dict] = []
    for mem, rows in ap.host_images():
        if not (load or (load_ext and mem == "ext")):
            continue
        for i in range(0, len(rows), LOAD_CHUNK):
            steps.append({"op": "write", "mem": mem, "addr": i, "rows": rows[i:i + LOAD_CHUNK]})
    steps.append({"op": "guard", "rows": ap.guard})
    for i, (pname, env, host_inputs) in enumerate(passes):
        label = pname if pname == "run" else "template_update" if i == 0 else f"search_frame_{i - 1}"
        kind = {"run": RunKind.RAW, "template_update": RunKind.TEMPLATE}.get(pname, RunKind.SEARCH)
        node_of = {n.name: n for n in ap.nodes}
        for run in ap.runs(pname, per_node=check == "layers"):   # a banded crop: one run per band
            for mem, addr, rows in ap.host_writes(run, {k: v[:, 0] for k, v in host_inputs.items()}):
                steps.append({"op": "write", "pass": label, "mem": mem, "addr": addr, "rows": rows})
            steps.append({"op": "run", "pass": label, "first": run.first, "count": run.count, "kind": kind,
                          "predicted": ap.span_cycles(graph, run.first, run.count, env),
                          "layers": sum(len(node_of[x].layers) for x in run.nodes)})
            if check == "layers":
                for x in run.nodes:
                    n = node_of[x]
                    steps.append({**_read_steps(ap, net, n.out, env[n.out], label, n.name), "layers": len(n.layers)})
        if check == "outputs":
            for o in ap.outputs[pname]:   # the pass's results only: no layer's own output is compared
                steps.append({**_read_steps(ap, net, o, env[o], label, o), "layers": 0})
    return steps


def _first_bad_element(step: dict, got_rows: list[int], lanes: int) -> list[int]:
    if step["kind"] == "memory":
        return [next(i for i, (a, b) in enumerate(zip(got_rows, step["expected"])) if a != b)]
    shape = tuple(step["shape"])
    got = rows_tensor(got_rows, shape, step["kind"], lanes)
    exp = rows_tensor(step["expected"], shape, step["kind"], lanes)
    return [int(i) for i in (got != exp).nonzero()[0]]


READBACKS = ("host", "peek")   #: how a plan's checks read the memories (execute_plan)


def check_readback(readback: str, sim: str | None = None) -> None:
    """Refuse an unknown ``readback``, and ``"peek"`` under a simulator other than Verilator
    (``sim``; None: not known here)."""
    if readback not in READBACKS:
        raise ValueError(f"readback must be one of {READBACKS}, got {readback!r}")
    if readback == "peek" and sim not in (None, "verilator"):
        raise ValueError(f"backdoor reads (readback 'peek') need the Verilator simulation, not {sim!r}")


def execute_plan(drv: AccelDriver, plan: list[dict], lanes: int, cycle=lambda: None, progress=None,
                 readback: str = "host") -> dict:
    """Run ``plan`` through ``drv``; compare every check and every run's cycle counter.

    ``readback``: a check reads its rows with READ commands (``"host"``) or with the simulator's
    backdoor (``"peek"``: :meth:`AccelDriver.peek`, no simulated cycle). ``layers_checked``
    counts the layers whose own output a check compared (``check="layers"``: every hardware op's
    layers; ``"outputs"``: none, ``outputs_checked`` counts the pass results compared)."""
    check_readback(readback)
    read = drv.peek if readback == "peek" else drv.read
    report = {"runs": 0, "layers_checked": 0, "outputs_checked": 0, "checks": 0, "mismatches": 0,
              "first_mismatch": None, "cycle_model_exact": True, "first_cycle_difference": None,
              "readback": readback, "per_pass": {}}
    n_runs = sum(s["op"] == "run" for s in plan)
    before = None
    trace = os.environ.get("SPIKETRACK_PLAN_TRACE")
    t0 = time.monotonic()
    for step in plan:
        op = step["op"]
        t_step, c_step = time.monotonic(), time.process_time()
        if trace:
            print(f"[plan {time.monotonic() - t0:8.2f} s, cycle {cycle()}] {op} {step.get('mem', '')} "
                  f"{step.get('addr', step.get('first', ''))}", flush=True)
        if op == "write":
            drv.write(step["mem"], step["addr"], step["rows"])
        elif op == "guard":
            drv.guard(step["rows"])
        elif op == "run":
            before = drv.status()
            drv.run(step["first"], step["count"], step["kind"])
            after = drv.wait_idle()
            cycles = after["run_cycles"] - before["run_cycles"]
            pp = _pass_entry(report, step["pass"])
            pp["cycles"] += cycles
            pp["predicted_cycles"] += step["predicted"]
            for k, v in after.items():
                if k not in ("busy", "template_valid", "guard"):
                    pp["counters"][k] = pp["counters"].get(k, 0) + (v - before[k]) % (1 << 32)
            if cycles != step["predicted"] and report["cycle_model_exact"]:
                report["cycle_model_exact"] = False
                report["first_cycle_difference"] = {"pass": step["pass"], "first": step["first"],
                                                    "cycles": cycles, "predicted": step["predicted"]}
            report["runs"] += 1
            if progress:
                progress(report["runs"], n_runs)
        elif op == "check":
            got = []
            for base, n in step["spans"]:
                got += read(step["mem"], base, n)
            report["checks"] += 1
            report["layers_checked"] += step.get("layers", 0)
            report["outputs_checked"] += not step.get("layers", 0)
            bad = sum(a != b for a, b in zip(got, step["expected"]))
            if bad:
                report["mismatches"] += bad
                if report["first_mismatch"] is None:
                    report["first_mismatch"] = {"pass": step["pass"], "layer": step["layer"], "tensor": step["tensor"],
                                                "element": _first_bad_element(step, got, lanes), "cycle": cycle()}
        if step.get("pass"):
            entry = _pass_entry(report, step["pass"])
            entry["wall_s"] += time.monotonic() - t_step
            entry["cpu_s"] += time.process_time() - c_step
    return report


def _pass_entry(report: dict, name: str) -> dict:
    """The per-pass record: cycles, predicted cycles, counters and the wall time its steps took
    (loading its pixels, running, reading back; the simulator's time, not the plan's) and the CPU
    time of the process that runs the simulator meanwhile (``cpu_s``: on a shared machine the wall
    time depends on the other jobs, the CPU time much less)."""
    return report["per_pass"].setdefault(name, {"cycles": 0, "predicted_cycles": 0, "counters": {}, "wall_s": 0.0,
                                                "cpu_s": 0.0})


def simulate(net, ap: AccelProgram, inputs, *, check: str = "layers", sim: str = "amaranth", progress=None,
             seed: int = 0, gaps: float = 0.0, stall: float = 0.0, vcd: str | None = None,
             backdoor: bool = False, readback: str = "host", bank_rows: int | None = None,
             sdram_mhz: float | None = None) -> dict:
    """Run a template pass and ``len(inputs)`` search frames on the simulated accelerator.

    inputs : ``[(template_pixels, search_pixels), ...]`` ([T, B, 3, H, W] uint8; batch 0 used,
        the first pair's template).
    readback : ``"host"`` (the checks read the memories with READ commands) or ``"peek"``
        (Verilator: with the simulator's backdoor, :func:`spiketrack.sim.cocotb_pump.memory_reader`;
        no simulated cycle, the same rows).
    check : ``"layers"`` (every hardware op runs alone and its output is read back and compared)
        or ``"outputs"`` (whole passes; the template memories and the head maps are compared).
    sim : ``"amaranth"`` (amaranth.sim) or ``"verilator"`` (cocotb on the generated Verilog,
        :mod:`spiketrack.sim.accel_cocotb`; ``"icarus"`` is not working yet, docs/accelerator.md).
    backdoor : the program, weights and tables are preloaded into the memories (amaranth.sim) or
        baked into the Verilog (cocotb) instead of written over the command stream (the template
        pixels, search pixels and every read-back still go through it).
    sdram_mhz : external weights served by the board's SDRAM controller and chip model
        (:func:`run_session`; amaranth.sim only): its latencies are not the cycle model's, so
        ``cycle_model_exact`` is false, the outputs must still be equal.
    """
    check_readback(readback, sim)
    if sdram_mhz and sim != "amaranth":
        raise ValueError("sdram_mhz needs sim='amaranth'")
    t0 = time.monotonic()
    plan = build_plan(net, ap, inputs, check, load=not backdoor)
    t_plan = time.monotonic() - t0
    if sim == "amaranth":
        report = run_session(ap, lambda drv, res: execute_plan(drv, plan, ap.lanes, lambda: res.get("cycle"), progress),
                             seed=seed, gaps=gaps, stall=stall, vcd=vcd,
                             preload={m: ap.images[m] for m in ("prog", "w", "tab", "cst")} if backdoor else None,
                             bank_rows=bank_rows, sdram_mhz=sdram_mhz)
    else:
        from spiketrack.sim.accel_cocotb import run_plan_cocotb
        report = run_plan_cocotb(ap, plan, sim=sim, seed=seed, gaps=gaps, stall=stall, waves=vcd,
                                 init={m: ap.images[m] for m in ("prog", "w", "tab", "cst")} if backdoor else None,
                                 readback=readback, bank_rows=bank_rows)
    report.update(frames=len(inputs), layers_total=sum(s["layers"] for s in plan if s["op"] == "run"),
                  plan_seconds=round(t_plan, 1), seconds=round(time.monotonic() - t0, 1))
    return report
