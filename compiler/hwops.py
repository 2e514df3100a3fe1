"""One class per hardware operation (FINN's ``HWCustomOp`` idea, for the SpikeTrack accelerator).

A hardware op is a group of consecutive IR layers (``quant.ir``) that one accelerator unit executes
in one pass over its output, built by the fusion passes of :mod:`.fuse`. Each class holds, in one
place, everything about its op:

* ``pattern`` / :meth:`HwOp.match` — which IR layers it fuses;
* :meth:`HwOp.golden` — execution by the golden functions (``quant.golden``, through the executor's
  per-layer dispatch), so a compiled program runs bit-exactly like ``run_network``;
* :meth:`HwOp.cost` — cycles and memory accesses, by the unit's cycle model
  (:mod:`spiketrack.hw.engine_cycles`), from real data (a golden run) or dense (worst case);
* :meth:`HwOp.pack` — its parameters as memory words (weights, per-channel tables, constants).

:data:`REGISTRY` maps a kind to its class; the compiler refuses a network with a layer no class
places, naming it.

The dataflow behind the cycle models (docs/accelerator.md): **output-stationary**. The engine
keeps ``P`` output-channel accumulators in registers for one output position, gathers the input
spike words of the receptive field from the activation buffer and, per non-zero level, reads one
``P``-lane weight line and adds ``k·w`` (shift-add). No partial sum ever goes to memory; the
epilogue requantises, adds the residual and fires in the same pass. Time is the innermost loop,
so NI-LIF membranes across ``T`` stay in registers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spiketrack.hw import engine_cycles as ec
from spiketrack.hw.engine_cycles import Cost
from spiketrack.hw.vector_unit import HORNER_STEPS, horner_fields
from spiketrack.quant.executor import _run_layer
from spiketrack.quant.ir import IntegerNetwork, Layer, TensorType

__all__ = ["HwNode", "HwOp", "REGISTRY", "register", "Cost"]


@dataclass
class HwNode:
    """One hardware op instance: the IR layers it fuses and the tensors it reads and writes.

    Members
    -------
    kind : key of :data:`REGISTRY` (``"ir:<op>"`` while a layer is not yet fused).
    layers : IR layer names, in execution order; the last one's output is the node's output.
    inputs : tensors read from buffers (outputs of earlier nodes or network inputs).
    """

    kind: str
    layers: list[str]
    inputs: list[str]

    @property
    def name(self) -> str:
        return self.layers[-1]

    @property
    def output(self) -> str:
        return self.layers[-1]


REGISTRY: dict[str, type["HwOp"]] = {}


def register(cls):
    REGISTRY[cls.kind] = cls
    return cls


class HwOp:
    """Base class: one hardware operation. Subclasses set ``kind``, ``unit``, ``pattern``."""

    kind = ""
    unit = ""            #: the accelerator unit that executes it
    pattern: tuple = ()  #: IR ops: the first is the anchor; later ones are fused when they follow
    view = False         #: folded into buffer addressing: no cycles, no storage of its own

    # ------------------------------------------------------------------ fusion
    @classmethod
    def match(cls, net: IntegerNetwork, layer: Layer, consumers: dict[str, list[str]]) -> list[str] | None:
        """IR layer names this op fuses starting at ``layer``, or None if it does not start here.

        The default: the anchor op, then each further op of ``pattern`` (marked optional by a
        ``?`` suffix) if it is the sole consumer of the previous layer's output.
        """
        if not cls.pattern or layer.op != cls.pattern[0]:
            return None
        names, cur = [layer.name], layer
        for want in cls.pattern[1:]:
            optional = want.endswith("?")
            op = want.rstrip("?")
            nxt = consumers.get(cur.name, [])
            cand = net.layer(nxt[0]) if len(nxt) == 1 else None
            if cand is None or cand.op != op or not cls.accepts(net, names, cand):
                if optional:
                    continue
                return None
            names.append(cand.name)
            cur = cand
        return names

    @classmethod
    def accepts(cls, net: IntegerNetwork, names: list[str], cand: Layer) -> bool:
        """Extra fusion condition for ``cand`` after ``names`` (default: yes)."""
        return True

    # ------------------------------------------------------------------ execution
    @classmethod
    def golden(cls, node: HwNode, net: IntegerNetwork, env: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the fused layers with the golden functions; returns every layer's output by name."""
        out = {}
        for name in node.layers:
            layer = net.layer(name)
            args = [out[s] if s in out else env[s] for s in layer.inputs]
            out[name], _ = _run_layer(layer, net.params_of(layer), args)
        return out

    # ------------------------------------------------------------------ cost
    @classmethod
    def cost(cls, node: HwNode, net: IntegerNetwork, types: dict[str, TensorType], engine: "ec.Engine",
             env: dict[str, torch.Tensor] | None = None) -> Cost:
        """Cycles and traffic; from the data in ``env`` (batch 1) or dense when ``env`` is None."""
        raise NotImplementedError

    # ------------------------------------------------------------------ parameters
    @classmethod
    def pack(cls, node: HwNode, net: IntegerNetwork, engine: "ec.Engine") -> dict[str, np.ndarray]:
        """Parameters as memory images: ``{memory: int array}`` (default: none)."""
        return {}

    # ------------------------------------------------------------------ verification
    @classmethod
    def random_case(cls, rng) -> dict | None:
        """One random instance of this op run on its unit's RTL against the golden functions and
        the cycle model: ``sim/op_cases.<kind>_case(rng)``, ``{"type", "match", "cycles_exact",
        ...}``. ``spiketrack verify --fuzz`` draws its ``accel.<kind>`` cases from here; an op with
        a unit must have one (a test checks every registered class). None for a view (buffer
        addressing only: checked by the network runs, not by a unit case)."""
        if cls.view:
            return None
        from spiketrack.sim import op_cases

        case = getattr(op_cases, f"{cls.kind}_case", None)
        if case is None:
            raise NotImplementedError(f"hardware op {cls.kind!r} has no random RTL case (sim/op_cases.py)")
        return case(rng)


