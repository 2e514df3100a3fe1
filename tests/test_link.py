"""The UART host link (hw/link, hw/accel/board.py) and its host transport (sim/link_transport.py):
CRC, UART bytes, framed commands executed on the accelerator, and every kind of bad frame
rejected without being executed, each followed by a working command."""

import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from spiketrack.hw.accel.board import ecp5_pll, ice40_pll
from spiketrack.hw.accel.protocol import COUNTERS, MEM_IDS, Op, RunKind, header
from spiketrack.hw.link.frames import crc16_step
from spiketrack.hw.link.protocol import SOF, FrameParser, LinkErr, crc16, crc16_byte, encode_frame
from spiketrack.hw.link.uart import UartRx, UartTx
from spiketrack.sim.accel_driver import AccelError
from spiketrack.sim.board_sim import run_link_session
from spiketrack.sim.link_transport import LinkError
from spiketrack.sim.unit_sim import tick_until


def test_crc16_is_ccitt_false_and_the_rtl_equals_it():
    assert crc16(b"123456789") == 0x29B1          # the catalogued check value of CRC-16/CCITT-FALSE
    m = Module()
    crc, byte = Signal(16), Signal(8)
    out = crc16_step(m, crc, byte, "c")
    rng = random.Random(3)
    cases = [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(300)] + [(0xFFFF, 0), (0, 0xFF)]
    sim = Simulator(m)
    got = []

    async def tb(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            got.append(ctx.get(out))

    sim.add_testbench(tb)
    sim.run()
    assert got == [crc16_byte(c, b) for c, b in cases]


def test_frame_parser_takes_split_frames_and_refuses_a_corrupted_one():
    f1, f2 = encode_frame(1, b"\x01\x02\x03\x04"), encode_frame(0x7F, b"\x05\x00\x10\x00")
    p = FrameParser()
    data = b"\x00\x13" + f1 + f2
    frames = []
    for i in range(0, len(data), 3):
        frames += p.feed(data[i:i + 3])
    assert frames == [(1, b"\x01\x02\x03\x04"), (0x7F, b"\x05\x00\x10\x00")] and p.skipped == 2
    bad = bytearray(f1)
    bad[5] ^= 0x40
    with pytest.raises(ValueError, match="failed its CRC"):
        FrameParser().feed(bytes(bad))


@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_loopback_bytes_framing_errors_and_overruns(divisor):
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor)
    line = Signal(init=1)
    force_low = Signal()
    m.d.comb += [line.eq(tx.tx & ~force_low), rx.rx.eq(line)]
    data = [random.Random(divisor).randrange(256) for _ in range(12)] + [0x00, 0xFF, SOF]
    sim = Simulator(m)
    sim.add_clock(1e-8)
    got = []

    async def tb(ctx):
        for b in data:                        # back to back, reader always ready
            ctx.set(tx.i_byte.payload, b)
            ctx.set(tx.i_byte.valid, 1)
            ctx.set(rx.o_byte.ready, 1)
            await tick_until(ctx, tx.i_byte.ready, "the UART transmitter taking a byte")
            await ctx.tick()
            ctx.set(tx.i_byte.valid, 0)
            for _ in range(12 * divisor):
                if ctx.get(rx.o_byte.valid):
                    got.append(ctx.get(rx.o_byte.payload))
                    await ctx.tick()
                    break
                await ctx.tick()
        # a byte whose stop bit is held low: dropped and counted
        ctx.set(tx.i_byte.payload, 0x55)
        ctx.set(tx.i_byte.valid, 1)
        await tick_until(ctx, tx.i_byte.ready, "the UART transmitter taking a byte")
        await ctx.tick()
        ctx.set(tx.i_byte.valid, 0)
        await ctx.tick().repeat(9 * divisor)
        ctx.set(force_low, 1)
        await ctx.tick().repeat(3 * divisor)
        ctx.set(force_low, 0)
        await ctx.tick().repeat(4 * divisor)
        assert ctx.get(rx.framing_errors) == 1 and not ctx.get(rx.o_byte.valid)
        # two bytes while the reader is not ready: the second is dropped and counted
        ctx.set(rx.o_byte.ready, 0)
        for b in (0x11, 0x22):
            ctx.set(tx.i_byte.payload, b)
            ctx.set(tx.i_byte.valid, 1)
            await tick_until(ctx, tx.i_byte.ready, "the UART transmitter taking a byte")
            await ctx.tick()
        ctx.set(tx.i_byte.valid, 0)
        await ctx.tick().repeat(12 * divisor)
        assert ctx.get(rx.overruns) == 1 and ctx.get(rx.o_byte.payload) == 0x11

    sim.add_testbench(tb)
    sim.run()
    assert got == data


