"""The network compiler: fusion into hardware ops, programs equal to the golden network, cycle
model arithmetic, weight packing, memory plan and the compiled artifact."""

import json

import numpy as np
import pytest
import torch

from spiketrack.cli import main
from spiketrack.compiler.build import compile_network, load_compiled, shortfall, write_compiled
from spiketrack.compiler.fuse import CompileError, fuse
from spiketrack.compiler.hwops import REGISTRY, HwNode
from spiketrack.compiler.memplan import BOARD_MEMORY, EXTERNAL_MEMORY, ExternalMemory, ebr_count, plan_memory
from spiketrack.compiler.schedule import program_cost, programs, run_program
from spiketrack.hw.engine_cycles import CONV_OVERHEAD, GROUP_MIN, Engine, pack_conv
from spiketrack.quant.executor import run_network
from spiketrack.quant.ir import IntegerNetwork, Layer, TensorType, save_artifact
from spiketrack.quant.lower import lower
from spiketrack.quant.qat import QuantFormat, quantize_model

from test_quant_golden_model import _pixels, _trained_like


@pytest.fixture(scope="module")
def small_q():
    """edge-t3 at 64x64 crops: every op kind of the shipped network, a quarter of the work.
    Returns (integer network, config, quantisation-aware model)."""
    from spiketrack.model import build_model
    from spiketrack.model.configs import get_config

    cfg = get_config("edge-t3", search_size=64, template_size=64)
    torch.manual_seed(0)
    model = _trained_like("edge-t3")
    small = build_model(cfg).eval()
    small.load_state_dict({k: v for k, v in model.state_dict().items() if k in small.state_dict()
                           and small.state_dict()[k].shape == v.shape}, strict=False)
    # int4 weights (§IS-3): the int8 weights of edge alone exceed an ECP5-85F's block RAM
    qmodel = quantize_model(small, QuantFormat(8, 16, 4))
    return lower(qmodel), cfg, qmodel


@pytest.fixture(scope="module")
def small_net(small_q):
    return small_q[:2]


def test_every_layer_is_placed_and_programs_equal_the_golden_network(small_net):
    net, cfg = small_net
    graph, records = fuse(net)
    assert not [n for n in graph.nodes if n.kind.startswith("ir:")]
    assert sorted(l for n in graph.nodes for l in n.layers) == sorted(l.name for l in net.layers)
    kinds = {n.kind for n in graph.nodes}
    assert {"stem", "spike_conv", "retrieval", "memory_build", "neuron", "view", "mean_fusion"} <= kinds
    progs = programs(graph)
    zp, xp = _pixels(cfg, 5)
    ref = run_network(net, {"template_pixels": zp, "search_pixels": xp}, dump=True).tensors
    env = run_program(graph, progs["template_update"], {"template_pixels": zp})
    mems = {m: env[m] for m in progs["template_update"].outputs}
    env.update(run_program(graph, progs["search_frame"], {"search_pixels": xp, **mems}))
    assert set(env) - {"template_pixels", "search_pixels"} == set(ref)
    for name, t in ref.items():
        assert torch.equal(env[name], t), name
    # data-dependent cycles never exceed the dense (worst-case) count, and sparsity saves cycles
    e = Engine(8)
    dense, _ = program_cost(graph, progs["search_frame"], e)
    real, rows = program_cost(graph, progs["search_frame"], e, env)
    assert 0 < real.cycles < dense.cycles
    assert sum(r["cycles"] for r in rows) == real.cycles


def test_an_op_without_a_hardware_unit_is_refused_by_name():
    t = TensorType((1, 4, 4, 4), "stream", 16, True, 8)
    net = IntegerNetwork([Layer("q", "requant", ["x"], {"shift": 1, "bits": 16})], ["x"], ["q"], {},
                         {"x": t})
    with pytest.raises(CompileError, match="cannot be placed.*'q' \\(op 'requant'\\)"):
        fuse(net)


