"""Small cocotb 2.x drivers for Amaranth ``lib.stream`` ports (flattened names).

Use inside cocotb test modules (they import cocotb, so never import this from pytest code)::

    import cocotb
    from spiketrack.sim.cocotb_streams import StreamSink, StreamSource, start_clock, reset, tb_params

    @cocotb.test()
    async def test_passthrough(dut):
        start_clock(dut)                       # Clock(dut.clk, 10, unit="ns").start()
        await reset(dut)                       # rst=1 for 2 cycles (active-high, synchronous)
        src = StreamSource(dut, "i_stream", seed=1, valid_prob=0.7)
        snk = StreamSink(dut, "o_stream", seed=2, ready_prob=0.6)
        src.send_all([1, 2, 3])
        got = await snk.receive(3, timeout_cycles=1000)
        assert got == [1, 2, 3]

Timing discipline (identical on Icarus and Verilator): every driver writes its inputs right
after the **falling** edge of ``clk`` and samples in the ``ReadOnly`` phase of that same time
step, i.e. after combinational logic (including a ``ready`` that depends on ``valid``) has
settled. A transfer is counted when ``valid & ready`` is seen there, and it happens at the
next rising edge. The DUT only changes state on rising edges, so this never races.

Stream rules enforced/checked (Amaranth ``lib.stream``): the source holds ``valid`` and
``payload`` until the transfer; ``valid`` never depends on ``ready``. The sink, with
``check_protocol=True``, asserts that the DUT's output obeys the same hold rule.
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from collections.abc import Iterable
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

__all__ = ["StreamSink", "StreamSource", "reset", "start_clock", "tb_params", "wait_cycles"]


def tb_params() -> dict[str, Any]:
    """The ``tb_params`` mapping passed to ``run_cocotb`` (empty if none)."""
    path = os.environ.get("SPIKETRACK_TB_PARAMS")
    if not path or not os.path.isfile(path):
        return {}
    with open(path) as fh:
        return json.load(fh)


def start_clock(dut, *, clk: str = "clk", period_ns: float = 10) -> Clock | None:
    """Start a 50 % duty clock on ``dut.<clk>`` (cocotb 2.x ``Clock(...).start()``).

    The clock is cocotb's C++ clock (``impl="gpi"``): cocotb 2.x otherwise picks a Python coroutine
    (unless ``COCOTB_TRUST_INERTIAL_WRITES`` is set), which wakes Python twice per cycle. The
    testbenches drive on falling edges and sample in ``ReadOnly``, so either is race-free; the
    C++ clock runs the free-running phases 2.6-5x faster (200,000 idle cycles of the accelerator
    under Verilator: 7,600-10,400 cycles/s with the Python clock, 26,800-39,100 with this one,
    at a load average of about 5 on 2 cores).

    Under ``run_cocotb(..., cpp_clock_ns=period_ns)`` (Verilator) the simulator's C++ main
    already drives ``clk`` with the same edges; then this starts nothing and returns None.
    """
    cpp = os.environ.get("SPIKETRACK_CPP_CLOCK_NS")   # cocotb_runner.CPP_CLOCK_NS_ENV
    if cpp is not None:   # run_cocotb(cpp_clock_ns=...): the simulator's C++ main drives `clk`
        if clk != "clk" or float(cpp) != float(period_ns):
            raise RuntimeError(f"start_clock({clk!r}, {period_ns} ns): the simulator's C++ clock drives "
                               f"'clk' at {cpp} ns")
        return None
    clock = Clock(getattr(dut, clk), period_ns, unit="ns", impl="gpi")
    clock.start()
    return clock


async def reset(dut, *, clk: str = "clk", rst: str = "rst", cycles: int = 2) -> None:
    """Hold the active-high synchronous reset for ``cycles`` rising edges, then release.

    Returns just after a falling edge with ``rst`` low, ready for drivers to start.
    Designs without a ``sync`` domain have no ``rst`` port; then this only waits.
    """
    clk_h = getattr(dut, clk)
    rst_h = getattr(dut, rst, None)
    await FallingEdge(clk_h)
    if rst_h is not None:
        rst_h.value = 1
    for _ in range(cycles):
        await RisingEdge(clk_h)
    await FallingEdge(clk_h)
    if rst_h is not None:
        rst_h.value = 0


async def wait_cycles(dut, n: int, *, clk: str = "clk") -> None:
    """Wait ``n`` falling edges (keeps the falling-edge driving discipline)."""
    for _ in range(n):
        await FallingEdge(getattr(dut, clk))


def _value(handle, signed: bool) -> int:
    v = handle.value
    if not v.is_resolvable:
        raise AssertionError(f"{handle._name} is not resolvable (X/Z): {v}")
    return v.to_signed() if signed else v.to_unsigned()


class StreamSource:
    """Drive ``<prefix>__valid`` / ``<prefix>__payload``; honour ``<prefix>__ready``.

    Parameters
    ----------
    dut : cocotb handle of the toplevel
    prefix : str
        Amaranth member name, e.g. ``"i_stream"`` (ports ``i_stream__valid`` ...).
    seed : int
        Seeds the private RNG for the valid gaps (deterministic per seed).
    valid_prob : float
        Probability that a new item is offered in a cycle when one is pending (1.0 = no gaps).
    clk : str
        Clock port name.

    Items are ints (pack struct payloads yourself, first field in the LSBs). Negative ints
    are written two's-complement in the payload width. Streams without ``ready``
    (``always_ready``) and without ``valid`` (``always_valid``) are supported.
    """

    def __init__(self, dut, prefix: str, *, seed: int = 0, valid_prob: float = 1.0,
                 clk: str = "clk"):
        self.dut = dut
        self.clk = getattr(dut, clk)
        self.valid = getattr(dut, f"{prefix}__valid", None)
        self.ready = getattr(dut, f"{prefix}__ready", None)
        self.payload = getattr(dut, f"{prefix}__payload")
        self.width = len(self.payload)
        self.rng = random.Random(seed)
        self.valid_prob = valid_prob
        self.queue: deque[int] = deque()
        self.sent: list[int] = []
        self._idle = True
        if self.valid is not None:
            self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_all(self, items: Iterable[int]) -> None:
        """Queue items; they go out in order as the DUT accepts them."""
        self.queue.extend(int(x) for x in items)

    @property
    def idle(self) -> bool:
        """True when every queued item has been transferred."""
        return not self.queue and self._idle

    async def wait_idle(self, timeout_cycles: int = 100_000) -> None:
        for _ in range(timeout_cycles):
            if self.idle:
                return
            await FallingEdge(self.clk)
        raise AssertionError(f"stream source {self.payload._name}: {len(self.queue)} items "
                             f"still queued after {timeout_cycles} cycles")

    async def _run(self) -> None:
        mask = (1 << self.width) - 1
        current: int | None = None
        while True:
            await FallingEdge(self.clk)
            if current is None and self.queue and self.rng.random() < self.valid_prob:
                current = self.queue.popleft()
            self._idle = current is None
            if current is not None:
                self.payload.value = current & mask
            if self.valid is not None:
                self.valid.value = int(current is not None)
            await ReadOnly()
            if current is None:
                continue
            if self.ready is None or int(self.ready.value):
                self.sent.append(current)  # transfers at the coming rising edge
                current = None
                # _idle stays False until the next falling edge, after the transfer edge


class StreamSink:
    """Drive ``<prefix>__ready`` with random backpressure; collect transferred payloads.

    Parameters
    ----------
    ready_prob : float
        Probability of ``ready=1`` in a cycle (1.0 = never stall).
    signed : bool
        Interpret payloads as two's complement.
    check_protocol : bool
        Assert that the DUT holds ``valid`` and ``payload`` while stalled.
    """

    def __init__(self, dut, prefix: str, *, seed: int = 0, ready_prob: float = 1.0,
                 signed: bool = False, check_protocol: bool = True, clk: str = "clk"):
        self.dut = dut
        self.clk = getattr(dut, clk)
        self.valid = getattr(dut, f"{prefix}__valid", None)
        self.ready = getattr(dut, f"{prefix}__ready", None)
        self.payload = getattr(dut, f"{prefix}__payload")
        self.rng = random.Random(seed)
        self.ready_prob = ready_prob
        self.signed = signed
        self.check_protocol = check_protocol
        self.received: list[int] = []
        self.cycles = 0
        if self.ready is not None:
            self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        stalled: int | None = None  # payload offered but not taken last cycle
        while True:
            await FallingEdge(self.clk)
            rdy = self.rng.random() < self.ready_prob
            if self.ready is not None:
                self.ready.value = int(rdy)
            else:
                rdy = True
            await ReadOnly()
            self.cycles += 1
            valid = 1 if self.valid is None else int(self.valid.value)
            if self.check_protocol and stalled is not None:
                assert valid, f"{self.payload._name}: valid dropped before the transfer"
                now = _value(self.payload, self.signed)
                assert now == stalled, (f"{self.payload._name}: payload changed while stalled "
                                        f"({stalled} -> {now})")
            if valid:
                data = _value(self.payload, self.signed)
                if rdy:
                    self.received.append(data)
                    stalled = None
                else:
                    stalled = data
            else:
                stalled = None

    async def receive(self, n: int, *, timeout_cycles: int = 100_000) -> list[int]:
        """Wait until ``n`` items in total have been received; return the first ``n``."""
        for _ in range(timeout_cycles):
            if len(self.received) >= n:
                return self.received[:n]
            await FallingEdge(self.clk)
        raise AssertionError(f"stream sink {self.payload._name}: got {len(self.received)} of "
                             f"{n} items within {timeout_cycles} cycles")
