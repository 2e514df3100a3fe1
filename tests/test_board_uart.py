"""The host driver against the accelerator behind its UART link, serial line in the loop, on the
generated Verilog under cocotb + Verilator (sim/board_cocotb.py): one corrupted frame is rejected
and changes nothing, then a reduced edge-t3's template pass and search frame run over the link with
the program, weights and tables baked into the design (as in the bitstream), or with the weights
loaded over the link into external memory (``make bench``); the template memories and head maps
read back over the link equal the golden model's, and the cycle counters equal the cycle model."""

import pytest
import torch

from spiketrack.compiler.accel import lower_to_accel
from spiketrack.sim.accel_sim import build_plan
from spiketrack.sim.reduced import reduced_network


def test_driver_and_rtl_agree_over_the_uart_including_a_rejected_corrupt_frame():
    from spiketrack.sim.board_cocotb import run_plan_over_uart

    net, cfg = reduced_network()
    ap = lower_to_accel(net, 8)
    g = torch.Generator().manual_seed(0)
    zp = torch.randint(0, 256, (cfg.timesteps, 1, 3, 16, 16), generator=g)
    xp = torch.randint(0, 256, (1, 1, 3, 16, 16), generator=g)
    plan = build_plan(net, ap, [(zp, xp)], "outputs", load=False)
    rep = run_plan_over_uart(ap, plan, divisor=4, corrupt=True)
    assert rep["corrupt"]["unchanged"] and "bad CRC" in rep["corrupt"]["rejected"]
    p = rep["plan"]
    assert p["runs"] == len(ap.runs("template_update")) + 1 > 2 and p["checks"] >= 4   # streamed tables: several template runs
    assert p["mismatches"] == 0, p["first_mismatch"]
    assert p["cycle_model_exact"], p["first_cycle_difference"]
    assert p["per_pass"]["search_frame_0"]["cycles"] == p["per_pass"]["search_frame_0"]["predicted_cycles"]


@pytest.mark.slow   # ~180 s (`make bench`): the weights cross the UART byte by byte, ~1M bit times of
# the testbench's serial line in Python; the default suite covers EXT over the link (test_link.py)
# and the whole network with external weights (test_accel.py) apart
def test_weights_loaded_into_external_memory_over_the_uart():
    """A bitstream built with ``--external-weights`` (the ULX3S's build) carries the program and
    tables but not the SDRAM's contents. Over the UART: the host loads the weights into memory
    EXT, then the template pass and a search frame run with the fetches beside the convolutions;
    results equal to the golden model's, cycles equal to the model (the fixed-latency
    external-memory model)."""
    from spiketrack.sim.board_cocotb import run_plan_over_uart

    net, cfg = reduced_network()
    ap = lower_to_accel(net, 8, ext_weights=True)
    g = torch.Generator().manual_seed(0)
    zp = torch.randint(0, 256, (cfg.timesteps, 1, 3, 16, 16), generator=g)
    xp = torch.randint(0, 256, (1, 1, 3, 16, 16), generator=g)
    plan = build_plan(net, ap, [(zp, xp)], "outputs", load=False, load_ext=True)
    ext_rows = dict(ap.host_images())["ext"]
    assert [s["mem"] for s in plan if s["op"] == "write" and "pass" not in s] == ["ext"] * -(-len(ext_rows) // 512)
    rep = run_plan_over_uart(ap, plan, divisor=4, corrupt=False)
    p = rep["plan"]
    assert p["runs"] == len(ap.runs("template_update")) + 1 > 2 and p["checks"] >= 4   # streamed tables: several template runs
    assert p["mismatches"] == 0, p["first_mismatch"]
    assert p["cycle_model_exact"], p["first_cycle_difference"]
    assert p["per_pass"]["search_frame_0"]["counters"]["ext_words"] > 0