def test_link_executes_commands_and_rejects_every_bad_frame_unexecuted():
    """The accelerator with its memory-build unit only (``units=("mb",)``: the link, the command
    decoder and the memories are those of every configuration; amaranth.sim runs it ~4x faster
    per cycle than with all units) and memory ``lv`` (24-bit rows, one word each)."""
    lv = MEM_IDS["lv"]
    row0 = 0xABCDEF

    def words_bytes(words):
        return b"".join(int(w).to_bytes(4, "little") for w in words)

    def expect_reject(tr, raw, code):
        tr.send_raw(raw)
        with pytest.raises(LinkError) as e:
            tr.recv(1)
        assert e.value.code == code, str(e.value)
        return str(e.value)

    def session(drv, tr, st):
        line = st["line"]
        drv.write("lv", 0, [row0])
        drv.write("lv", 3, [0xCAFEF0, 7, 1 << 23])                   # several rows
        assert drv.read("lv", 3, 3) == [0xCAFEF0, 7, 1 << 23]
        write_lv0 = words_bytes([header(Op.WRITE, lv, 1), 0, 0x111111])
        write_frame = encode_frame(Op.WRITE, write_lv0)
        msgs = {}
        # 1. a corrupted bit (CRC)
        bad = bytearray(encode_frame(Op.WRITE, write_lv0))
        bad[9] ^= 0x10
        msgs["crc"] = expect_reject(tr, bytes(bad), LinkErr.CRC)
        # 2. an unknown kind, and a kind that disagrees with the header's op
        msgs["kind"] = expect_reject(tr, encode_frame(9, write_lv0), LinkErr.KIND)
        expect_reject(tr, encode_frame(Op.READ, write_lv0), LinkErr.KIND)
        # 3. lengths: one row more than the header's count; not whole words; zero
        msgs["length"] = expect_reject(tr, encode_frame(Op.WRITE, write_lv0 + words_bytes([1])), LinkErr.LENGTH)
        expect_reject(tr, encode_frame(Op.WRITE, write_lv0[:-1]), LinkErr.LENGTH)
        expect_reject(tr, encode_frame(Op.STATUS, b""), LinkErr.LENGTH)
        # a WRITE of 0 rows without its address word (found by the formal proof link_rejects)
        expect_reject(tr, encode_frame(Op.WRITE, words_bytes([header(Op.WRITE, lv, 0)])), LinkErr.LENGTH)
        # 4. a frame that stops halfway
        msgs["truncated"] = expect_reject(tr, encode_frame(Op.WRITE, write_lv0)[:9], LinkErr.TRUNCATED)
        # 5. a frame that arrives while the previous one is still executing: the READ's 81 reply
        #    words overflow the link's 64-word response FIFO, so the STATUS frame after it waits
        #    for the accelerator, and the third frame's bytes arrive during that wait
        status = encode_frame(Op.STATUS, words_bytes([header(Op.STATUS), 0]))
        tr.send_raw(encode_frame(Op.READ, words_bytes([header(Op.READ, lv, 80), 0])) + status + write_frame)
        assert tr.recv(81)[1] == row0
        assert tr.recv(2 + len(COUNTERS))[0] >> 24 == 0xA5    # the STATUS frame executed
        with pytest.raises(LinkError) as e:
            tr.recv(1)
        assert e.value.code == LinkErr.OVERRUN
        # none of the rejected frames wrote anything
        assert drv.read("lv", 0, 1) == [row0]
        # the accelerator's own refusals still come through the link
        with pytest.raises(AccelError, match="out of order"):
            drv.run(0, 1, RunKind.SEARCH)
        with pytest.raises(AccelError, match="out of range"):
            drv.read("lv", 95, 2)
        st_ = drv.status()
        assert not st_["busy"] and st_["lv_reads"] >= 4
        return msgs, line.framing_errors

    msgs, framing = run_link_session(session, depths={"lv": 96}, divisor=4, gap_cycles=300, units=("mb",))
    assert framing == 0
    assert "bad CRC" in msgs["crc"] and "unknown command" in msgs["kind"] and "truncated" in msgs["truncated"]


def test_pll_settings_hit_the_requested_clock_within_the_device_limits():
    p = ecp5_pll(25, 100)
    assert p["f_out_mhz"] == 100 and 400 <= p["f_vco_mhz"] <= 800
    assert abs(ecp5_pll(48, 100)["f_out_mhz"] - 100) < 1e-9
    q = ice40_pll(12, 30)
    assert q["f_out_mhz"] == 30 and 533 <= 12 * (q["divf"] + 1) / (q["divr"] + 1) <= 1066
    with pytest.raises(ValueError, match="no ECP5 PLL"):
        ecp5_pll(25, 1000)


