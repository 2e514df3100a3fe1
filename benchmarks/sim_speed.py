"""Simulation speed of one small design under amaranth.sim, Icarus and Verilator (``spiketrack bench``).

The design is the conv engine (``hw/conv_engine.py``, ``P = 8``) between its memories, with one
small layer's memory images baked into the memories' initial contents (:class:`BakedHarness`), so
every simulator runs the same netlist from the same state: the testbench only hands over the
descriptor and lets the clock run, :data:`CHUNK` cycles at a time, until the engine is idle.
Speed is simulated cycles over the wall seconds of that free run (elaboration, Verilog
conversion, compilation and simulator start-up are excluded and reported apart).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from spiketrack.sim.cocotb_runner import PROJECT_ROOT, available_simulators, run_cocotb
from spiketrack.sim.unit_sim import UnitHarness

__all__ = ["BakedHarness", "speed_job", "amaranth_speed", "cocotb_speed", "CHUNK", "TB"]

CHUNK = 256                       #: cycles the simulator runs between two looks at ``busy``
TB = "benchmarks/tb_sim_speed.py"
LAYER = "3x3 conv 16->16 channels, 8x8 map, T = 1, 40 % density, P = 8"


def speed_job(seed: int = 0):
    """The benchmark's layer (:data:`LAYER`) as a conv-engine job (``sim/conv_engine_sim.conv_job``)."""
    from spiketrack.sim.conv_engine_sim import conv_job
    from spiketrack.sim.cores_sim import random_levels

    g = torch.Generator().manual_seed(seed)
    lv = random_levels(g, (1, 16, 8, 8), 0.4)
    w = torch.randint(-127, 128, (16, 16, 3, 3), generator=g)
    b = torch.randint(-3000, 3000, (16,), generator=g)
    return conv_job(lv, w, b, 6, padding=1)


def _reads(lanes: int) -> dict:
    from spiketrack.hw.conv_engine import BIAS_BITS, SHIFT_BITS, STREAM_BITS, TM_BITS

    return {"in": 3 * lanes, "w": 8 * lanes, "tm": TM_BITS * lanes, "tab": (BIAS_BITS + SHIFT_BITS) * lanes,
            "res": STREAM_BITS * lanes}


class BakedHarness(UnitHarness):
    """:class:`~spiketrack.sim.unit_sim.UnitHarness` of the conv engine with one job's images as the
    memories' initial contents (nothing is loaded at run time)."""

    def __init__(self, job, lanes: int = 8):
        from spiketrack.hw.conv_engine import STREAM_BITS, ConvEngine, desc_layout

        self.images = job.images
        depths = {name: len(img) for name, img in job.images.items()}
        depths["out"] = job.out_depth
        super().__init__(ConvEngine(lanes), _reads(lanes), STREAM_BITS * lanes, depths, desc_layout(16),
                         init=job.images)


def packed_desc(job) -> int:
    """The job's descriptor as one integer (the Verilog port ``i_desc__payload``)."""
    from amaranth import Const

    from spiketrack.hw.conv_engine import desc_layout

    return Const.cast(desc_layout(16).const(job.desc)).value


def amaranth_speed(max_cycles: int = 200_000) -> dict:
    """Run the job under amaranth.sim; ``{"cycles", "run_seconds", "setup_seconds"}``."""
    from amaranth.sim import Simulator

    from spiketrack.sim.unit_sim import set_fields, tick_until

    t0 = time.perf_counter()
    job = speed_job()
    dut = BakedHarness(job)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    state = {"cycles": 0}

    async def tb(ctx):
        await ctx.tick().repeat(2)
        set_fields(ctx, dut.i_desc.payload, job.desc)
        ctx.set(dut.i_desc.valid, 1)
        await tick_until(ctx, dut.i_desc.ready, "the conv engine taking its descriptor")
        ctx.set(dut.i_desc.valid, 0)
        n = 0
        while n < max_cycles:
            await ctx.tick().repeat(CHUNK)
            n += CHUNK
            if not ctx.get(dut.busy):
                break
        state["cycles"] = n

    sim.add_testbench(tb)
    t1 = time.perf_counter()
    sim.run()
    t2 = time.perf_counter()
    return {"cycles": state["cycles"], "run_seconds": t2 - t1, "setup_seconds": t1 - t0}


def cocotb_speed(sim: str, max_cycles: int = 200_000) -> dict:
    """Run the job's Verilog under cocotb on ``sim`` (``icarus`` or ``verilator``); the same keys as
    :func:`amaranth_speed` plus ``build_seconds`` and ``built`` (False: a cached build was reused)."""
    if sim not in available_simulators():
        raise RuntimeError(f"{sim} is not installed (make setup)")
    job = speed_job()
    t0 = time.perf_counter()
    work = PROJECT_ROOT / "build" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:   # run_cocotb sends the tools' output to stderr
        report = Path(tmp) / "speed.json"
        res = run_cocotb(lambda: BakedHarness(job), toplevel="bench_conv_engine", test_module=TB, sim=sim,
                         name=f"bench-conv-engine-{sim}",
                         tb_params={"desc": packed_desc(job), "chunk": CHUNK, "max_cycles": max_cycles,
                                    "report": str(report)})
        out = json.loads(report.read_text())
    return {"cycles": out["cycles"], "run_seconds": out["seconds"], "build_seconds": res.build_seconds,
            "built": res.built, "setup_seconds": time.perf_counter() - t0 - out["seconds"] - res.build_seconds}
