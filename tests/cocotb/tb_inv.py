"""cocotb testbench for a combinational inverter (no clock, plain Elaboratable + ports=)."""

import cocotb
from cocotb.triggers import Timer


@cocotb.test()
async def test_inverts(dut):
    for a in (0, 1, 0):
        dut.a.value = a
        await Timer(1, unit="ns")
        assert int(dut.y.value) == 1 - a


@cocotb.test()
async def test_assertions_rewritten_in_the_testbench_only(dut):
    """pytest's assertion rewriting (cocotb installs it) applies to this module and not to the
    libraries it imports: rewriting every imported file, uncached, cost ~10 s per run (torch)."""
    import sys

    import amaranth.lib.crc as lib_module

    def loader(module):
        return type(module.__spec__.loader).__name__

    assert loader(sys.modules[__name__]) == "AssertionRewritingHook"
    assert loader(lib_module) != "AssertionRewritingHook", loader(lib_module)
