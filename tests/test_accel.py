"""The accelerator top (hw/accel): the memory-build unit, the host protocol and its misuse, and a
reduced SpikeTrack network end to end (template pass + search frame), bit-exact against the golden
model and cycle-exact against the cycle model."""

import random
import time

import pytest
import torch

from spiketrack.compiler.accel import AccelProgram, lower_to_accel, pack_fields
from spiketrack.hw.accel.protocol import Err, Mem, Op, RunKind, header
from spiketrack.hw.accel.top import Unit, mem_widths
from spiketrack.hw.engine_cycles import MB_OVERHEAD, Engine, memory_build_cost
from spiketrack.hw.memory_builder import mb_desc_layout
from spiketrack.hw.vector_unit import VecMode, vec_desc_layout
from spiketrack.quant.golden.memory import memory_build
from spiketrack.quant.ir import TensorType
from spiketrack.sim.accel_driver import AccelError
from spiketrack.sim.accel_sim import run_session
from spiketrack.sim.memory_builder_sim import mb_job, run_mb_jobs


# ---------------------------------------------------------------------------------------------
# the memory-build unit alone

def test_memory_builder_equals_golden_and_its_cycle_model():
    P = 8
    g = torch.Generator().manual_seed(1)
    jobs = []
    for T, heads, dh, dv, H, W, density in ((2, 2, 8, 16, 2, 3, 0.5), (1, 1, 16, 8, 3, 3, 1.0), (3, 3, 8, 8, 1, 2, 0.2)):
        k = torch.randint(0, 5, (T, heads * dh, H, W), generator=g) * (torch.rand(T, heads * dh, H, W, generator=g) < density)
        v = torch.randint(0, 5, (T, heads * dv, H, W), generator=g)
        jobs.append(mb_job(k, v, heads, P))
        jobs[-1].kv = (k, v)
    run_mb_jobs(jobs, P)
    for job in jobs:
        k, v = job.kv
        T, _, H, W = k.shape
        _, heads, dh, dv = job.shape
        exp = torch.stack([memory_build(k[t].reshape(heads, dh, -1), v[t].reshape(heads, dv, -1)) for t in range(T)])
        assert torch.equal(job.result["out"], exp)
        m_t = TensorType((T, heads, dh, dv), "memory", 12, False, 6)
        k_t = TensorType(tuple(k.shape), "levels", 3, False, 2)
        model = memory_build_cost(Engine(P), k_t, k_t, m_t).cycles
        assert job.result["cycles"] == model == T * heads * (dv // P) * dh * H * W + MB_OVERHEAD


# ---------------------------------------------------------------------------------------------
# the host protocol on a small accelerator (no network)

P = 8
DEPTHS = {"prog": 8, "w": 16, "tab": 8, "cst": 8, "lv": 64, "st": 600, "tm": 32}


def _vec_neuron_word(n_words: int, src: int, dst: int) -> int:
    """A program word: NI-LIF over ``n_words`` stream words (a long enough op for misuse tests)."""
    from spiketrack.hw.conv_engine import decay_fields

    d = {"mode": VecMode.NEURON, "T": 1, "f_m": 8, "decays": decay_fields(()), "ho": 1, "wo": n_words, "chunks": 1,
         "r_y": 1, "r_x": 1, "a_base": src, "a_t": n_words, "a_row": n_words, "a_col": 1, "o_base": dst, "o_t": n_words}
    return Unit.VEC.value | pack_fields(vec_desc_layout(16), d) << 2


def _mb_word(o_base: int) -> int:
    d = {"T": 1, "heads": 1, "dh": 8, "cpg": 1, "n": 1, "kh": 1, "k_base": 0, "k_t": 1, "k_n": 1, "v_base": 0,
         "v_t": 1, "v_n": 1, "o_base": o_base}
    return Unit.MB.value | pack_fields(mb_desc_layout(16), d) << 2


def _small_program() -> AccelProgram:
    return AccelProgram(P, 16, dict(DEPTHS), {}, {}, [], {}, 0, {}, {})


def test_protocol_round_trips_and_refuses_bad_commands():
    widths = mem_widths(P)
    rng = random.Random(0)
    data = {m: [rng.getrandbits(widths[m]) for _ in range(min(DEPTHS[m], 5))] for m in DEPTHS}

    def session(drv, res):
        for m, rows in data.items():
            drv.write(m, DEPTHS[m] - len(rows), rows)          # the last rows of every memory
        for m, rows in data.items():
            assert drv.read(m, DEPTHS[m] - len(rows), len(rows)) == rows, m
        errors = {}
        for what, words in {"bad_op": [header(9), 0], "bad_mem": [header(Op.READ, 7, 1), 0],
                            "range": [header(Op.READ, 4, 2), DEPTHS["lv"] - 1],
                            "write_range": [header(Op.WRITE, 5, 1), DEPTHS["st"], 1, 2, 3, 4],
                            "order": [header(Op.RUN, RunKind.SEARCH, 0), 0],
                            # no row width for an unknown memory: its payload is dropped until the
                            # stream pauses for the timeout, then the refusal
                            "write_bad_mem": [header(Op.WRITE, 7, 1), 0, 11, 12, 13]}.items():
            drv.t.send(words)
            st = drv.t.recv(1)[0]
            errors[what] = st >> 16 & 15
        # the refused write's payload was dropped: the link is still in step
        assert drv.read("st", DEPTHS["st"] - 1, 1) == data["st"][-1:]
        return errors

    errors = run_session(_small_program(), session, gaps=0.3, stall=0.3, seed=2)
    assert errors == {"bad_op": Err.BAD_OP, "bad_mem": Err.BAD_MEM, "range": Err.RANGE, "write_range": Err.RANGE,
                      "order": Err.ORDER, "write_bad_mem": Err.BAD_MEM}


def test_narrow_positional_table_rows_read_back_sign_extended():
    """``cst_bits`` = 10: the host's 16-bit lanes go in cut to 10 bits and come back sign-extended,
    so a row of 10-bit values reads back as written, and any other row as its low 10 bits per lane."""
    from spiketrack.hw.accel.top import cst_row_value, cst_stored_row

    rng = random.Random(4)
    lane = lambda v: v & 0xFFFF                                         # noqa: E731
    fits = [sum(lane(rng.randint(-512, 511)) << (16 * i) for i in range(P)) for _ in range(4)]
    wild = [rng.getrandbits(16 * P) for _ in range(3)]
    assert all(cst_row_value(cst_stored_row(r, P, 10), P, 10) != r for r in wild)

    def session(drv, res):
        drv.write("cst", 0, fits + wild)
        return drv.read("cst", 0, len(fits) + len(wild))

    ap = AccelProgram(P, 16, dict(DEPTHS), {}, {}, [], {}, 0, {}, {}, cst_bits=10)
    got = run_session(ap, session, gaps=0.2, stall=0.2, seed=4)
    assert got == fits + [cst_row_value(cst_stored_row(r, P, 10), P, 10) for r in wild]


@pytest.mark.parametrize("memory", ["model", "sdram"])
def test_external_memory_through_the_host_and_the_fetch_unit(memory):
    """Memory EXT: the host writes and reads its 32-bit rows (two bus words each), refuses rows past
    its depth, and a FETCH descriptor copies its words into ``w`` lines; under gaps and backpressure
    on the command and response streams. ``model``: the fixed-latency model (the fetch's cycles
    are the model's); ``sdram``: the ULX3S's SDRAM controller at 62.5 MHz and the behavioural chip
    model, which raises on any broken timing rule (the fetch then takes longer than the model)."""
    from spiketrack.hw.fetch_unit import fetch_cycles, fetch_desc_layout

    rng = random.Random(4)
    ext_rows = [rng.getrandbits(32) for _ in range(32)]
    words = [(r >> (16 * i)) & 0xFFFF for r in ext_rows for i in range(2)]
    fetch = Unit.FETCH.value | pack_fields(fetch_desc_layout(16), {"ext_addr": 8, "words": 12, "row_base": 2}) << 2
    ap = AccelProgram(P, 16, dict(DEPTHS), {"ext": [0] * 64}, {}, [], {}, 0, {}, {}, ext_weights=True)

    def session(drv, res):
        drv.write("ext", 0, ext_rows)
        got = drv.read("ext", 0, 32)
        drv.t.send([header(Op.WRITE, Mem.EXT, 1), 32, 5])
        refused = drv.t.recv(1)[0] >> 16 & 15
        drv.write("prog", 0, [fetch])
        drv.run(0, 1, RunKind.RAW)
        after = drv.wait_idle()
        return got, refused, drv.read("w", 2, 3), after

    got, refused, lines, after = run_session(ap, session, gaps=0.3, stall=0.3, seed=5,
                                             sdram_mhz=62.5 if memory == "sdram" else None)
    assert got == ext_rows and refused == Err.RANGE
    assert lines == [sum(w << (16 * i) for i, w in enumerate(words[8 + 4 * j:12 + 4 * j])) for j in range(3)]
    assert after["ext_words"] == 12 and after["w_writes"] == 3
    if memory == "model":
        assert after["fetch_busy"] == fetch_cycles(12) == 12 + 4 + 3
    else:
        assert after["fetch_busy"] > fetch_cycles(12), after["fetch_busy"]


def test_refused_empty_write_takes_no_command_word():
    # a refused WRITE of 0 rows, then two commands back to back (no gaps, so the next header is on
    # the stream the cycle the WRITE is refused): three status words, in order. The top used to
    # take that header as the WRITE's payload (found by the proof accel_rsp_transfers)
    def session(drv, res):
        drv.t.send([header(Op.WRITE, 4, 0), DEPTHS["lv"] + 1, header(Op.NOP, 0, 7), 0, header(Op.NOP, 0, 9), 0])
        return [(w >> 24, w >> 20 & 15, w >> 16 & 15, w & 0xFFFF) for w in drv.t.recv(3, timeout=60)]

    assert run_session(_small_program(), session) == [(0xA5, Op.WRITE, Err.RANGE, 0), (0xA5, Op.NOP, Err.OK, 7),
                                                      (0xA5, Op.NOP, Err.OK, 9)]


def test_misuse_busy_truncation_reset_and_the_template_guard():
    """Start while busy and writes while busy are refused; a truncated load ends with an error and
    touches no other row; a reset in the middle of a run keeps every memory; a search run never
    writes a template slot (rows below the guard)."""
    n = 400
    prog = [_vec_neuron_word(n, 0, 0), _mb_word(0), _mb_word(8)]
    t_rows = [(i + 1) * 0x1001 for i in range(16)]
    state = {}

    def session(drv, res):
        drv.write("prog", 0, prog)
        drv.write("st", 0, [i * 0x10001 for i in range(n)])
        drv.write("tm", 0, t_rows)
        drv.guard(8)
        drv.run(0, 1, RunKind.RAW)
        with pytest.raises(AccelError, match="busy"):
            drv.run(0, 1, RunKind.RAW)
        with pytest.raises(AccelError, match="busy"):
            drv.write("tm", 0, [0])
        assert drv.status()["busy"]
        st = drv.wait_idle()
        assert st["descriptors"] == 1
        # truncated load: header for 4 rows of tm, only 1 row sent
        drv.t.send([header(Op.WRITE, 6, 4), 12, 0xAAAAAAAA, 0xBBBBBBBB, 0xCCCCCCCC])
        state["truncated"] = drv.t.recv(1)[0] >> 16 & 15
        assert drv.read("tm", 0, 12) == t_rows[:12]                # rows before: intact
        assert drv.read("tm", 13, 3) == t_rows[13:16]              # rows after the one completed: intact
        # a template run, then a search run whose memory build targets a template slot (row 0)
        drv.run(2, 1, RunKind.TEMPLATE)
        drv.wait_idle()
        drv.run(1, 1, RunKind.SEARCH)
        st = drv.wait_idle()
        state["guard_blocked"] = st["guard_blocked"]
        state["tm_after_search"] = drv.read("tm", 0, 8)
        # reset in the middle of a long run (held for 3 cycles once the RUN is acknowledged)
        drv.run(0, 1, RunKind.RAW)
        state["abort_left"] = 3
        while state["abort_left"]:
            time.sleep(0.01)
        state["after_reset"] = drv.wait_idle()
        state["tm_after_reset"] = drv.read("tm", 0, 16)

    def abort(cycle):
        if state.get("abort_left"):
            state["abort_left"] -= 1
            return True
        return False

    run_session(_small_program(), session, abort_at=abort, timeout=64)
    assert state["truncated"] == Err.TRUNCATED
    assert state["guard_blocked"] == 8                                # all eight lines of the build refused
    assert state["tm_after_search"][:8] == t_rows[:8]
    assert not state["after_reset"]["busy"]
    tm = state["tm_after_reset"]
    assert tm[:8] == t_rows[:8], "template slots changed by a reset in the middle of a run"


# ---------------------------------------------------------------------------------------------
# a reduced SpikeTrack network end to end

def _reduced_network():
    from spiketrack.sim.reduced import reduced_network

    return reduced_network()


def test_reduced_network_template_and_search_frame_on_the_accelerator():
    """The whole accelerator (Verilator; amaranth.sim runs the same RTL in the smaller tests of
    this file and the whole network in `make bench`'s slow tests): a template pass and a search
    frame of a reduced edge-t3; the template memories and the three head maps equal the golden
    run, and each pass's cycle counter equals the cycle model (units' models + controller
    overheads)."""
    from test_quant_golden_model import _pixels

    from spiketrack.sim.accel_sim import simulate

    net, cfg = _reduced_network()
    ap = lower_to_accel(net, 8)
    kinds = {n.kind for n in ap.nodes}
    assert kinds == {"stem", "spike_conv", "retrieval", "memory_build", "neuron", "add", "avg_pool", "mean_fusion"}
    zp, xp = _pixels(cfg, 5)
    r = simulate(net, ap, [(zp, xp)], check="outputs", backdoor=True, sim="verilator")
    assert r["sim"] == "verilator"
    assert r["checks"] == 6 and r["mismatches"] == 0 and r["first_mismatch"] is None
    assert r["outputs_checked"] == 6 and r["layers_checked"] == 0   # results compared, no layer's own output
    assert r["cycle_model_exact"] and r["first_cycle_difference"] is None
    assert r["layers_total"] == sum(len(n.layers) for n in ap.nodes)
    t, s = r["per_pass"]["template_update"], r["per_pass"]["search_frame_0"]
    assert t["counters"]["descriptors"] == ap.programs["template_update"][1]
    assert s["counters"]["descriptors"] == ap.programs["search_frame"][1]
    assert s["counters"]["guard_blocked"] == 0 and s["counters"]["st_writes"] > 0
    # the headline figures: cycles per frame and the simulator's wall and CPU time per pass
    from spiketrack.sim.cli_simulate import summarise

    head = summarise(r, 1)
    assert head["cycles_per_frame"] == s["cycles"] == s["predicted_cycles"]
    assert head["cpu_seconds_per_frame"] == round(s["cpu_s"], 2) and s["cpu_s"] > 0 and t["cpu_s"] > 0
    # every memory access counter equals the model's prediction (what the energy figures use)
    from spiketrack.sim.accel_sim import golden_passes

    graph, passes = golden_passes(net, [(zp, xp)])
    for (pname, env, _), got in zip(passes, (t, s)):
        predicted = ap.predicted_counters(graph, pname, env)
        assert {k: got["counters"][k] for k in predicted} == predicted, pname
        assert predicted["w_reads"] > 0 and predicted["lv_reads"] > 0 and predicted["tm_writes"] > 0


def test_outputs_overwrite_the_operand_they_read_last_in_place(monkeypatch):
    """A residual conv or an add that is its operand's last reader writes its output over that
    operand (``compiler/accel._in_place_operand``); an operand read again later keeps its rows.
    The RTL runs of the reduced network (above and below) check the overwrites are safe."""
    import spiketrack.compiler.accel as accel
    from spiketrack.compiler.fuse import fuse
    from spiketrack.compiler.hwops import HwNode
    from spiketrack.compiler.schedule import Program, programs

    net, _ = _reduced_network()
    graph = fuse(net)[0]
    ap = lower_to_accel(net, 8, graph=graph)
    port2 = {(n.program, n.desc["b_base"]) for n in ap.nodes if n.kind == "add"}
    kinds = set()
    for prog in programs(graph).values():
        for i, hw in enumerate(prog.nodes):
            src = accel._in_place_operand(graph.net, hw, graph.net.types)
            if src is None:
                continue
            readers = [j for j, n in enumerate(prog.nodes) if src in n.inputs]
            shared = ap.placement[src] == accel.Placement("st", ap.placement[hw.output].base, ap.placement[src].t_stride)
            # (a buffer read through the second read port, an add's b, is placed with the others
            # of its kind: an operand of the other kind stays apart)
            region = [(prog.name, ap.placement[t].base) in port2 for t in (src, hw.output)]
            if max(readers) == i and src not in prog.outputs and region[0] == region[1]:
                assert shared, (hw.name, src)
                kinds.add(hw.kind)
            else:
                assert not shared, (hw.name, src)
    assert kinds == {"spike_conv", "add"}
    # the same program with one more reader of the first such operand at its end: it keeps its rows
    search = programs(graph)["search_frame"]
    i, hw = next((i, n) for i, n in enumerate(search.nodes) if accel._in_place_operand(graph.net, n, graph.net.types))
    src = accel._in_place_operand(graph.net, hw, graph.net.types)
    longer = Program(search.name, search.nodes + [HwNode(hw.kind, hw.layers, hw.inputs)], search.inputs, search.outputs)
    placed = {k: v for k, v in ap.placement.items() if k not in {n.output for n in search.nodes}}
    accel._place_program(graph.net, graph, longer, graph.net.types, placed, dict.fromkeys(ap.depths, 0), ap.guard, 8)
    assert placed[src].mem == placed[hw.output].mem == "st" and placed[src].base != placed[hw.output].base
    assert ap.placement[src].base == ap.placement[hw.output].base
    monkeypatch.setattr(accel, "_in_place_operand", lambda *a: None)
    apart = lower_to_accel(net, 8, graph=graph)
    assert ap.depths["st"] < apart.depths["st"] and ap.depths["lv"] == apart.depths["lv"]


@pytest.mark.parametrize("which", ["reduced", "shipped"])
def test_no_buffer_is_overwritten_while_it_is_still_read(which):
    """The placement against a row-level model of the memories: every node's inputs still hold
    what their producers (or the host) wrote when the node reads them, and the programs' outputs
    at the end. The shipped default (64,512 ``lv`` rows) too, which the RTL tests run only in
    ``make bench``."""
    import numpy as np

    import spiketrack.compiler.accel as accel
    from spiketrack.compiler.accel import _size
    from spiketrack.compiler.cli_compile import _artifact
    from spiketrack.compiler.fuse import fuse
    from spiketrack.compiler.hwops import REGISTRY
    from spiketrack.compiler.schedule import programs

    net = _reduced_network()[0] if which == "reduced" else _artifact(None)
    graph = fuse(net)[0]
    ap = lower_to_accel(net, 8, graph=graph, ext_weights=which == "shipped")
    types, ids = graph.net.types, {}
    checked = 0
    for prog in programs(graph).values():
        views = {n.output: graph.net.layer(n.layers[0]) for n in prog.nodes if REGISTRY[n.kind].view}
        part = {s: out for out, lay in views.items() if lay.op == "concat_time" for s in lay.inputs}

        def root(x):
            if x in part:
                return root(part[x])
            if x in views and views[x].op != "concat_time":
                return root(views[x].inputs[0])
            return x

        def span(x):   # (memory, first row, rows) of the buffer x lives in (a banded crop: one band's rows)
            r, pl = root(x), ap.placement[root(x)]
            rows = types[r].shape[0] * pl.t_stride if r in ap.bands else _size(types[r].shape, types[r].kind, 8)[0]
            return pl.mem, pl.base, rows

        owner = {m: np.full(ap.depths[m], -1) for m in ("lv", "st", "tm")}

        def write(x):
            pl = ap.placement[x]
            rows = types[x].shape[0] * pl.t_stride if pl.t_stride else span(x)[2]
            owner[pl.mem][pl.base:pl.base + rows] = ids.setdefault(root(x), len(ids))

        def holds(x):
            m, b, n = span(x)
            return bool((owner[m][b:b + n] == ids.get(root(x), -2)).all())

        for x in prog.inputs:   # the host's crops; in a search frame also the template slots
            write(x)
        for n in prog.nodes:
            if REGISTRY[n.kind].view:
                continue
            for x in n.inputs:
                assert holds(x), (prog.name, n.name, x)
                checked += 1
            write(n.output)
            # the output lands on none of the node's inputs, but the operand it overwrites in place
            over = accel._in_place_operand(graph.net, n, types)
            shared = over is not None and span(over) == span(n.output)
            assert all(holds(x) for x in n.inputs if not (shared and root(x) == root(over))), (prog.name, n.name)
        assert all(holds(x) for x in prog.outputs), prog.name
        # a search frame leaves the template slots as it found them (the next frame reads them)
        assert all(holds(x) for x in prog.inputs if types[x].kind == "memory"), prog.name
    assert checked > (200 if which == "shipped" else 50)
    assert (which == "shipped") == bool(ap.bands)   # the shipped template crops are banded, the reduced ones not


def test_second_read_port_operands_sit_in_the_rows_it_reaches():
    """Every operand read through the second read port of ``lv`` / ``st`` (memory build ``V``, the
    add's ``b``) lies in rows ``0 .. second_port_rows - 1`` (the other buffers fit around them); on the
    shipped-size memories (several banks) only the banks of those rows count twice in the estimate."""
    from spiketrack.bitstreams.accel_build import banked_blocks, ebr_blocks, estimate
    from spiketrack.compiler.fuse import fuse
    from spiketrack.hw.banked_memory import BANK_ROWS

    net, _ = _reduced_network()
    graph = fuse(net)[0]
    ap = lower_to_accel(net, 8, graph=graph)
    hw_of = {n.name: n for n in graph.nodes}
    seen = set()
    for n in ap.nodes:
        hw = hw_of[n.name]
        lay = graph.net.layer(hw.layers[0])
        if n.kind == "memory_build":
            mem, base, rows = "lv", n.desc["v_base"], n.desc["T"] * n.desc["v_n"] * n.desc["n"]
        elif n.kind == "add":
            b = next(x for x in lay.inputs if ap.placement[x].base == n.desc["b_base"])
            mem, base = "st", n.desc["b_base"]
            rows = graph.net.types[b].shape[0] * ap.placement[b].t_stride or ap.placement[b].t_stride
        else:
            continue
        seen.add(n.kind)
        assert 0 <= base and base + rows <= ap.second_port_rows[mem] < ap.depths[mem], n.name
    assert seen == {"memory_build", "add"}
    # the estimate stores only the reached rows twice
    widths = {"lv": 24, "st": 128}
    est = estimate(ap.depths, 8, "ecp5", second_port_rows=ap.second_port_rows)["ebr_by_memory"]
    for m in ("lv", "st"):   # (memories of one bank here)
        assert ap.depths[m] <= BANK_ROWS
        assert est[m] == ebr_blocks(widths[m], ap.depths[m], "ecp5") + ebr_blocks(widths[m], ap.depths[m], "ecp5")
    # the shipped default (memories of many banks): a few banks count twice
    from spiketrack.compiler.cli_compile import _artifact

    big = lower_to_accel(_artifact(None), 8, ext_weights=True)
    for m in ("lv", "st"):
        assert big.depths[m] >= 3 * BANK_ROWS and 0 < big.second_port_rows[m] <= big.depths[m] // 4
    twice = estimate(big.depths, 8, "ecp5", sdram=True)
    once = estimate(big.depths, 8, "ecp5", sdram=True, second_port_rows=big.second_port_rows)
    assert twice["ebr"] - once["ebr"] == 60   # lv 72 → 42, st 90 → 60
    for m in ("lv", "st"):
        banks = -(-big.second_port_rows[m] // BANK_ROWS)
        assert once["ebr_by_memory"][m] == (banked_blocks(widths[m], big.depths[m], "ecp5")
                                            + banked_blocks(widths[m], banks * BANK_ROWS, "ecp5"))


@pytest.fixture(scope="module")
def ext_weights_narrow_tables():
    """The reduced network with positional tables of either sign up to ±300 (its own are 0),
    compiled with its weights in external memory (``lower_to_accel(ext_weights=True)``,
    ``Accelerator(ext="model")``): template crops band by band (``stem_band_rows=3``) and a weight
    cache of twice one chunk's lines, the least it may be. One Verilator run of a template pass and
    a search frame (about 100 s with its compile, against about 660 s under amaranth.sim; the fetch
    unit and the external-memory model are the same RTL under either) serves the two tests below,
    which share its build."""
    import numpy as np
    from test_quant_golden_model import _pixels

    from spiketrack.sim.accel_cocotb import SIM_BANK_ROWS
    from spiketrack.sim.accel_sim import simulate

    net, cfg = _reduced_network()
    tables = [l for l in net.layers if l.op == "add_const"]
    assert tables and all(not np.asarray(l.params["value"]).any() for l in tables)
    rng = np.random.default_rng(3)
    for l in tables:
        v = np.asarray(l.params["value"])
        l.params["value"] = rng.integers(-300, 301, size=v.shape).astype(v.dtype)
    on_chip = lower_to_accel(net, 8)
    need = max(n.desc["w_chunk"] for n in on_chip.nodes if n.unit == "conv_engine" and not n.desc["tmem"])
    options = {"ext_weights": True, "stem_band_rows": 3, "cache_rows": 2 * need}
    ap = lower_to_accel(net, 8, **options)
    pixels = _pixels(cfg, 5)
    # one bank per memory, as `spiketrack simulate` builds the shipped default (the reduced network's
    # other Verilator runs use SHORT_RUN_BANK_ROWS-row banks)
    report = simulate(net, ap, [pixels], check="outputs", backdoor=True, sim="verilator",
                      bank_rows=SIM_BANK_ROWS["verilator"])
    return {"net": net, "on_chip": on_chip, "need": need, "options": options, "ap": ap, "pixels": pixels,
            "report": report}


def test_reduced_network_with_weights_in_external_memory(ext_weights_narrow_tables):
    """External weights: the weight lines live in the external-memory model, ``w`` is a cache,
    every convolution runs as cache fills (FETCH + conv descriptors over a chunk range). The template
    crops go band by band (bands of 3, 3 and 2 stem output rows, one run each, the host writing each
    band before its run). The template pass and a search frame equal the golden run, each run's
    cycles equal the model, and every counter (the fetch unit's busy cycles, external words, cache
    writes included) equals its prediction."""
    from spiketrack.hw.banked_memory import BANK_ROWS
    from spiketrack.sim.accel_sim import golden_passes

    f = ext_weights_narrow_tables
    net, on_chip, ap, r = f["net"], f["on_chip"], f["ap"], f["report"]
    # the default cache takes a whole bank (no conv of this network needs more than one fill);
    # twice one chunk's lines, the least it may be, splits convolutions into several fills
    assert lower_to_accel(net, 8, ext_weights=True).depths["w"] == BANK_ROWS > 2 * f["need"]
    bd = ap.bands["template_pixels"]
    assert (bd.n, bd.out_rows, bd.in_rows, bd.width) == (3, 3, 11, 22)
    runs = ap.runs("template_update")
    writes = [w for r_ in runs for w in r_.writes]   # each band, then each streamed table, once, in program order
    assert writes[:3] == [("band", "template_pixels", b) for b in range(3)]
    assert [w[1] for w in writes[3:]] == list(ap.streamed_tables) and len(writes) == 3 + 5 == len(runs) + 1
    assert len(ap.runs("search_frame")) == 1
    assert ap.depths["lv"] < lower_to_accel(net, 8, ext_weights=True, stem_band_rows=None).depths["lv"]
    # the external image is the on-chip weight lines, four 16-bit words a line, low word first
    assert len(ap.images["ext"]) == 4 * len(on_chip.images["w"])
    assert all(sum(w << (16 * i) for i, w in enumerate(ap.images["ext"][4 * j:4 * j + 4])) == line
               for j, line in enumerate(on_chip.images["w"]))
    assert ap.images["w"] == [] and ap.depths["w"] == 2 * max(n.desc["w_chunk"] for n in ap.nodes if n.fills)
    # what a host loads into memory EXT (a board's SDRAM): the same words, two a row
    ext_rows = dict(ap.host_images())["ext"]
    assert [r_ >> (16 * i) & 0xFFFF for r_ in ext_rows for i in range(2)][:len(ap.images["ext"])] == ap.images["ext"]
    assert ap.depths["w"] < on_chip.depths["w"] // 20
    split = [n for n in ap.nodes if len(n.fills) > 1]
    assert split, "some layer needs more than one cache fill"
    assert r["sim"] == "verilator" and r["bank_rows"] == 1 << 16
    assert r["checks"] == 6 and r["mismatches"] == 0
    assert r["cycle_model_exact"] and r["first_cycle_difference"] is None and r["runs"] == len(runs) + 1
    graph, passes = golden_passes(net, [f["pixels"]])
    for (pname, env, _), got in zip(passes, r["per_pass"].values()):
        predicted = ap.predicted_counters(graph, pname, env)
        assert {k: got["counters"][k] for k in predicted} == predicted, pname
        assert predicted["ext_words"] == 4 * predicted["w_writes"] > 0
        assert got["counters"]["descriptors"] == ap.programs[pname][1] > on_chip.programs[pname][1]


def test_banded_template_crops_cover_the_padded_image_once():
    """A banded crop (``lower_to_accel(stem_band_rows=...)``): the rows the host writes for each band
    are that band's rows of the zero-padded image, one timestep every ``t_stride`` rows; the bands'
    descriptors write every stem output row exactly once, as convolutions without padding; their
    weight reads and additions (the padding pixels add nothing) sum to the whole stem's, their
    cycles to more (each padding word read costs a cycle). Bad band indices and band sizes are
    refused. On the shipped default the crops shrink from 49,152 ``lv`` rows to 3 × 21 × 134, and the
    estimate from 246 block RAMs to 192 (165 with the template pass's tables streamed)."""
    import torch.nn.functional as F

    from spiketrack.compiler.fuse import CompileError

    net, cfg = _reduced_network()
    ap = lower_to_accel(net, 8, stem_band_rows=3)
    bd = ap.bands["template_pixels"]
    node = next(n for n in ap.nodes if n.name == bd.node)
    pl = ap.placement["template_pixels"]
    T, C, H, W = net.types["template_pixels"].shape
    x = torch.randint(0, 256, (T, C, H, W))
    padded = F.pad(x, (bd.pad,) * 4)
    seen = []
    for b, d in enumerate(node.bands):
        rows = ap.input_rows("template_pixels", x, b)
        y0, n_in = bd.rows_of(b)
        assert d["pad"] == 0 and d["h"] == n_in and d["w"] == bd.width and d["in_t"] == pl.t_stride
        for t in range(T):
            got = rows[t * pl.t_stride:t * pl.t_stride + n_in * bd.width]
            want = padded[t, :, y0:y0 + n_in]
            assert [[(r >> (8 * c)) & 255 for c in range(3)] for r in got] == \
                want.permute(1, 2, 0).reshape(-1, 3).tolist(), (b, t)
        first = (d["out_base"] - node.desc["out_base"]) // (d["wo"] * d["chunks"])
        seen += range(first, first + d["ho"])
        assert d["o_t"] == node.desc["o_t"] and d["wo"] == node.desc["wo"]
    assert seen == list(range(node.desc["ho"]))
    from spiketrack.compiler.fuse import fuse
    from spiketrack.compiler.schedule import programs, run_program

    graph = fuse(net)[0]
    env = run_program(graph, programs(graph)["template_update"], {"template_pixels": x[:, None]})
    parts = [ap._op_cost(graph, node, env, None, b) for b in range(bd.n)]
    whole = ap._op_cost(graph, node, env)
    assert sum(c.adds for c in parts) == whole.adds > 0
    assert sum(c.reads["weights"] for c in parts) == whole.reads["weights"]
    assert sum(c.cycles for c in parts) > whole.cycles
    with pytest.raises(ValueError, match="band 3 of 3"):
        ap.input_rows("template_pixels", x, 3)
    with pytest.raises(ValueError, match="written band by band"):
        ap.input_rows("template_pixels", x)
    with pytest.raises(CompileError, match="stem_band_rows must be at least 1"):
        lower_to_accel(net, 8, stem_band_rows=0)
    assert not lower_to_accel(net, 8).bands   # 8 stem output rows: one run, the crop stored whole
    # the shipped default: the crops take one band's rows, the estimate drops by lv's share
    from spiketrack.bitstreams.accel_build import estimate
    from spiketrack.compiler.cli_compile import _artifact

    big = _artifact(None)
    whole, banded, streamed = (lower_to_accel(big, 8, ext_weights=True, stem_band_rows=r, stream_template_tables=st)
                               for r, st in ((None, False), (8, False), (8, True)))
    assert whole.depths["lv"] == 61440 and banded.depths["lv"] == 24576
    assert banded.placement["template_pixels"].t_stride == 21 * 134
    est = [estimate(a.depths, 8, "ecp5", 16, sdram=True, second_port_rows=a.second_port_rows, cst_bits=a.cst_bits)
           for a in (whole, banded, streamed)]
    assert [e["ebr"] for e in est] == [246, 192, 165]


def test_external_weights_refuse_a_cache_smaller_than_a_chunk():
    from spiketrack.compiler.fuse import CompileError

    net, _ = _reduced_network()
    with pytest.raises(CompileError, match="weight lines, more than half of the 64-row weight cache"):
        lower_to_accel(net, 8, ext_weights=True, cache_rows=64)


def test_positional_tables_stored_narrow_on_the_accelerator(ext_weights_narrow_tables):
    """Positional tables of either sign up to ±300: the compiler stores ``cst`` at 10 bits per lane
    (``cst_bits``), and the template pass and a search frame still equal the golden run with exact
    cycles (the run of :func:`ext_weights_narrow_tables`: the host's writes of the streamed tables go
    over the command stream)."""
    f = ext_weights_narrow_tables
    net, ap, r = f["net"], f["ap"], f["report"]
    assert ap.cst_bits == 10 and ap.accel_kwargs()["cst_bits"] == 10
    # the template pass's tables are streamed: written by the host at cst row 0 before their runs
    resident = lower_to_accel(net, 8, stream_template_tables=False, **f["options"])
    assert len(ap.streamed_tables) == 5
    sizes = [len(r_) for r_ in ap.streamed_tables.values()]   # one table's rows, then the search pass's tables
    assert ap.depths["cst"] == len(ap.images["cst"]) == max(sizes) + resident.depths["cst"] - sum(sizes)
    assert ap.depths["cst"] < resident.depths["cst"] and any(any(r_) for r_ in ap.streamed_tables.values())
    assert r["mismatches"] == 0 and r["first_mismatch"] is None, r["first_mismatch"]
    assert r["cycle_model_exact"] and r["per_pass"]["search_frame_0"]["counters"]["cst_reads"] > 0


def test_paper_ops_on_the_accelerator():
    """The paper variants' ops on the whole accelerator (amaranth.sim, every op read back alone):
    the retrieval saturating R at shift 0 on the conv engine, its §IS-12 product, bilinear
    upsampling by 4 and 2 on the vector unit; equal to the golden run, cycles and every memory
    counter equal to the model."""
    from spiketrack.compiler.fuse import fuse
    from spiketrack.compiler.schedule import programs, run_program
    from spiketrack.sim.accel_sim import simulate
    from spiketrack.sim.reduced import paper_ops_network

    net, inputs = paper_ops_network()
    ap = lower_to_accel(net, 8)
    assert [n.kind for n in ap.nodes] == ["memory_build", "retrieval", "mul_const", "neuron", "upsample_bilinear", "add",
                                          "upsample_bilinear"]
    r = simulate(net, ap, inputs, check="layers", backdoor=True)
    assert r["mismatches"] == 0 and r["first_mismatch"] is None and r["checks"] >= len(ap.nodes)
    assert r["cycle_model_exact"] and r["first_cycle_difference"] is None
    graph = fuse(net)[0]
    env = run_program(graph, programs(graph)["run"], {n: x[:, :1] for n, x in inputs.items()})
    predicted = ap.predicted_counters(graph, "run", env)
    got = r["per_pass"]["run"]["counters"]
    per_run = ("prog_reads", "run_cycles")   # each op ran alone (check="layers"): one program end per run
    assert {k: got[k] for k in predicted if k not in per_run} == {k: v for k, v in predicted.items() if k not in per_run}
    assert got["st_reads"] > 0 and got["tm_reads"] > 0


def test_no_multiplier_in_the_accelerator_or_its_link():
    """Every ``*`` in the generated Verilog multiplies by a power of two (a shift after synthesis).
    A product by another constant became MULT18X18D blocks on ECP5 (the mean fusion's 3·, 5·, 7·r_y)."""
    import re

    from amaranth.back import verilog

    from spiketrack.hw.accel.board import LinkedAccelerator

    v = verilog.convert(LinkedAccelerator(8), name="linked")
    products = re.findall(r"=\s*(\S+)\s*\*\s*(?:\(\*[^*]*\*\)\s*)?([^;\s]+);", v)
    assert products, "the pattern no longer matches Amaranth's output"

    def power_of_two(tok):
        m = re.fullmatch(r"\d+'([hdb])([0-9a-fA-F_]+)", tok)
        if not m:
            return False
        n = int(m.group(2).replace("_", ""), {"h": 16, "d": 10, "b": 2}[m.group(1)])
        return n > 0 and n & (n - 1) == 0

    bad = [p for p in products if not (power_of_two(p[0]) or power_of_two(p[1]))]
    assert not bad, f"multipliers in the datapath: {bad[:5]}"


@pytest.mark.slow   # amaranth.sim only (the SDRAM chip model): about 730 s; `make bench`
def test_reduced_network_with_weights_in_the_sdram():
    """The same external-weights program served by the ULX3S's SDRAM controller and the timing-
    checking chip model (62.5 MHz; the image preloaded into the chip model): its reads take longer
    than the fixed-latency model's, so the fills overlap the convolutions differently and some conv
    descriptors wait for their fill; the template memories and head maps still equal the golden run,
    the same words are fetched, and no fetch is shorter than the model's."""
    from test_quant_golden_model import _pixels

    from spiketrack.sim.accel_sim import golden_passes, simulate

    net, cfg = _reduced_network()
    ap = lower_to_accel(net, 8, ext_weights=True)
    zp, xp = _pixels(cfg, 5)
    r = simulate(net, ap, [(zp, xp)], check="outputs", backdoor=True, sdram_mhz=62.5)
    assert r["checks"] == 6 and r["mismatches"] == 0 and r["first_mismatch"] is None
    graph, passes = golden_passes(net, [(zp, xp)])
    for (pname, env, _), got in zip(passes, r["per_pass"].values()):
        predicted = ap.predicted_counters(graph, pname, env)
        c = got["counters"]
        assert {k: c[k] for k in ("ext_words", "w_writes", "w_reads", "descriptors")} == \
            {k: predicted[k] for k in ("ext_words", "w_writes", "w_reads", "descriptors")}, pname
        assert c["fetch_busy"] > predicted["fetch_busy"] and got["cycles"] > predicted["run_cycles"], pname