def test_retrieval_products_are_saturated_exactly_and_placed():
    """The paper variants' ops (sim/reduced.paper_ops_network): the retrieval's R is saturated to a
    16-bit stream before its §IS-12 product (compiler/fuse.saturate_retrieval_products), which
    changes no output even where R exceeds the stream (checked against the original network), and
    every layer is placed: the product and both bilinear upsamplings on the vector unit."""
    from spiketrack.sim.reduced import paper_ops_network

    net, inputs = paper_ops_network()
    graph, records = fuse(net)
    assert {r.name: r.changes for r in records}["saturate_retrieval_products"] == 1
    assert [(n.kind, n.layers) for n in graph.nodes if n.kind in ("retrieval", "mul_const", "upsample_bilinear")] == \
        [("retrieval", ["acc", "acc.sat"]), ("mul_const", ["scaled", "retrieved"]), ("upsample_bilinear", ["up4"]),
         ("upsample_bilinear", ["up2"])]
    ref = run_network(net, inputs, dump=True).tensors
    env = run_program(graph, programs(graph)["run"], {k: v[:, :1] for k, v in inputs.items()})
    assert int((ref["acc"] > (1 << 15) - 1).sum()) > 0 and int(env["acc.sat"].max()) == (1 << 15) - 1
    for name in net.outputs:
        assert torch.equal(env[name], ref[name]), name
    assert graph.net is not net and fuse(graph.net)[0].net is graph.net   # rewritten once, not again


@pytest.mark.parametrize("change, op", [({"scaled": {"frac": 12}}, "mul_const"),      # scale 209·2**-12 < 1/4
                                        ({"up2": {"factor": 8}}, "upsample_bilinear")])
def test_paper_ops_the_vector_unit_cannot_run_are_refused_by_name(change, op):
    """A product whose saturation would change outputs is not rewritten (its retrieval and product
    stay unplaced), and bilinear upsampling by 8 has no read sequence: refused, named."""
    from spiketrack.sim.reduced import paper_ops_network

    net, _ = paper_ops_network()
    layers = [Layer(l.name, l.op, l.inputs, {**l.attrs, **change.get(l.name, {})}, l.params) for l in net.layers]
    if "scaled" in change:   # keep the neuron's input at f_m = 8
        layers[3].attrs["shift"] += 3
    bad = IntegerNetwork(layers, net.inputs, net.outputs, net.meta, net.input_types)
    with pytest.raises(CompileError, match=f"cannot be placed.*unplaced ops: .*{op}"):
        fuse(bad)


