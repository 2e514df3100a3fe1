"""Lowering: a quantisation-aware SpikeTrack (``quant/qat.py``) -> an :class:`IntegerNetwork`.

The lowering walks the model in the order of its ``forward`` code, unit by unit, and emits one IR
layer per integer operation. The template branch (``T`` timesteps) and the search branch (1 step)
are lowered into one network; a search-branch layer shares its weights with the template-branch
layer of the same module through ``attrs["params_from"]``.

IR layer names are ``"<branch>/<module path>"`` (``branch`` is ``template`` or ``search``); a
convolution emits ``…​.acc`` (the accumulators) and ``"<branch>/<path>"`` (the requantised output),
so every quantised module's output has an IR tensor of the same name
(:func:`module_outputs` records the float side under the same names).

Inputs: ``template_pixels`` [T, B, 3, Hz, Wz] and ``search_pixels`` [1, B, 3, H, W], uint8.
Outputs: the memories (``meta["memories"]``) and the head's ``score``, ``size`` (logits, before
the sigmoid) and ``offset`` maps at the stream exponent ``meta["frac"]``.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from spiketrack.model.hooks import ForwardHooks
from spiketrack.model.layers import MemoryBuild, Upsample
from spiketrack.model.mrm import MeanFusion
from spiketrack.quant.golden.arith import csd_terms
from spiketrack.quant.golden.memory import retrieval_shift
from spiketrack.quant.golden.neuron import LEVEL_BITS
from spiketrack.quant.golden.synapse import acc_bound
from spiketrack.quant.ir import IntegerNetwork, Layer, TensorType
from spiketrack.quant.qat import (QuantAvgPool, QuantConvBN, QuantNILIF, QuantPosEmbed, QuantResidual, QuantRetrieve,
                                  QuantUpsample, UnsupportedLayerError)

__all__ = ["lower", "module_outputs", "output_scale"]


class _Lowerer:
    def __init__(self, model: nn.Module):
        self.model = model
        self.fmt = model.quant_format
        self.paths = {id(m): p for p, m in model.named_modules()}
        self.layers: list[Layer] = []
        self.timesteps: dict[str, int] = {}
        self.shared: dict[int, str] = {}
        self.count: dict[str, int] = {}

    # ------------------------------------------------------------------ emit helpers
    def name(self, mod: nn.Module, branch: str, suffix: str = "") -> str:
        base = f"{branch}/{self.paths[id(mod)]}{suffix}"
        n = self.count.get(base, 0)
        self.count[base] = n + 1
        return base if n == 0 else f"{base}#{n}"

    def emit(self, name: str, op: str, inputs: list[str], T: int, attrs: dict | None = None,
             params: dict | None = None) -> str:
        self.layers.append(Layer(name, op, list(inputs), attrs or {}, params or {}))
        self.timesteps[name] = T
        return name

    def T(self, name: str) -> int:
        return self.timesteps[name]

    # ------------------------------------------------------------------ leaf modules
    def conv(self, mod: QuantConvBN, x: str, branch: str) -> str:
        c = mod.conv
        ip = mod.integer_params()
        w, b = ip["weight"], ip["bias"]
        d = 0 if mod.pixels else LEVEL_BITS
        bound = int(acc_bound(w, b, 255 if mod.pixels else 4).max())
        attrs = {"stride": c.stride[0], "padding": c.padding[0], "groups": c.groups,
                 "acc_bits": bound.bit_length() + 1, "weight_bits": mod.weight_bits,
                 "acc_exp": [e + d for e in ip["exp"]]}
        params = {}
        if id(mod) in self.shared:
            attrs["params_from"] = self.shared[id(mod)]
        else:
            if int(b.abs().max()) >= 2 ** 31:
                raise UnsupportedLayerError(f"{self.paths[id(mod)]}: bias does not fit int32")
            params = {"weight": w.numpy().astype(np.int8), "bias": b.numpy().astype(np.int32)}
        acc = self.emit(self.name(mod, branch, ".acc"), "stem_conv" if mod.pixels else "conv", [x], self.T(x),
                        attrs, params)
        self.shared.setdefault(id(mod), acc)
        shift = [e + d - self.fmt.frac for e in ip["exp"]]
        return self.emit(self.name(mod, branch), "requant", [acc], self.T(x), {"shift": shift, "bits": self.fmt.bits})

    def neuron(self, mod: QuantNILIF, x: str, branch: str) -> str:
        T = self.T(x)
        decays = [[list(term) for term in mod.shift_add(t).terms] for t in range(1, T)]
        return self.emit(self.name(mod, branch), "neuron", [x], T,
                         {"f_m": self.fmt.frac, "bits": self.fmt.bits, "decays": decays, "rounding": mod.rounding})

    def residual(self, mod: QuantResidual, x: str, y: str, branch: str) -> str:
        return self.emit(self.name(mod, branch), "add", [x, y], max(self.T(x), self.T(y)), {"bits": self.fmt.bits})

    def pos(self, mod: QuantPosEmbed, x: str, branch: str) -> str:
        with torch.no_grad():
            table = mod.table(branch, self.T(x)).double() * 2 ** self.fmt.frac
        value = table.round().to(torch.int64)
        if not torch.equal(value.double(), table):
            raise AssertionError("positional embedding is not on the stream grid")
        return self.emit(self.name(mod, branch), "add_const", [x], self.T(x), {"bits": self.fmt.bits},
                         {"value": value.numpy().astype(np.int32)})

    def pool(self, mod: nn.Module, x: str, branch: str) -> str:
        if isinstance(mod, nn.Identity):
            return x
        return self.emit(self.name(mod, branch), "avg_pool", [x], self.T(x), {"size": mod.p, "bits": self.fmt.bits})

    def upsample(self, mod: nn.Module, x: str, branch: str) -> str:
        if isinstance(mod, nn.Identity):
            return x
        if isinstance(mod, QuantUpsample):  # bilinear (§IS-13)
            return self.emit(self.name(mod, branch), "upsample_bilinear", [x], self.T(x),
                             {"factor": mod.p, "bits": self.fmt.bits})
        assert isinstance(mod, Upsample) and mod.mode == "nearest"
        return self.emit(self.name(mod, branch), "upsample", [x], self.T(x), {"factor": mod.p})

    def memory_build(self, mod: MemoryBuild, k: str, v: str, branch: str) -> str:
        return self.emit(self.name(mod, branch), "memory_build", [k, v], self.T(k), {"heads": mod.heads})

    def retrieve(self, mod: QuantRetrieve, q: str, m: str, branch: str) -> str:
        r = self.emit(self.name(mod, branch, ".acc"), "retrieve", [q, m], self.T(q), {"heads": mod.heads, "sigma": mod.sigma})
        if mod.mult != 1:  # a non-power-of-two scale m·2**-k (§IS-12): exact shift-add product, k joins the shift
            r = self.emit(self.name(mod, branch, ".scaled"), "mul_const", [r], self.T(q),
                          {"terms": csd_terms(mod.mult), "frac": mod.mult_frac})
        shift = retrieval_shift(mod.sigma + mod.mult_frac, self.fmt.frac)
        return self.emit(self.name(mod, branch), "requant", [r], self.T(q), {"shift": shift, "bits": self.fmt.bits})

    # ------------------------------------------------------------------ composite blocks
    def sepconv(self, m, x, br):
        x = self.neuron(m.sn1, x, br)
        x = self.neuron(m.sn2, self.conv(m.pw1, x, br), br)
        x = self.neuron(m.sn3, self.conv(m.dw, x, br), br)
        return self.conv(m.pw2, x, br)

    def mlp(self, m, x, br):
        h = self.neuron(m.sn2, self.conv(m.fc1, self.neuron(m.sn1, x, br), br), br)
        return self.conv(m.fc2, h, br)

    def convblock(self, m, x, br):
        x = self.residual(m.add_sep, x, self.sepconv(m.sep, x, br), br)
        h = self.neuron(m.sn2, self.conv(m.conv1, self.neuron(m.sn1, x, br), br), br)
        return self.residual(m.add_conv, x, self.conv(m.conv2, h, br), br)

    def attention(self, m, x, br):
        s = self.neuron(m.sn_in, self.pos(m.pos, x, br), br)
        q = self.neuron(m.sn_q, self.conv(m.q, s, br), br)
        k = self.neuron(m.sn_k, self.conv(m.k, s, br), br)
        v = self.neuron(m.sn_v, self.conv(m.v, s, br), br)
        a = self.retrieve(m.qm, q, self.memory_build(m.kv, k, v, br), br)
        return self.conv(m.proj, self.neuron(m.sn_a, a, br), br)

    def transformer(self, m, x, br):
        x = self.residual(m.add_sep, x, self.sepconv(m.sep, x, br), br)
        x = self.residual(m.add_attn, x, self.attention(m.attn, x, br), br)
        return self.residual(m.add_mlp, x, self.mlp(m.mlp, x, br), br)

    def unit(self, unit, x, br):
        from spiketrack.model.backbone import ConvBlock, Downsample, Stem, TransformerBlock

        if isinstance(unit, Stem):
            return self.conv(unit.conv, x, br)
        if isinstance(unit, Downsample):
            return self.conv(unit.conv, self.neuron(unit.sn, x, br), br)
        if isinstance(unit, ConvBlock):
            return self.convblock(unit, x, br)
        if isinstance(unit, TransformerBlock):
            return self.transformer(unit, x, br)
        raise UnsupportedLayerError(f"no lowering for backbone unit {type(unit).__name__}")

    def mrm_memory(self, m, z):
        br = "template"
        s = self.neuron(m.sn_h, self.pos(m.pos, self.pool(m.pool_template, z, br), br), br)
        k = self.neuron(m.sn_k, self.conv(m.k, s, br), br)
        v = self.neuron(m.sn_v, self.conv(m.v, s, br), br)
        return self.memory_build(m.kv, k, v, br)

    def mrm_search(self, m, x, mem, T):
        br = "search"
        q_pre = self.conv(m.q, self.neuron(m.sn_h, self.pos(m.pos, self.pool(m.pool_search, x, br), br), br), br)
        q_rep = self.emit(self.name(m, br, ".repeat"), "repeat_time", [q_pre], T, {"timesteps": T})
        q0 = self.neuron(m.sn_q, q_rep, br)
        r0 = self.neuron(m.sn_r, self.retrieve(m.retrieve0, q0, mem, br), br)
        parts = []
        for t in range(T):
            rt = self.emit(self.name(m, br, f".r0_t{t}"), "select_time", [r0], 1, {"start": t, "stop": t + 1})
            parts.append(self.conv(m.detail_dw[t], rt, br))
        d = self.neuron(m.sn_dw, self.emit(self.name(m, br, ".dw_cat"), "concat_time", parts, T), br)
        parts = []
        for t in range(T):
            dt = self.emit(self.name(m, br, f".d_t{t}"), "select_time", [d], 1, {"start": t, "stop": t + 1})
            parts.append(self.conv(m.detail_pw[t], dt, br))
        p = self.emit(self.name(m, br, ".pw_cat"), "concat_time", parts, T)
        q1 = self.neuron(m.sn_pw, self.residual(m.shortcut, q_pre, p, br), br)
        q1 = self.neuron(m.sn_f, self.conv(m.fuse, q1, br), br)
        s = self.neuron(m.sn_attn, self.retrieve(m.retrieve1, q1, mem, br), br)
        if T > 1:
            if not isinstance(m.fusion, MeanFusion):
                raise UnsupportedLayerError("only mean temporal fusion has an integer form")
            s = self.emit(self.name(m.fusion, br), "mean_fusion", [s], 1)
        x = self.residual(m.add, x, self.upsample(m.up, self.conv(m.proj, s, br), br), br)
        return self.residual(m.add_mlp, x, self.mlp(m.mlp, x, br), br)

    def head(self, h, x):
        br = "search"
        s = self.neuron(h.sn_in, x, br)
        outs = {}
        for key, branch in (("score", h.ctr), ("offset", h.offset), ("size", h.size)):
            y = s
            for conv, sn in zip(branch.convs, branch.sns):
                y = self.neuron(sn, self.conv(conv, y, br), br)
            outs[key] = self.conv(branch.out, y, br)
        return outs

    # ------------------------------------------------------------------ whole network
    def run(self) -> IntegerNetwork:
        model, cfg = self.model, self.model.cfg
        bb = model.backbone
        T = cfg.timesteps
        z, x = "template_pixels", "search_pixels"
        self.timesteps.update({z: T, x: 1})
        memories = []
        for unit, site in bb._units():
            if site is None:
                if z is not None:
                    z = self.unit(unit, z, "template")
                x = self.unit(unit, x, "search")
                continue
            if z is not None:
                memories.append(self.mrm_memory(bb.mrm[site], z))
                if len(memories) == len(bb.sites):
                    z = None
            x = self.mrm_search(bb.mrm[site], x, memories[site], T)
        heads = self.head(model.head, x)
        meta = {
            "config": cfg.name, "timesteps": T, "levels": cfg.levels, "frac": self.fmt.frac, "bits": self.fmt.bits,
            "weight_bits": self.fmt.weight_bits, "search_size": cfg.search_size, "template_size": cfg.template_size,
            "memories": memories, "score": heads["score"], "size": heads["size"], "offset": heads["offset"],
        }
        pixels = lambda t, size: TensorType((t, 3, size, size), "pixels", 8, False, 0)
        net = IntegerNetwork(list(self.layers), ["template_pixels", "search_pixels"],
                             memories + [heads["score"], heads["size"], heads["offset"]], meta,
                             {"template_pixels": pixels(T, cfg.template_size), "search_pixels": pixels(1, cfg.search_size)})
        net.validate()
        return net


def lower(qmodel: nn.Module) -> IntegerNetwork:
    """Lower a model from :func:`~spiketrack.quant.qat.quantize_model` to an integer network."""
    if not hasattr(qmodel, "quant_format"):
        raise UnsupportedLayerError("lower() needs a model from spiketrack.quant.qat.quantize_model")
    return _Lowerer(qmodel).run()


def output_scale(layer: Layer, frac: int) -> int:
    """``log2`` of the factor from a float module output to its IR integer tensor."""
    if layer.op in ("neuron", "mean_fusion"):
        return LEVEL_BITS
    if layer.op == "memory_build":
        return 2 * LEVEL_BITS
    return frac


class module_outputs(ForwardHooks):
    """Record every quantised module's float output under its IR layer name (context manager).

    ``with module_outputs(qmodel) as rec: qmodel(z, x)`` then ``rec.outputs[name]``.
    """

    KINDS = (QuantConvBN, QuantNILIF, QuantResidual, QuantPosEmbed, QuantAvgPool, QuantRetrieve, MemoryBuild,
             MeanFusion, Upsample)

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.outputs: dict[str, torch.Tensor] = {}

    def _hook(self, path: str):
        bb = self.model.backbone

        def hook(m, args, out):
            branch = bb.current_branch or "search"
            name, n = f"{branch}/{path}", 1
            while name in self.outputs:  # a module used twice in one branch: '#1', '#2', ... as the lowering
                name = f"{branch}/{path}#{n}"
                n += 1
            self.outputs[name] = out.detach()
        return hook
