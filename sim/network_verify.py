"""``spiketrack verify --network``: a real frame, node by node, on the run-time-configured RTL.

The compiled template program and search programs (``compiler``) run with the golden functions on
a synthetic sequence (template crop + ``frames`` search crops, batch 1). Every node whose unit has
run-time-configured RTL is then executed on it (conv engine: ``stem``, ``spike_conv``,
``retrieval``; vector unit: ``neuron``, ``add``, ``avg_pool``, ``mean_fusion``; memory builder:
``memory_build``), one elaborated design per unit type, with its inputs taken from the golden run; its output must equal the golden
output element for element, and its busy cycles the node's cycle model. Views need no unit. Nodes
left out by the budgets are reported as unchecked, never as passed.
"""

from __future__ import annotations

import math
import time

import torch

from spiketrack.compiler.fuse import fuse
from spiketrack.compiler.hwops import REGISTRY, csd_value
from spiketrack.compiler.schedule import programs, run_program
from spiketrack.hw.engine_cycles import Engine
from spiketrack.quant.ir import IntegerNetwork

__all__ = ["RTL_KINDS", "node_job", "verify_network"]

CONV_KINDS = ("stem", "spike_conv", "retrieval")
VECTOR_KINDS = ("neuron", "add", "avg_pool", "upsample_bilinear", "mul_const", "mean_fusion")
MB_KINDS = ("memory_build",)
RTL_KINDS = CONV_KINDS + VECTOR_KINDS + MB_KINDS


def _b0(env, name):
    return env[name][:, 0]


def node_job(node, net: IntegerNetwork, env: dict, lanes: int = 8):
    """The RTL job of one node, its inputs taken from the golden run ``env`` (batch 0)."""
    from spiketrack.sim.conv_engine_sim import conv_job, retrieval_job
    from spiketrack.sim.vector_unit_sim import add_job, bilinear_job, fusion_job, mul_const_job, neuron_job, pool_job

    layers = [net.layer(n) for n in node.layers]
    ops = {l.op: l for l in layers}
    neuron = ops.get("neuron")
    nparams = (neuron.attrs["f_m"], neuron.attrs["decays"]) if neuron else None
    rounding = neuron.attrs.get("rounding", "half_up") if neuron else "half_up"
    if node.kind in ("stem", "spike_conv"):
        conv, req = layers[0], layers[1]
        p = net.params_of(conv)
        w = torch.from_numpy(p["weight"]).to(torch.int64)
        x = _b0(env, conv.inputs[0])
        dw = conv.attrs["groups"] > 1
        if dw and not (conv.attrs["groups"] == x.shape[1] == w.shape[0]):
            raise NotImplementedError(f"{node.name}: grouped (non-depthwise) convolution")
        add = ops.get("add")
        res = None
        if add is not None:
            res = _b0(env, next(s for s in add.inputs if s != req.name))
        return conv_job(x, w, torch.from_numpy(p["bias"]).to(torch.int64), req.attrs["shift"],
                        stride=conv.attrs["stride"], padding=conv.attrs["padding"], depthwise=dw, residual=res,
                        neuron=nparams, stem=node.kind == "stem", lanes=lanes, name=node.name, rounding=rounding)
    if node.kind == "retrieval":
        r, req = layers[0], layers[1]
        return retrieval_job(_b0(env, r.inputs[0]), _b0(env, r.inputs[1]), req.attrs["shift"], neuron=nparams,
                             lanes=lanes, name=node.name, rounding=rounding)
    if node.kind == "neuron":
        first = layers[0]
        const = None
        if first.op == "add_const":
            const = torch.from_numpy(net.params_of(first)["value"][:, 0]).to(torch.int64)
        return neuron_job(_b0(env, first.inputs[0]), nparams[0], nparams[1], const=const, lanes=lanes,
                          rounding=rounding)
    if node.kind == "add":
        a_name, b_name = layers[0].inputs
        srcs = []
        for name in (a_name, b_name):
            try:
                lay = net.layer(name)
            except KeyError:
                lay = None
            if lay is not None and lay.op == "upsample":
                srcs.append((_b0(env, lay.inputs[0]), int(math.log2(lay.attrs["factor"]))))
            else:
                srcs.append((_b0(env, name), 0))
        (a, ua), (b, ub) = srcs
        if ua or b.shape[0] < a.shape[0]:   # the unit broadcasts and keeps its plain operand in `a`
            (a, ua), (b, ub) = (b, ub), (a, ua)
        return add_job(a, b, up=ub, lanes=lanes)
    if node.kind == "avg_pool":
        return pool_job(_b0(env, layers[0].inputs[0]), layers[0].attrs["size"], lanes=lanes)
    if node.kind == "upsample_bilinear":
        return bilinear_job(_b0(env, layers[0].inputs[0]), layers[0].attrs["factor"], lanes=lanes)
    if node.kind == "mul_const":
        mul, req = layers
        return mul_const_job(_b0(env, mul.inputs[0]), csd_value(mul.attrs["terms"]), req.attrs["shift"], lanes=lanes)
    if node.kind == "mean_fusion":
        return fusion_job(_b0(env, layers[0].inputs[0]), lanes=lanes)
    if node.kind == "memory_build":
        from spiketrack.sim.memory_builder_sim import mb_job

        k_name, v_name = layers[0].inputs
        return mb_job(_b0(env, k_name), _b0(env, v_name), layers[0].attrs["heads"], lanes=lanes)
    raise NotImplementedError(node.kind)