def test_ulx3s_board_top_with_the_sdram_elaborates():
    """``BoardTop(sdram=True)`` (``spiketrack build --external-weights``): the SDRAM controller on
    the ULX3S's SDRAM pins, its read words registered before the accelerator's port, the clock to
    the chip through a DDR output (other boards are refused by the CLI: tests/test_board_cli.py)."""
    from spiketrack.bitstreams.boards import get_board
    from spiketrack.hw.accel.board import BoardTop

    b = get_board("ulx3s-85f")
    top = BoardTop(family="ecp5", f_in_mhz=b.clock_mhz, clock_mhz=62.5, sdram=True)
    rtlil = b.platform_class()().prepare(top, name="t").files["t.il"]
    for name in ("sdram_ctrl", "sdram_rdata", "sdram_0__clk", "sdram_0__dq", "ODDRX1F"):
        assert name in rtlil, name


@pytest.mark.parametrize("board", ["ulx3s-85f", "orangecrab-85f", "icebreaker"])
def test_board_top_elaborates_with_pll_uart_and_leds(board):
    """The board top (PLL instance, reset, UART pins, LEDs) through amaranth-boards' prepare step."""
    from spiketrack.bitstreams.accel_build import UART_PINS
    from spiketrack.bitstreams.boards import get_board
    from spiketrack.hw.accel.board import BoardTop

    b = get_board(board)
    top = BoardTop(family=b.device.family, f_in_mhz=b.clock_mhz, clock_mhz=100 if b.device.family == "ecp5" else 24,
                   uart_pins=UART_PINS.get(board))
    plan = b.platform_class()().prepare(top, name="t")
    rtlil = plan.files["t.il"]
    assert ("EHXPLLL" if b.device.family == "ecp5" else "SB_PLL40_PAD") in rtlil
    assert ("DCCA" in rtlil) == (b.device.family == "ecp5")     # ECP5: the reset on a global network
    assert "uart_0__rx" in rtlil and "uart_0__tx" in rtlil
    assert abs(top.f_core_mhz - (100 if b.device.family == "ecp5" else 24)) < 1


def test_external_memory_over_the_link():
    """Memory EXT through the UART link (a top with an external memory, as the ULX3S build with
    ``--external-weights``): rows written and read back, a frame whose length disagrees with EXT's
    one-word rows rejected unexecuted, and a FETCH descriptor copying the words into ``w``."""
    from spiketrack.compiler.accel import pack_fields
    from spiketrack.hw.accel.protocol import Mem
    from spiketrack.hw.accel.top import Unit
    from spiketrack.hw.fetch_unit import fetch_desc_layout

    rows = [0x11112222, 0x33334444, 0x55556666, 0x77778888]
    fetch = Unit.FETCH.value | pack_fields(fetch_desc_layout(16), {"ext_addr": 0, "words": 8, "row_base": 1}) << 2

    def words_bytes(words):
        return b"".join(int(w).to_bytes(4, "little") for w in words)

    def session(drv, tr, st):
        drv.write("ext", 0, rows)
        got = drv.read("ext", 0, 4)
        tr.send_raw(encode_frame(Op.WRITE, words_bytes([header(Op.WRITE, Mem.EXT, 1), 0, 1, 2])))
        with pytest.raises(LinkError) as e:
            tr.recv(1)
        drv.write("prog", 0, [fetch])
        drv.run(0, 1, RunKind.RAW)
        drv.wait_idle()
        return got, e.value.code, drv.read("ext", 0, 1), drv.read("w", 1, 2)

    got, code, first, lines = run_link_session(session, depths={"w": 4, "prog": 2}, ext="model", ext_depth=16)
    assert got == rows and code == LinkErr.LENGTH and first == rows[:1]
    assert lines == [rows[0] | rows[1] << 32, rows[2] | rows[3] << 32]


def test_a_wait_for_a_handshake_that_never_comes_fails_naming_it():
    """sim/unit_sim.tick_until: the bounded ctx.tick().until of the testbenches returns at the edge
    the condition holds, and raises naming the wait when it never does (instead of hanging)."""
    from amaranth.sim import Simulator

    from spiketrack.sim.unit_sim import tick_until

    m = Module()
    count, stuck = Signal(8), Signal()
    m.d.sync += count.eq(count + 1)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    seen = {}

    async def tb(ctx):
        await tick_until(ctx, count == 5, "count reaching 5")
        seen["count"] = ctx.get(count)       # the edge sampled 5; the register now holds 6
        with pytest.raises(TimeoutError, match="the stuck ready: not reached within 40 cycles"):
            await tick_until(ctx, stuck, "the stuck ready", limit=40)
        seen["after"] = ctx.get(count)

    sim.add_testbench(tb)
    sim.run()
    assert seen == {"count": 6, "after": 46}