def _levels(env, name) -> torch.Tensor | None:
    return None if env is None else env[name][:, 0]  # [T, C, H, W] of batch 0


@register
class SpikeConv(HwOp):
    """Spiking convolution: conv accumulate (§IS-4) -> requantise (§IS-5) -> residual add (§IS-6)
    or NI-LIF (§IS-7), on the conv engine. Covers k×k, strided, grouped, depthwise and 1×1."""

    kind, unit = "spike_conv", "conv_engine"
    pattern = ("conv", "requant", "add?", "neuron?")


    @classmethod
    def accepts(cls, net, names, cand):
        # the residual add and the neuron both follow the requantisation directly (a neuron after
        # the add would need the add's output, which always has other readers)
        return cand.op == "requant" or net.layer(names[-1]).op == "requant"

    @classmethod
    def cost(cls, node, net, types, engine, env=None, chunk_range=None):
        conv = net.layer(node.layers[0])
        return ec.conv_cost(engine, conv, net.params_of(conv)["weight"].shape, types[conv.inputs[0]],
                            types[node.output], _levels(env, conv.inputs[0]),
                            residual=any(net.layer(n).op == "add" for n in node.layers), chunk_range=chunk_range)

    @classmethod
    def pack(cls, node, net, engine):
        conv = net.layer(node.layers[0])
        p = net.params_of(conv)
        return ec.pack_conv(engine, p["weight"], p["bias"], net.layer(node.layers[1]).attrs["shift"],
                            conv.attrs["groups"])


@register
class Stem(SpikeConv):
    """The stem: bit-plane convolution on uint8 pixels (§IS-11) -> requantise [-> NI-LIF]."""

    kind = "stem"
    pattern = ("stem_conv", "requant", "neuron?")



@register
class Retrieval(HwOp):
    """Memory retrieval R = Q·M (§IS-8) -> requantise -> NI-LIF over T, on the conv engine (a grouped
    1×1 conv, one group per head, weight lines from the template memory)."""

    kind, unit = "retrieval", "conv_engine"
    pattern = ("retrieve", "requant", "neuron?")


    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        r = net.layer(node.layers[0])
        return ec.retrieve_cost(engine, types[r.inputs[0]], types[r.inputs[1]], types[node.output],
                                _levels(env, r.inputs[0]))


@register
class MemoryBuild(HwOp):
    """Memory build M = Kᵀ·V per head (§IS-8), on the memory unit."""

    kind, unit = "memory_build", "memory_unit"
    pattern = ("memory_build",)


    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        m = net.layer(node.layers[0])
        return ec.memory_build_cost(engine, types[m.inputs[0]], types[m.inputs[1]], types[node.output],
                                    _levels(env, m.inputs[0]))


@register
class Neuron(HwOp):
    """Stream -> spike levels on the vector unit: [positional table add (§IS-6)] -> NI-LIF (§IS-7)."""

    kind, unit = "neuron", "vector_unit"
    pattern = ("add_const?", "neuron")


    @classmethod
    def match(cls, net, layer, consumers):
        if layer.op == "neuron":
            return [layer.name]
        if layer.op == "add_const":
            nxt = consumers.get(layer.name, [])
            if len(nxt) == 1 and net.layer(nxt[0]).op == "neuron":
                return [layer.name, nxt[0]]
        return None

    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        has_const = net.layer(node.layers[0]).op == "add_const"
        return ec.vector_cost(engine, types[node.output], [types[net.layer(node.layers[0]).inputs[0]]],
                              const_bits=ec.const_bits(net.params_of(net.layer(node.layers[0]))["value"]) if has_const else 0,
                              neuron=True)

    @classmethod
    def pack(cls, node, net, engine):
        first = net.layer(node.layers[0])
        if first.op != "add_const":
            return {}
        return {"consts": net.params_of(first)["value"][:, 0].reshape(-1)}


