"""cocotb testbench for a combinational inverter (no clock, plain Elaboratable + ports=)."""

import cocotb
from cocotb.triggers import Timer


@cocotb.test()
async def test_inverts(dut):
    for a in (0, 1, 0):
        dut.a.value = a
        await Timer(1, unit="ns")
        assert int(dut.y.value) == 1 - a
