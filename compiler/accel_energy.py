"""Energy per frame of the accelerator with memory counted, and of its ANN twin on the same memories.

Spiking accelerator: from the accelerator's own counters (``hw/accel/protocol.COUNTERS``) of a
simulated frame: every enabled block-RAM read and every write, at its memory's row width, at
:data:`~spiketrack.quant.energy.E_SRAM_BYTE_PJ` per byte (1.25 pJ: a 64-bit read of an 8 KB
SRAM is 10 pJ, Horowitz, ISSCC 2014, 45 nm), plus the adds: ``P`` per weight line read by the conv
engine (one per event), per cycle of the vector and memory-build units, and per output word
written (bias and membrane), at :data:`~spiketrack.quant.energy.E_ADD32_PJ`.

ANN twin: the same network with 8-bit activations instead of 3-bit spike levels, on an engine
with the same dataflow and memories (output-stationary, weight lines read per input channel,
accumulators in registers): the cycle model's dense counts (every activation non-zero) of every
node, with every level tensor read or written at 8 bits per value, and every dense accumulation
a multiply-accumulate (:data:`~spiketrack.quant.energy.E_MUL8_PJ` + ``E_ADD32_PJ``). The twin
reads its tables once per op (the model), the spiking accelerator once per output word (the RTL):
the comparison does not favour the spiking side.

External weights (``ext_words``: 16-bit words the fetch unit read from the board's SDRAM) cost
:data:`~spiketrack.quant.energy.E_DRAM_BYTE_PJ` per byte, on both sides: the twin, with the same
dataflow and the same int8 weights, streams the same lines once per pass.
"""

from __future__ import annotations

from spiketrack.compiler.hwops import REGISTRY
from spiketrack.hw import engine_cycles as ec
from spiketrack.hw.accel.top import mem_widths
from spiketrack.quant.energy import E_ADD32_PJ, E_DRAM_BYTE_PJ, E_MUL8_PJ, E_SRAM_BYTE_PJ

__all__ = ["counters_energy", "ann_twin_energy", "accelerator_energy"]

PJ_TO_MJ = 1e-9


def counters_energy(counters: dict, lanes: int, addr_bits: int = 16) -> dict:
    """Energy (mJ) of one frame from the accelerator's counter deltas."""
    w = mem_widths(lanes, addr_bits)
    bits = 0
    by_mem = {}
    for mem in ("lv", "st", "tm", "w", "tab", "cst", "prog"):
        rows = counters.get(f"{mem}_reads", 0) + counters.get(f"{mem}_writes", 0)
        by_mem[mem] = rows * w[mem]
        bits += rows * w[mem]
    adds = lanes * (counters.get("events", 0) + counters.get("vec_busy", 0) + counters.get("mb_busy", 0)
                    + counters.get("lv_writes", 0) + counters.get("st_writes", 0))
    ext_pj = counters.get("ext_words", 0) * 2 * E_DRAM_BYTE_PJ
    mem_pj = bits / 8 * E_SRAM_BYTE_PJ + ext_pj
    add_pj = adds * E_ADD32_PJ
    return {"mj": (mem_pj + add_pj) * PJ_TO_MJ, "memory_mj": mem_pj * PJ_TO_MJ, "arith_mj": add_pj * PJ_TO_MJ,
            "external_mj": ext_pj * PJ_TO_MJ, "bits_by_memory": by_mem, "adds": adds}


def ann_twin_energy(graph, prog_nodes, lanes: int, ext_words: int = 0) -> dict:
    """Energy (mJ) of the ANN twin running the same nodes (dense cycle-model counts, 8-bit
    activations; ``ext_words`` 16-bit words of weights streamed from external memory)."""
    net = graph.net
    types = net.types
    engine = ec.Engine(lanes)
    bits = macs = 0.0
    for hw in prog_nodes:
        if REGISTRY[hw.kind].view:
            continue
        cost = REGISTRY[hw.kind].cost(hw, net, types, engine, None)
        first = net.layer(hw.layers[0])
        in_levels = any(types[s].kind == "levels" for s in first.inputs if s in types)
        out_levels = types[hw.output].kind == "levels"
        for key, b in cost.reads.items():
            if key == "weights":   # int8 weight lines
                b = b / first.attrs.get("weight_bits", 8) * 8
            if key == "act" and in_levels:
                b = b * 8 / ec.LEVEL_BITS_STORED
            bits += b
        for key, b in cost.writes.items():
            bits += b * 8 / ec.LEVEL_BITS_STORED if key == "act" and out_levels else b
        # the stem's dense count is per pixel bit plane; a MAC takes the whole pixel
        macs += cost.adds / 8 if hw.kind == "stem" else cost.adds
    ext_pj = ext_words * 2 * E_DRAM_BYTE_PJ
    mem_pj = bits / 8 * E_SRAM_BYTE_PJ + ext_pj
    mac_pj = macs * (E_MUL8_PJ + E_ADD32_PJ)
    return {"mj": (mem_pj + mac_pj) * PJ_TO_MJ, "memory_mj": mem_pj * PJ_TO_MJ, "arith_mj": mac_pj * PJ_TO_MJ,
            "external_mj": ext_pj * PJ_TO_MJ, "macs": macs}


def accelerator_energy(graph, ap, counters: dict, program: str = "search_frame") -> dict:
    """``{"snn_mj", "ann_mj", "ratio", "snn": {...}, "ann": {...}}`` for one run of ``program``."""
    from spiketrack.compiler.schedule import programs

    snn = counters_energy(counters, ap.lanes, ap.addr_bits)
    ann = ann_twin_energy(graph, programs(graph)[program].nodes, ap.lanes, counters.get("ext_words", 0))
    return {"snn_mj": snn["mj"], "ann_mj": ann["mj"], "ratio": ann["mj"] / snn["mj"] if snn["mj"] else float("inf"),
            "snn": snn, "ann": ann}