def _conv_node(k, cin, cout, groups=1, padding=0, T=1, hw=4):
    w = np.ones((cout, cin // groups, k, k), np.int8)
    conv = Layer("c", "conv", ["x"], {"stride": 1, "padding": padding, "groups": groups, "acc_bits": 16,
                                      "weight_bits": 8, "acc_exp": [10] * cout}, {"weight": w, "bias": np.zeros(cout, np.int32)})
    q = Layer("q", "requant", ["c"], {"shift": 2, "bits": 16})
    net = IntegerNetwork([conv, q], ["x"], ["q"], {}, {"x": TensorType((T, cin, hw, hw), "levels", 3, False, 2)})
    return net, HwNode("spike_conv", ["c", "q"], ["x"])


def test_conv_cycle_model_by_hand():
    P = 8
    net, node = _conv_node(1, 16, 8)
    types = net.types
    zeros = {"x": torch.zeros(1, 1, 16, 4, 4, dtype=torch.int64)}
    # 1x1, 16 channels = 2 words per position, all zero: one cycle per word read, but an output word
    # takes at least GROUP_MIN cycles (the NI-LIF spacing) except the op's first
    K = GROUP_MIN
    assert REGISTRY["spike_conv"].cost(node, net, types, Engine(P), zeros).cycles == 2 + 15 * K + CONV_OVERHEAD
    x = torch.zeros(1, 1, 16, 4, 4, dtype=torch.int64)
    x[0, 0, 0:3, 1, 1] = 2   # three non-zero levels in word 0 of one position: 3 cycles instead of 1
    x[0, 0, 9, 2, 2] = 4     # one in word 1 of another: 1 cycle (as when zero)
    x[0, 0, 3:7, 0, 0] = 1   # four in the first position's word 0: 4 + 1 cycles
    c = REGISTRY["spike_conv"].cost(node, net, types, Engine(P), {"x": x})
    assert c.cycles == 5 + max(K, 3 + 1) + max(K, 2) + 13 * K + CONV_OVERHEAD
    assert c.reads["weights"] == 8 * P * 8 and c.adds == 8 * P
    # dense: every level non-zero: 16 cycles per position
    assert REGISTRY["spike_conv"].cost(node, net, types, Engine(P)).cycles == 16 * 16 + CONV_OVERHEAD
    # 3x3 pad 1 on 4x4: 36 valid taps per map (4 corners x4, 8 edges x6, 4 inner x9 = 16+48+36 = 100)
    net, node = _conv_node(3, 8, 8, padding=1)
    assert REGISTRY["spike_conv"].cost(node, net, net.types, Engine(P)).cycles == 100 * 8 + CONV_OVERHEAD
    # depthwise 16 channels, P = 8: two chunks, one cycle per valid tap
    net, node = _conv_node(3, 16, 16, groups=16, padding=1)
    assert REGISTRY["spike_conv"].cost(node, net, net.types, Engine(P)).cycles == 2 * 100 + CONV_OVERHEAD


def test_weight_lines_follow_the_engine_read_order():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (12, 5, 3, 3)).astype(np.int8)
    packed = pack_conv(Engine(8), w, np.arange(12), [1] * 12)
    lines = packed["weights"]
    assert lines.shape == (2 * 9 * 5, 8)  # 2 chunks x 9 taps x 5 input channels, 8 lanes
    for ch in range(2):
        for ci in range(5):
            for tap in range(9):
                row = lines[(ch * 9 + tap) * 5 + ci]
                for lane in range(8):
                    o = ch * 8 + lane
                    assert row[lane] == (w[o, ci, tap // 3, tap % 3] if o < 12 else 0)
    assert packed["tables"].tolist() == [[b, 1] for b in range(12)]


def test_block_ram_counts():
    ecp5 = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))
    assert ebr_count(36, 512, ecp5) == 1 and ebr_count(64, 512, ecp5) == 2
    assert ebr_count(1, 16385, ecp5) == 2 and ebr_count(10, 2048, ecp5) == 2
    assert ebr_count(0, 10, ecp5) == 0


def test_compile_report_artifact_and_tampering(small_net, tmp_path):
    net, _ = small_net
    res = compile_network(net, board="ulx3s-85f", lanes=8, calibration_frames=0)
    rep = res["report"]
    assert rep["fits"] and rep["memory"]["ebr_used"] <= rep["memory"]["ebr_total"] == 208
    assert rep["memory"]["membranes_bits"] == 0 and rep["ops_unplaced"] == []
    assert rep["predicted_cycles"] == rep["dense_cycles"]  # no calibration data: dense
    assert rep["fps_at_100mhz"] == round(100e6 / rep["predicted_cycles"]["search_frame"], 2)
    out = write_compiled(res, "x", tmp_path / "c")
    loaded = load_compiled(out, net)
    assert len(loaded["programs"]["search_frame"]) == len(res["programs"]["search_frame"].nodes)
    # tampered image
    p = out / "images.npz"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x55
    p.write_bytes(bytes(data))
    with pytest.raises(CompileError, match="SHA-256 does not match"):
        load_compiled(out)
    # old version and a program naming a layer the network lacks
    out = write_compiled(res, "x", tmp_path / "d")
    m = json.loads((out / "compiled.json").read_text())
    m["version"] = 0
    (out / "compiled.json").write_text(json.dumps(m))
    with pytest.raises(CompileError, match="version 0 is not supported"):
        load_compiled(out)
    m["version"] = 1
    m["programs"]["search_frame"][0]["layers"] = ["search/nope"]
    (out / "compiled.json").write_text(json.dumps(m))
    with pytest.raises(CompileError, match="names layer 'search/nope'"):
        load_compiled(out, net)


def test_compile_cli_refuses_a_network_that_does_not_fit(small_net, tmp_path, capsys):
    net, _ = small_net
    art = save_artifact(net, tmp_path / "art")
    rc = main(["compile", "--artifact", str(art), "--board", "icebreaker", "--calibration-frames", "0",
               "--out", str(tmp_path / "ice"), "--json"])
    out, err = capsys.readouterr()
    rep = json.loads(out)
    assert rc == 1 and rep["fits"] is False and rep["board"] == "icebreaker"
    assert "does not fit icebreaker" in err and "weights" in err and "short by" in err
    # not the network the shipped precision table was measured for: its precision, no AUC figures
    pr = rep["precision"]
    assert pr["weight_bits"] == rep["weight_bits"] and pr["matches"] is False and pr["auc"] is None
    assert "was measured for edge-t3-qat8.pt, not for this network" in pr["note"]
    rc = main(["compile", "--artifact", str(art), "--board", "ulx3s-85f", "--calibration-frames", "0",
               "--out", str(tmp_path / "ecp5"), "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["fits"] is True


def test_real_frame_nodes_on_the_rtl_equal_golden(small_net):
    """sim/network_verify: nodes of a real (64x64 edge-t3) template pass through the conv engine and
    the vector unit, inputs from the golden run; outputs equal, cycles equal the model."""
    from spiketrack.sim.network_verify import verify_network

    net, cfg = small_net
    zp, xp = _pixels(cfg, 5)
    r = verify_network(net, [(zp, xp)], max_nodes=8, max_node_cycles=2500)
    assert r["nodes_checked"] == 8 and r["layers_checked"] >= 8
    assert r["mismatches"] == 0 and r["first_mismatch"] is None and r["cycle_model_exact"]
    assert r["unchecked_nodes"]["memory_build"] == 9  # over the cycle budget: reported, never passed
    graph, _ = fuse(net)
    nodes = [n for p in programs(graph).values() for n in p.nodes if not REGISTRY[n.kind].view]
    assert sum(r["unchecked_nodes"].values()) + r["nodes_checked"] == len(nodes)
    assert r["layers_total"] == sum(len(n.layers) for n in nodes)


def test_one_real_node_of_every_kind_on_the_rtl(small_net):
    """verify --network with one node per kind: every RTL kind under 3,100 cycles (all but the
    stem at 64x64: tests/test_hw_conv_engine.py and the accelerator runs check it), the memory build
    included, equals the golden run with exact cycles."""
    from spiketrack.sim.network_verify import RTL_KINDS, verify_network

    net, cfg = small_net
    zp, xp = _pixels(cfg, 5)
    r = verify_network(net, [(zp, xp)], max_per_kind=1, max_node_cycles=3100)
    paper_only = {"upsample_bilinear", "mul_const"}   # the edge network has none (test_paper_ops_on_the_accelerator)
    assert set(r["checked_nodes"]) == set(RTL_KINDS) - {"stem"} - paper_only
    assert all(v == 1 for v in r["checked_nodes"].values())
    assert r["unchecked_nodes"]["stem"] == 2
    assert r["mismatches"] == 0 and r["first_mismatch"] is None and r["cycle_model_exact"]


# ---------------------------------------------------------------------------------------------
# memory plan: external memory placement, mixed weight precision


@pytest.fixture(scope="module")
def small_graph(small_net):
    graph, _ = fuse(small_net[0])
    return graph, programs(graph)


_ECP5_CONFIGS = BOARD_MEMORY["ulx3s-85f"][1]


def _test_board(monkeypatch, ebr, ext_bits=2 ** 30):
    """A board with ``ebr`` ECP5 block RAMs and ``ext_bits`` of external memory (0: none)."""
    monkeypatch.setitem(BOARD_MEMORY, "test-board", (18432, _ECP5_CONFIGS, ebr))
    monkeypatch.setitem(EXTERNAL_MEMORY, "test-board", ExternalMemory("test RAM", ext_bits, 16) if ext_bits else None)
    return "test-board"


def test_placement_is_on_chip_first_then_largest_once_per_update_buffer_out(small_graph, monkeypatch):
    graph, progs = small_graph
    e = Engine(8)
    board = _test_board(monkeypatch, 100000)
    onchip = plan_memory(graph, progs, e, board)
    assert onchip.fits and onchip.external_buffers == [] and onchip.external_traffic() == {
        "search_frame": 0, "template_update": 0}
    assert all(b["place"] == "ebr" for b in onchip.buffers.values())
    b = onchip.buffers
    assert onchip.peak_tensors[0] == "template_update"  # T = 3 template streams are the largest working set
    t_peak = b["activations"]["bits"]
    first = "template_activations" if t_peak >= b["template_consts"]["bits"] else "template_consts"
    # one block RAM short: the largest once-per-update buffer leaves, nothing else
    board = _test_board(monkeypatch, onchip.ebr_used - 1)
    p1 = plan_memory(graph, progs, e, board)
    assert first == "template_activations" and p1.external_buffers == [first] and p1.fits
    a1 = p1.buffers["activations"]
    assert a1["bits"] < t_peak and p1.peak_tensors[0] in ("search_frame", "template_update")
    assert p1.ebr_used == onchip.ebr_used - b["activations"]["ebr"] + a1["ebr"]
    ta = p1.buffers["template_activations"]
    # every template tensor is written once and read at least once: more traffic than the peak
    assert ta["place"] == "external" and ta["ebr"] == 0 and ta["traffic_bits"]["template_update"] > ta["bits"]
    assert p1.external_traffic()["search_frame"] == 0
    assert p1.external_bits == ta["bits"] >= t_peak - 36


def test_weights_go_out_only_when_the_template_buffers_are_not_enough(small_graph, monkeypatch):
    graph, progs = small_graph
    e = Engine(8)
    board = _test_board(monkeypatch, 100000)
    both_t = plan_memory(graph, progs, e, board, ["template_activations", "template_consts"])
    w_only = plan_memory(graph, progs, e, board, ["weights"])
    assert w_only.ebr_used < both_t.ebr_used  # precondition of the case: int4 weights outweigh the template
    # room for exactly the weights-out design: all three leave, then the template buffers come back
    board = _test_board(monkeypatch, w_only.ebr_used)
    plan = plan_memory(graph, progs, e, board)
    assert plan.fits and plan.external_buffers == ["weights"] and plan.ebr_used == w_only.ebr_used
    w, cache = plan.buffers["weights"], plan.buffers["weight_cache"]
    assert cache["place"] == "ebr" and 0 < cache["bits"] < w["bits"] and cache["width"] == 8 * 8
    # double-buffered lines of the largest output chunk: C_in/g * k^2 (depthwise k^2), two int4 lines a row
    net = graph.net
    shapes = [(net.params_of(l)["weight"].shape, l.attrs["groups"]) for l in net.layers
              if l.op in ("conv", "stem_conv") and "params_from" not in l.attrs]
    chunk = max((k * k if g == co and cig == 1 and g > 1 else cig * k * k) for (co, cig, k, _), g in shapes)
    assert cache["depth"] == 2 * ((chunk + 1) // 2)
    t = w["traffic_bits"]
    # each pass streams the weights of its own layers once; together they touch every layer
    assert 0 < t["search_frame"] <= w["bits"] and 0 < t["template_update"] <= w["bits"]
    assert t["search_frame"] + t["template_update"] >= w["bits"]
    # "none" keeps everything on chip and is refused on the same board
    none = plan_memory(graph, progs, e, board, "none")
    assert not none.fits and none.external_buffers == [] and none.placement == "none"


def test_external_capacity_and_boards_without_external_memory(small_net, small_graph, monkeypatch):
    graph, progs = small_graph
    e = Engine(8)
    board = _test_board(monkeypatch, 100000)
    need = plan_memory(graph, progs, e, board, ["weights"]).ebr_used
    # external memory too small for the weights: refused, the message names it
    _test_board(monkeypatch, need, ext_bits=1000)
    rep = compile_network(small_net[0], board=board, lanes=8, calibration_frames=0)["report"]
    assert rep["fits"] is False and rep["external"]["buffers"] and rep["external_bits"] > 1000
    assert "external buffers need" in shortfall(rep) and "test RAM" in shortfall(rep)
    # far too few block RAMs: refused with every buffer that saves block RAM moved out
    _test_board(monkeypatch, 10)
    plan = plan_memory(graph, progs, e, board)
    assert not plan.fits and sorted(plan.external_buffers) == ["search_activations", "template_activations",
                                                               "template_consts", "weights"]
    # no external memory: nothing moves, refused with the shortfall
    _test_board(monkeypatch, need, ext_bits=0)
    plan = plan_memory(graph, progs, e, board)
    assert not plan.fits and plan.external_buffers == [] and plan.ebr_used > need
    with pytest.raises(ValueError, match="board test-board has no external memory"):
        plan_memory(graph, progs, e, board, ["weights"])
    with pytest.raises(ValueError, match="board test-board has no external memory.*search_activations"):
        plan_memory(graph, progs, e, board, ["search_activations"])
    with pytest.raises(ValueError, match="'search_activation' cannot be placed in external memory; "
                                         "candidates: .*search_activations"):
        plan_memory(graph, progs, e, "ulx3s-85f", ["search_activation"])
    with pytest.raises(ValueError, match="'line_buffer' cannot be placed in external memory"):
        plan_memory(graph, progs, e, "ulx3s-85f", ["line_buffer"])
    with pytest.raises(ValueError, match="'auto', 'none' or a list"):
        plan_memory(graph, progs, e, "ulx3s-85f", "everything")


def test_mixed_weight_bits_are_sized_per_layer(small_net, small_graph, monkeypatch):
    net, _ = small_net
    graph, progs = small_graph
    e = Engine(8)
    base = plan_memory(graph, progs, e, "ulx3s-85f", "none").buffers["weights"]
    node = next(n for n in graph.nodes if n.kind == "spike_conv"
                and "params_from" not in net.layer(n.layers[0]).attrs)
    lines = REGISTRY["spike_conv"].pack(node, net, e)["weights"].shape[0]
    monkeypatch.setitem(net.layer(node.layers[0]).attrs, "weight_bits", 8)  # this one layer at int8
    mixed = plan_memory(graph, progs, e, "ulx3s-85f", "none").buffers["weights"]
    assert mixed["depth"] - base["depth"] == lines - (lines + 1) // 2 > 0


def test_compile_cli_external_option_errors(small_net, tmp_path, capsys):
    art = save_artifact(small_net[0], tmp_path / "art")
    base = ["compile", "--artifact", str(art), "--calibration-frames", "0", "--out", str(tmp_path / "o")]
    assert main(base + ["--external", "weights,bogus"]) == 2
    assert "'bogus' cannot be placed in external memory" in capsys.readouterr().err
    assert main(base + ["--board", "icebreaker", "--external", "weights"]) == 2
    assert "board icebreaker has no external memory" in capsys.readouterr().err
    assert main(base + ["--external", "template_consts", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["external"]["buffers"] == ["template_consts"] and rep["external"]["placement"] == "explicit"
    assert rep["external_bits"] == rep["memory"]["template_consts_bits"] > 0
    assert rep["external"]["traffic_bits"] == {"search_frame": 0, "template_update": rep["external_bits"]}
    for key in ("board", "layers", "ops_unplaced", "fits", "weight_bits", "fps_at_100mhz", "lanes"):
        assert key in rep
    # the search pass's activations by name: traffic per search frame, bus share, stated assumptions
    assert main(base + ["--external", "search_activations", "--json"]) == 0
    ext = json.loads(capsys.readouterr().out)["external"]
    assert ext["buffers"] == ["search_activations"] and ext["traffic_bits"]["template_update"] == 0
    assert ext["buffer_traffic_bits"] == {"search_activations": {"search_frame": ext["traffic_bits"]["search_frame"]}}
    assert ext["min_bus_cycles"]["search_frame"] == -(-ext["traffic_bits"]["search_frame"] // 16) > 0
    assert 0 < ext["search_frame_bus_share"] and ext["cycles_include_transfers"] is False
    assert ext["bandwidth_bound"] == {"search_frame": ext["search_frame_bus_share"] > 1, "template_update": False}
    # no external memory: refused, the on-chip buffers named
    assert main(base + ["--board", "icebreaker"]) == 1
    err = capsys.readouterr().err
    assert "icebreaker has no external memory" in err and "activations" in err and "weights" in err
    assert set(rep["predicted_cycles"]) == {"template_update", "search_frame"}
    for key in ("weights_bits", "tables_bits", "activations_bits", "membranes_bits", "template_memory_bits",
                "ebr_used", "ebr_total"):
        assert key in rep["memory"]


def test_search_activations_go_out_only_when_nothing_else_is_enough(small_graph, monkeypatch):
    graph, progs = small_graph
    e = Engine(8)
    board = _test_board(monkeypatch, 100000)
    three = ["template_activations", "template_consts", "weights"]
    without = plan_memory(graph, progs, e, board, three)
    every = plan_memory(graph, progs, e, board, three + ["search_activations"])
    assert every.ebr_used < without.ebr_used  # the search pass's peak sets the pool when the template's is out
    # activations fit once the other three are out: the search pass's stay on chip
    board = _test_board(monkeypatch, without.ebr_used)
    plan = plan_memory(graph, progs, e, board)
    assert plan.fits and "search_activations" not in plan.external_buffers
    # they do not: every candidate leaves, none can come back
    board = _test_board(monkeypatch, every.ebr_used)
    plan = plan_memory(graph, progs, e, board)
    assert plan.fits and sorted(plan.external_buffers) == sorted(three + ["search_activations"])
    assert plan.buffers == every.buffers and plan.placement == "auto"
    sa = plan.buffers["search_activations"]
    assert sa["ebr"] == 0 and sa["place"] == "external" and set(sa["traffic_bits"]) == {"search_frame"}
    # written once and read at least once: more traffic than the buffer
    assert sa["traffic_bits"]["search_frame"] > sa["bits"] > plan.buffers["activations"]["bits"]
    assert plan.peak_tensors[1].startswith("staging ")
    assert plan.external_traffic()["search_frame"] == (sa["traffic_bits"]["search_frame"]
                                                       + plan.buffers["weights"]["traffic_bits"]["search_frame"])
    # the icebreaker has no external memory: nothing moves, the refusal names the buffers
    _test_board(monkeypatch, every.ebr_used, ext_bits=0)
    plan = plan_memory(graph, progs, e, board)
    assert not plan.fits and plan.external_buffers == []


def _tiny_search_net():
    """stem (8 channels, stride 2) -> 3x3 conv 8 -> 16 -> depthwise 3x3, T = 1, 4 x 4 spike maps."""
    rng = np.random.default_rng(0)

    def conv(s, p, g, ab, exp):
        return {"stride": s, "padding": p, "groups": g, "acc_bits": ab, "weight_bits": 8, "acc_exp": exp}

    def prm(shape):
        return {"weight": rng.integers(-127, 128, shape).astype(np.int8), "bias": np.zeros(shape[0], np.int32)}

    def fire(name, src):
        return Layer(name, "neuron", [src], {"f_m": 4, "bits": 12, "decays": []})

    layers = [Layer("stem", "stem_conv", ["pix"], conv(2, 1, 1, 20, [10] * 8), prm((8, 3, 3, 3))),
              Layer("stem_q", "requant", ["stem"], {"shift": 6, "bits": 12}), fire("s0", "stem_q"),
              Layer("c1", "conv", ["s0"], conv(1, 1, 1, 14, [9] * 16), prm((16, 8, 3, 3))),
              Layer("c1_q", "requant", ["c1"], {"shift": 5, "bits": 12}), fire("s1", "c1_q"),
              Layer("dw", "conv", ["s1"], conv(1, 1, 16, 14, [9] * 16), prm((16, 1, 3, 3))),
              Layer("dw_q", "requant", ["dw"], {"shift": 5, "bits": 12}), fire("s2", "dw_q")]
    net = IntegerNetwork(layers, ["pix"], ["s2"], {"config": "tiny"},
                         {"pix": TensorType((1, 3, 8, 8), "pixels", 8, False, 0)})
    net.validate()
    return net


def test_search_activation_traffic_and_staging_by_hand():
    from spiketrack.compiler.schedule import Program

    graph, _ = fuse(_tiny_search_net())
    assert [n.kind for n in graph.nodes] == ["stem", "spike_conv", "spike_conv"]
    progs = {"template_update": Program("template_update", [], [], []),
             "search_frame": Program("search_frame", list(graph.nodes), ["pix"], ["s2"])}
    e = Engine(8)
    onchip = plan_memory(graph, progs, e, "ulx3s-85f", "none")
    plan = plan_memory(graph, progs, e, "ulx3s-85f", ["search_activations"])
    assert plan.placement == "explicit" and plan.external_buffers == ["search_activations"]
    # levels in 3 bits: s0 [1, 8, 4, 4] 384 bits, s1 and s2 [1, 16, 4, 4] 768 bits each
    s0, s1, s2 = 384, 768, 768
    peak = s1 + s2  # at the depthwise conv (s0's last reader was the 3x3 conv)
    assert onchip.buffers["activations"]["bits"] == 36 * -(-peak // 36) and onchip.peak_tensors[0] == "search_frame"
    sa = plan.buffers["search_activations"]
    assert sa["bits"] == 36 * -(-peak // 36)
    # s0 written once, read by the 3x3 conv once per P-chunk of its 16 outputs (2); s1 written once,
    # read once by the depthwise conv; s2 written once and read once by the host (a program output)
    assert sa["traffic_bits"] == {"search_frame": s0 + 2 * s0 + s1 + s1 + s2 + s2} == {"search_frame": 4224}
    # staging: the depthwise conv's k + stride = 4 rows of s1 (16 channels x 4 columns x 3 bits) + one row of s2
    staging = 4 * 16 * 4 * 3 + 16 * 4 * 3
    assert staging > 4 * 8 * 4 * 3 + 16 * 4 * 3  # more than the 3x3 conv's window
    assert plan.buffers["activations"]["bits"] == 36 * -(-staging // 36)
    assert plan.peak_tensors == ("search_frame", "staging dw")
    assert plan.external_traffic() == {"search_frame": 4224, "template_update": 0}


# the shipped default's memory plan on ulx3s-85f as main d459339 computed it (before search_activations)
_DEFAULT_PLAN = {
    "weights": {"bits": 3872448, "width": 64, "depth": 60507, "ebr": 0, "place": "external",
                "traffic_bits": {"template_update": 2312128, "search_frame": 3694272}},
    "weight_cache": {"bits": 73728, "width": 64, "depth": 1152, "ebr": 6, "place": "ebr"},
    "tables": {"bits": 160300, "width": 28, "depth": 5725, "ebr": 12, "place": "ebr"},
    "consts": {"bits": 175104, "width": 9, "depth": 19456, "ebr": 10, "place": "ebr"},
    "template_consts": {"bits": 583680, "width": 10, "depth": 58368, "ebr": 40, "place": "ebr"},
    "template_memory": {"bits": 152064, "width": 36, "depth": 4224, "ebr": 9, "place": "ebr"},
    "activations": {"bits": 1867788, "width": 36, "depth": 51883, "ebr": 102, "place": "ebr"},
    "pixel_line_buffer": {"bits": 27648, "width": 24, "depth": 1152, "ebr": 3, "place": "ebr"},
    "membranes": {"bits": 0, "width": 0, "depth": 0, "ebr": 0, "place": "ebr"}}


def test_the_shipped_default_keeps_its_memory_plan():
    from spiketrack.compiler.cli_compile import _artifact

    graph, _ = fuse(_artifact(None))
    plan = plan_memory(graph, programs(graph), Engine(8), "ulx3s-85f")
    assert plan.buffers == _DEFAULT_PLAN and plan.ebr_used == 182 and plan.fits
    assert plan.external_buffers == ["weights"] and plan.placement == "auto"
    assert plan.peak_tensors == ("template_update", "template/backbone.stages.0.blocks.0.add_sep")


# ---------------------------------------------------------------------------------------------
# spiketrack eval --artifact


def _short_sequence(n=5):
    from spiketrack.model.data.sequence import Sequence
    from spiketrack.model.data.synthetic import benchmark_sequences

    seq = benchmark_sequences(1)[0]
    return Sequence(seq.name, seq.frame, seq.boxes[:n], seq.visible[:n], n, dict(seq.meta))


def _track(model, seq):
    from spiketrack.model.evaluate import run_sequence
    from spiketrack.model.tracker import SpikeTrackTracker

    return run_sequence(SpikeTrackTracker(model), seq)[0]


@pytest.fixture(scope="module")
def quantised_boxes(small_q):
    """Boxes of the quantisation-aware model (``eval --quantized``'s tracker) on five frames."""
    from spiketrack.quant.tracking import QuantizedTracking

    return _track(QuantizedTracking(small_q[2]), _short_sequence())


def test_artifact_tracking_equals_the_quantised_model(small_q, quantised_boxes):
    from spiketrack.quant.compare import normalise_pixels, synthetic_frames
    from spiketrack.quant.tracking import ArtifactTracking, QuantizedTracking

    net, cfg, qmodel = small_q
    art, q = ArtifactTracking(net), QuantizedTracking(qmodel)
    assert art.cfg.search_size == 64 and art.cfg.timesteps == 3
    zp, xp = synthetic_frames(cfg, 1)[0]
    z, x = normalise_pixels(zp).float(), normalise_pixels(xp)[0].float()
    out_a = art.encode_search(x, art.encode_template(z))
    out_q = q.encode_search(x, q.encode_template(z))
    assert set(out_a) == set(out_q)
    for k in out_q:
        assert out_a[k].dtype == out_q[k].dtype and torch.equal(out_a[k], out_q[k]), k
    assert out_a["score_map"].abs().sum() > 0
    boxes = _track(art, _short_sequence())
    assert np.array_equal(boxes, quantised_boxes)
    with pytest.raises(ValueError, match="search crop must be"):
        art.encode_search(x[..., :32, :32], art.encode_template(z))


def test_eval_artifact_cli(small_net, quantised_boxes, tmp_path, capsys, monkeypatch):
    from spiketrack.model.data import datasets

    art = save_artifact(small_net[0], tmp_path / "art")
    seq = _short_sequence()
    monkeypatch.setattr(datasets, "load_eval_dataset", lambda spec, max_seqs=None, max_frames=None: ("synthetic", [seq]))
    out = tmp_path / "ev"
    assert main(["eval", "--artifact", str(art), "--out-dir", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["sequences"] == 1 and 0.0 <= rep["auc"] <= 1.0
    boxes = np.loadtxt(out / "lasot" / f"{seq.name}.txt", delimiter=",")
    np.testing.assert_allclose(boxes, quantised_boxes, atol=6e-4)
    # bad inputs: clear one-line errors
    assert main(["eval", "--artifact", str(tmp_path / "nope")]) == 2
    assert "missing manifest.json" in capsys.readouterr().err
    assert main(["eval", "--artifact", str(art), "--quantized"]) == 2
    assert "excludes --checkpoint and --quantized" in capsys.readouterr().err
    p = art / "params.npz"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x55
    p.write_bytes(bytes(data))
    assert main(["eval", "--artifact", str(art)]) == 2
    err = capsys.readouterr().err
    assert "SHA-256 does not match" in err and "Traceback" not in err