def verify_network(net: IntegerNetwork, inputs: list[tuple[torch.Tensor, torch.Tensor]], *, lanes: int = 8,
                   max_nodes: int | None = None, max_node_cycles: int | None = None,
                   max_per_kind: int | None = None) -> dict:
    """Check every RTL-placeable node of one template pass and ``len(inputs)`` search frames.

    inputs : ``[(template_pixels, search_pixels), ...]``; the first pair's template is used.
    max_nodes, max_node_cycles, max_per_kind : check at most this many nodes (in all, and of each
        kind), and only nodes whose model predicts at most this many cycles (the rest count as
        unchecked, by kind; for quick runs).
    """
    from spiketrack.sim.conv_engine_sim import run_jobs
    from spiketrack.sim.vector_unit_sim import run_vector_jobs

    t0 = time.monotonic()
    graph, _ = fuse(net)
    net = graph.net   # the compiler's network (its IR rewrite, compiler/fuse.py)
    progs = programs(graph)
    zp = inputs[0][0][:, :1]
    env_t = run_program(graph, progs["template_update"], {"template_pixels": zp})
    mems = {m: env_t[m] for m in progs["template_update"].outputs}
    passes = [("template_update", progs["template_update"], env_t)]
    for i, (_, xp) in enumerate(inputs):
        env_s = run_program(graph, progs["search_frame"], {"search_pixels": xp[:, :1], **mems})
        passes.append((f"search_frame_{i}", progs["search_frame"], {**env_t, **env_s}))
    engine = Engine(lanes)
    types = net.types
    conv_jobs, vec_jobs, mb_jobs, unchecked, checked_kind = [], [], [], {}, {}
    layers_total = layers_checked = 0
    for pname, prog, env in passes:
        for node in prog.nodes:
            if REGISTRY[node.kind].view:
                continue
            layers_total += len(node.layers)
            budget_left = max_nodes is None or len(conv_jobs) + len(vec_jobs) + len(mb_jobs) < max_nodes
            model_cycles = REGISTRY[node.kind].cost(node, net, types, engine, env).cycles
            small = max_node_cycles is None or model_cycles <= max_node_cycles
            kind_left = max_per_kind is None or checked_kind.get(node.kind, 0) < max_per_kind
            if node.kind not in RTL_KINDS or not budget_left or not small or not kind_left:
                unchecked[node.kind] = unchecked.get(node.kind, 0) + 1
                continue
            job = node_job(node, net, env, lanes)
            job.name, job.pass_name = node.name, pname
            job.expected = _b0(env, node.output)
            job.model_cycles = model_cycles
            checked_kind[node.kind] = checked_kind.get(node.kind, 0) + 1
            job.n_layers = len(node.layers)
            (conv_jobs if node.kind in CONV_KINDS else mb_jobs if node.kind in MB_KINDS else vec_jobs).append(job)
    if conv_jobs:
        run_jobs(conv_jobs, lanes)
    if vec_jobs:
        run_vector_jobs(vec_jobs, lanes)
    if mb_jobs:
        from spiketrack.sim.memory_builder_sim import run_mb_jobs

        run_mb_jobs(mb_jobs, lanes)
    mismatches, first, exact = 0, None, True
    cycles: dict[str, int] = {}
    for job in conv_jobs + vec_jobs + mb_jobs:
        out, exp = job.result["out"], job.expected
        bad = (out != exp).nonzero() if out.shape == exp.shape else torch.zeros(1, exp.dim(), dtype=torch.int64)
        if len(bad):
            mismatches += len(bad)
            if first is None:
                idx = tuple(int(i) for i in bad[0])
                first = {"pass": job.pass_name, "layer": job.name, "element": list(idx),
                         "rtl": int(out[idx]) if out.shape == exp.shape else None, "golden": int(exp[idx])}
        if job.result["cycles"] != job.model_cycles:
            exact = False
        layers_checked += job.n_layers
        cycles[job.pass_name] = cycles.get(job.pass_name, 0) + job.result["cycles"]
    return {"frames": len(inputs), "layers_total": layers_total, "layers_checked": layers_checked,
            "nodes_checked": len(conv_jobs) + len(vec_jobs) + len(mb_jobs), "checked_nodes": checked_kind, "unchecked_nodes": unchecked,
            "mismatches": mismatches, "first_mismatch": first, "cycle_model_exact": exact,
            "rtl_cycles_of_checked_nodes": cycles, "seconds": round(time.monotonic() - t0, 1)}