@register
class Add(HwOp):
    """Saturating residual add (§IS-6) on the vector unit; an upsampled operand (§IS-10) is read
    through nearest-neighbour addressing, so the upsample itself costs nothing."""

    kind, unit = "add", "vector_unit"
    pattern = ("add",)


    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        return ec.vector_cost(engine, types[node.output], [types[node.output]] * 2)


@register
class AvgPool(HwOp):
    """Power-of-two average pooling (§IS-10) on the vector unit: ``p²`` reads per output word."""

    kind, unit, pattern = "avg_pool", "vector_unit", ("avg_pool",)


    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        layer = net.layer(node.layers[0])
        return ec.vector_cost(engine, types[node.output], [types[layer.inputs[0]]],
                              reads_per_word=layer.attrs["size"] ** 2)


#: ops whose output is a stream of ``attrs["bits"]`` bits (what the vector unit reads in 16-bit lanes)
_STREAM_OPS = ("requant", "add", "add_const", "avg_pool", "upsample_bilinear")


def csd_value(terms) -> int:
    """The constant ``m = Σ σ_j 2**a_j`` of a ``mul_const`` (§IS-12)."""
    return sum(sign << shift for sign, shift in terms)


@register
class UpsampleBilinear(HwOp):
    """Bilinear upsampling by 2 or 4 (§IS-13) on the vector unit: the pooling datapath with the
    bilinear read sequence, each tap read ``w_y·w_x`` times (``(2p)²`` reads per output word), then
    the requantisation by ``2·log2(2p)`` (``hw/vector_unit.py``, ``bil``)."""

    kind, unit, pattern = "upsample_bilinear", "vector_unit", ("upsample_bilinear",)

    @classmethod
    def match(cls, net, layer, consumers):
        ok = layer.op == "upsample_bilinear" and layer.attrs["factor"] in (2, 4) and layer.attrs["bits"] == 16
        return [layer.name] if ok else None

    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        layer = net.layer(node.layers[0])
        return ec.vector_cost(engine, types[node.output], [types[layer.inputs[0]]],
                              reads_per_word=(2 * layer.attrs["factor"]) ** 2)


@register
class MulConst(HwOp):
    """Exact product by a shift-add constant (§IS-12) -> requantise (§IS-5), on the vector unit:
    binary Horner over the constant's 8 bits, :data:`~spiketrack.hw.vector_unit.HORNER_STEPS` reads
    of the same word, a doubling and an add each (``hw/vector_unit.py``, ``horner``). Takes a 16-bit
    stream and constants 1..255; the retrievals' products reach it through
    :func:`~spiketrack.compiler.fuse.saturate_retrieval_products`."""

    kind, unit = "mul_const", "vector_unit"
    pattern = ("mul_const", "requant")

    @classmethod
    def match(cls, net, layer, consumers):
        names = super().match(net, layer, consumers)
        if names is None:
            return None
        src, req = layer.inputs[0], net.layer(names[1])
        try:
            prod = net.layer(src)
        except KeyError:
            return None
        if prod.op not in _STREAM_OPS or prod.attrs["bits"] > 16 or req.attrs["bits"] != 16 \
                or not isinstance(req.attrs["shift"], int):
            return None
        try:
            horner_fields(csd_value(layer.attrs["terms"]), req.attrs["shift"])
        except ValueError:
            return None
        return names

    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        layer = net.layer(node.layers[0])
        return ec.vector_cost(engine, types[node.output], [types[layer.inputs[0]]], reads_per_word=HORNER_STEPS)


@register
class MeanFusion(HwOp):
    """Compare-only mean over template timesteps (§IS-10) on the vector unit: ``T`` reads per word."""

    kind, unit, pattern = "mean_fusion", "vector_unit", ("mean_fusion",)


    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        src = types[net.layer(node.layers[0]).inputs[0]]
        return ec.vector_cost(engine, types[node.output], [src], reads_per_word=src.shape[0])


@register
class TimeView(HwOp):
    """select_time / concat_time / repeat_time / upsample: folded into buffer addressing."""

    kind, unit, view = "view", "addressing", True
    ops = ("select_time", "concat_time", "repeat_time", "upsample")

    @classmethod
    def match(cls, net, layer, consumers):
        return [layer.name] if layer.op in cls.ops else None

    @classmethod
    def cost(cls, node, net, types, engine, env=None):
        return Cost()
