"""The integer network: an ordered list of integer layers and its versioned on-disk artifact.

This is the one data format between the layers of the project: ``quant`` writes it, the golden
executor and ``hw``/``sim`` read it. Every operation is defined in docs/integer_semantics.md.

On disk an artifact is a folder with two files:

* ``params.npz``: every integer tensor, keyed ``"<layer>/<param>"``;
* ``manifest.json``: format version, network metadata, the ordered layers (op, inputs, output,
  integer attributes, and for each parameter its dtype and shape), the type of every tensor
  (:class:`TensorType`: shape, timesteps, value kind, bits, signedness, exponent), and the SHA-256
  of ``params.npz``.

The IR is typed: every op kind has a declared attribute schema (:data:`OP_SCHEMAS`) and a type
rule, both checked by :meth:`IntegerNetwork.validate` (so on every save and load). The stored
types must equal the types the rules infer from the network inputs, so a manifest edited by hand
is refused by name.

Both files are written atomically (temporary file + rename), manifest last, so a reader never sees
a half-written artifact as valid.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spiketrack.atomic import write_bytes_atomic

__all__ = ["FORMAT_VERSION", "OPS", "OP_SCHEMAS", "KINDS", "TensorType", "Layer", "IntegerNetwork", "ArtifactError",
           "save_artifact", "load_artifact", "infer_types"]

#: 2: typed tensors and attribute schemas; retrieve carries ``sigma``. Version 1 artifacts are refused.
FORMAT_VERSION = 2

#: Every op the integer network may contain, with the section of the semantics doc defining it.
OPS = {
    "stem_conv": "§IS-11 bit-plane convolution on uint8 pixels",
    "conv": "§IS-4 k×k / grouped / depthwise / 1×1 convolution on spike levels",
    "requant": "§IS-5 shift with round-half-up and saturation",
    "add": "§IS-6 saturating residual add",
    "add_const": "§IS-6 saturating add of a constant tensor (positional embedding)",
    "neuron": "§IS-7 NI-LIF neuron over T timesteps",
    "memory_build": "§IS-8 M = Kᵀ V per head",
    "retrieve": "§IS-8 R = Q · M per head",
    "avg_pool": "§IS-10 power-of-two average pooling",
    "upsample": "§IS-10 nearest-neighbour upsampling",
    "upsample_bilinear": "§IS-13 bilinear upsampling by a power of two, requantised",
    "mul_const": "§IS-12 exact product by a shift-add constant (non-power-of-two scale)",
    "mean_fusion": "§IS-10 compare-only mean over timesteps",
    "repeat_time": "copy a one-step tensor to T timesteps (query expansion input)",
    "select_time": "take one timestep or a slice of the time axis (no arithmetic)",
    "concat_time": "stack one-step tensors along time (no arithmetic)",
}

_INT_DTYPES = {np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")}

#: Value kinds of IR tensors.
KINDS = {
    "pixels": "raw uint8 pixels (the stem's input, §IS-11)",
    "levels": "spike levels 0..D (§IS-1), exponent d",
    "stream": "fixed-point residual-stream / membrane-input values (§IS-2, §IS-5, §IS-6)",
    "acc": "accumulators of a synaptic or retrieval layer, before requantisation (§IS-4, §IS-8)",
    "memory": "template memories M = KᵀV, [T, heads, d_h, d_v], unsigned (§IS-8)",
}


@dataclass(frozen=True)
class TensorType:
    """Type of one IR tensor (the batch axis is not part of it).

    Parameters
    ----------
    shape : time-first shape: ``(T, C, H, W)`` for feature maps, ``(T, heads, d_h, d_v)`` for memories.
    kind : one of :data:`KINDS`.
    bits : storage width in bits (two's complement when ``signed``).
    signed : whether values may be negative.
    exp : fractional exponent: one int per tensor, or one per channel (a tuple) for accumulators.
    """

    shape: tuple
    kind: str
    bits: int
    signed: bool
    exp: int | tuple

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        if isinstance(self.exp, (list, tuple)):
            exps = tuple(int(v) for v in self.exp)
            object.__setattr__(self, "exp", exps[0] if len(set(exps)) == 1 else exps)
        if self.kind not in KINDS:
            raise ArtifactError(f"tensor kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def timesteps(self) -> int:
        return self.shape[0]

    @property
    def elements(self) -> int:
        """Elements per timestep."""
        return int(np.prod(self.shape[1:]))

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "kind": self.kind, "bits": self.bits, "signed": self.signed,
                "exp": list(self.exp) if isinstance(self.exp, tuple) else self.exp}

    @classmethod
    def from_json(cls, d: dict) -> "TensorType":
        try:
            return cls(tuple(d["shape"]), d["kind"], int(d["bits"]), bool(d["signed"]),
                       tuple(d["exp"]) if isinstance(d["exp"], list) else int(d["exp"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"malformed tensor type {d!r} ({e})") from None


# ---------------------------------------------------------------------------------------------
# attribute schemas: attr name -> (kind, required). Kinds: int, bool, str, ints (list of int),
# int_or_ints, decays (list per timestep of [[sign, shift], ...]), terms ([[sign, shift], ...]).

_CONV_ATTRS = {"stride": ("int", True), "padding": ("int", True), "groups": ("int", True),
               "acc_bits": ("int", True), "weight_bits": ("int", True), "acc_exp": ("ints", True),
               "params_from": ("str", False)}
OP_SCHEMAS: dict[str, dict[str, tuple[str, bool]]] = {
    "stem_conv": _CONV_ATTRS,
    "conv": _CONV_ATTRS,
    "requant": {"shift": ("int_or_ints", True), "bits": ("int", True)},
    "add": {"bits": ("int", True)},
    "add_const": {"bits": ("int", True)},
    "neuron": {"f_m": ("int", True), "bits": ("int", True), "decays": ("decays", True), "rounding": ("str", False)},
    "memory_build": {"heads": ("int", True)},
    "retrieve": {"heads": ("int", True), "sigma": ("int", True)},
    "avg_pool": {"size": ("int", True), "bits": ("int", True)},
    "upsample": {"factor": ("int", True)},
    "upsample_bilinear": {"factor": ("int", True), "bits": ("int", True)},
    "mul_const": {"terms": ("terms", True), "frac": ("int", True)},
    "mean_fusion": {},
    "repeat_time": {"timesteps": ("int", True)},
    "select_time": {"start": ("int", True), "stop": ("int", True)},
    "concat_time": {},
}
#: Parameters each op must carry (a layer with ``params_from`` carries none).
OP_PARAMS = {"stem_conv": ("weight", "bias"), "conv": ("weight", "bias"), "add_const": ("value",)}


def _attr_ok(kind: str, v) -> bool:
    is_int = isinstance(v, int) and not isinstance(v, bool)
    if kind == "int":
        return is_int
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "str":
        return isinstance(v, str)
    if kind == "ints":
        return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    if kind == "int_or_ints":
        return is_int or _attr_ok("ints", v)
    if kind == "terms":
        return isinstance(v, list) and len(v) >= 1 and all(
            _attr_ok("ints", t) and len(t) == 2 and t[0] in (1, -1) and t[1] >= 0 for t in v)
    if kind == "decays":
        return isinstance(v, list) and all(
            isinstance(d, list) and 1 <= len(d) <= 2 and all(_attr_ok("ints", t) and len(t) == 2 for t in d) for d in v)
    raise AssertionError(kind)


def _check_schema(layer: "Layer") -> None:
    schema = OP_SCHEMAS[layer.op]
    for name, value in layer.attrs.items():
        if name not in schema:
            raise ArtifactError(f"layer {layer.name!r} ({layer.op}): unknown attribute {name!r} "
                                f"(schema: {', '.join(schema) or 'none'})")
        if not _attr_ok(schema[name][0], value):
            raise ArtifactError(f"layer {layer.name!r} ({layer.op}): attribute {name!r} = {value!r} "
                                f"is not of schema kind {schema[name][0]!r}")
    for name, (_kind, required) in schema.items():
        if required and name not in layer.attrs:
            raise ArtifactError(f"layer {layer.name!r} ({layer.op}): required attribute {name!r} is missing")


# ---------------------------------------------------------------------------------------------
# type rules

def _bits_unsigned(v: int) -> int:
    return max(1, int(v).bit_length())


def _infer(layer: "Layer", params: dict, args: list[TensorType]) -> TensorType:
    """The output type of ``layer`` from its inputs' types (raises ArtifactError on a mismatch)."""
    from spiketrack.quant.golden.neuron import LEVEL_BITS, D

    a, op, name = layer.attrs, layer.op, layer.name

    def need(i: int, *kinds: str) -> TensorType:
        if args[i].kind not in kinds:
            raise ArtifactError(f"layer {name!r} ({op}) input {i} ({layer.inputs[i]!r}) is {args[i].kind}, "
                                f"expected {' or '.join(kinds)}")
        return args[i]

    if op in ("stem_conv", "conv"):
        x = need(0, "pixels" if op == "stem_conv" else "levels")
        w = params["weight"]
        co, cig, kh, kw = w.shape
        t, c, h, wd = x.shape
        if c != cig * a["groups"]:
            raise ArtifactError(f"layer {name!r}: input has {c} channels, weights expect {cig} x {a['groups']} groups")
        ho = (h + 2 * a["padding"] - kh) // a["stride"] + 1
        wo = (wd + 2 * a["padding"] - kw) // a["stride"] + 1
        if len(a["acc_exp"]) != co:
            raise ArtifactError(f"layer {name!r}: acc_exp has {len(a['acc_exp'])} entries for {co} output channels")
        return TensorType((t, co, ho, wo), "acc", a["acc_bits"], True, tuple(a["acc_exp"]))
    if op == "requant":
        x = need(0, "acc", "stream")
        shift = a["shift"]
        exps = x.exp if isinstance(x.exp, tuple) else (x.exp,) * x.shape[1]
        shifts = shift if isinstance(shift, list) else [shift] * len(exps)
        if len(shifts) != len(exps):
            raise ArtifactError(f"layer {name!r}: {len(shifts)} shifts for {len(exps)} channels")
        return TensorType(x.shape, "stream", a["bits"], True, tuple(e - s for e, s in zip(exps, shifts)))
    if op == "add":
        x, y = need(0, "stream"), need(1, "stream")
        if x.shape[1:] != y.shape[1:] or x.exp != y.exp:
            raise ArtifactError(f"layer {name!r}: adds {x.shape} at exponent {x.exp} and {y.shape} at exponent {y.exp}")
        return TensorType((max(x.shape[0], y.shape[0]), *x.shape[1:]), "stream", a["bits"], True, x.exp)
    if op == "add_const":
        x = need(0, "stream")
        vshape = params["value"].shape
        if len(vshape) != 5 or vshape[0] != x.shape[0] or tuple(vshape[2:]) != x.shape[1:]:
            raise ArtifactError(f"layer {name!r}: constant of shape {tuple(vshape)} does not fit {x.shape}")
        return TensorType(x.shape, "stream", a["bits"], True, x.exp)
    if op == "neuron":
        x = need(0, "stream")
        if x.exp != a["f_m"]:
            raise ArtifactError(f"layer {name!r}: input exponent {x.exp} is not the membrane exponent f_m={a['f_m']}")
        if a.get("rounding", "half_up") not in ("half_up", "half_even"):
            raise ArtifactError(f"layer {name!r}: rounding {a['rounding']!r} is not half_up or half_even")
        if len(a["decays"]) < x.shape[0] - 1:
            raise ArtifactError(f"layer {name!r}: {x.shape[0]} timesteps need {x.shape[0] - 1} decays")
        return TensorType(x.shape, "levels", LEVEL_BITS + 1, False, LEVEL_BITS)
    if op == "memory_build":
        k, v = need(0, "levels"), need(1, "levels")
        h = a["heads"]
        if k.shape[0] != v.shape[0] or k.shape[2:] != v.shape[2:] or k.shape[1] % h or v.shape[1] % h:
            raise ArtifactError(f"layer {name!r}: K {k.shape} and V {v.shape} do not form {h} heads")
        n = int(np.prod(k.shape[2:]))
        return TensorType((k.shape[0], h, k.shape[1] // h, v.shape[1] // h), "memory", _bits_unsigned(D * D * n),
                          False, 2 * LEVEL_BITS)
    if op == "retrieve":
        q, m = need(0, "levels"), need(1, "memory")
        if q.shape[0] != m.shape[0] or q.shape[1] != m.shape[1] * m.shape[2]:
            raise ArtifactError(f"layer {name!r}: query {q.shape} does not match memory {m.shape}")
        mmax = 2 ** m.bits - 1  # every memory word holds at most this (>= D²·N)
        return TensorType((q.shape[0], m.shape[1] * m.shape[3], *q.shape[2:]), "acc",
                          _bits_unsigned(D * mmax * m.shape[2]), False, 3 * LEVEL_BITS + a["sigma"])
    if op == "avg_pool":
        x = need(0, "stream")
        p = a["size"]
        if p < 1 or p & (p - 1) or x.shape[2] % p or x.shape[3] % p:
            raise ArtifactError(f"layer {name!r}: pooling {p} does not divide {x.shape}")
        return TensorType((x.shape[0], x.shape[1], x.shape[2] // p, x.shape[3] // p), "stream", a["bits"], True, x.exp)
    if op == "upsample":
        x = args[0]
        f = a["factor"]
        return TensorType((x.shape[0], x.shape[1], x.shape[2] * f, x.shape[3] * f), x.kind, x.bits, x.signed, x.exp)
    if op == "upsample_bilinear":
        x = need(0, "stream")
        f = a["factor"]
        if f < 2 or f & (f - 1):
            raise ArtifactError(f"layer {name!r}: bilinear factor {f} is not a power of two >= 2")
        return TensorType((x.shape[0], x.shape[1], x.shape[2] * f, x.shape[3] * f), "stream", a["bits"], True, x.exp)
    if op == "mul_const":
        x = need(0, "acc", "stream")
        m = sum(sign << shift for sign, shift in a["terms"])
        if m < 1:
            raise ArtifactError(f"layer {name!r}: shift-add constant {a['terms']} is {m}, not >= 1")
        exps = x.exp if isinstance(x.exp, tuple) else (x.exp,)
        return TensorType(x.shape, "acc", x.bits + m.bit_length(), x.signed, tuple(e + a["frac"] for e in exps))
    if op == "mean_fusion":
        x = need(0, "levels")
        return TensorType((1, *x.shape[1:]), "levels", x.bits, False, x.exp)
    if op == "repeat_time":
        x = args[0]
        if x.shape[0] != 1:
            raise ArtifactError(f"layer {name!r}: repeat_time needs a one-step input, got T={x.shape[0]}")
        return TensorType((a["timesteps"], *x.shape[1:]), x.kind, x.bits, x.signed, x.exp)
    if op == "select_time":
        x = args[0]
        if not 0 <= a["start"] < a["stop"] <= x.shape[0]:
            raise ArtifactError(f"layer {name!r}: time slice {a['start']}:{a['stop']} outside T={x.shape[0]}")
        return TensorType((a["stop"] - a["start"], *x.shape[1:]), x.kind, x.bits, x.signed, x.exp)
    if op == "concat_time":
        first = args[0]
        for x in args[1:]:
            if (x.shape[1:], x.kind, x.bits, x.exp) != (first.shape[1:], first.kind, first.bits, first.exp):
                raise ArtifactError(f"layer {name!r}: concatenates tensors of different types ({first} vs {x})")
        return TensorType((sum(x.shape[0] for x in args), *first.shape[1:]), first.kind, first.bits, first.signed, first.exp)
    raise ArtifactError(f"layer {name!r}: no type rule for op {op!r}")


class ArtifactError(ValueError):
    """A broken, corrupted, mismatched or unsupported integer-network artifact."""


@dataclass
class Layer:
    """One integer layer.

    Parameters
    ----------
    name : unique layer name.
    op : one of :data:`OPS`.
    inputs : names of the tensors it reads (network inputs or earlier layers' outputs).
    attrs : integer attributes (shifts, widths, stride, …): ints, bools, strings, lists of ints.
    params : integer numpy arrays (weights, biases, constants).
    """

    name: str
    op: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def output(self) -> str:
        """A layer's output tensor carries the layer's name."""
        return self.name


@dataclass
class IntegerNetwork:
    """An ordered list of :class:`Layer` with named inputs and outputs.

    Parameters
    ----------
    layers : in execution order; a layer may only read network inputs or earlier outputs.
    inputs : network input names (e.g. ``"template_pixels"``, ``"search_pixels"``).
    outputs : names of the tensors the network returns.

    A layer whose ``attrs["params_from"]`` names an earlier layer uses that layer's parameters
    (the template and search branches share weights).
    meta : JSON-serialisable metadata (variant name, D, timesteps, source checkpoint, …).
    input_types : the :class:`TensorType` of every network input; every other tensor's type is
        inferred from them by the op rules (:attr:`types`).
    """

    layers: list[Layer]
    inputs: list[str]
    outputs: list[str]
    meta: dict = field(default_factory=dict)
    input_types: dict[str, TensorType] = field(default_factory=dict)

    @property
    def types(self) -> dict[str, TensorType]:
        """Every tensor's type (inputs and layer outputs), by the op type rules."""
        return infer_types(self)

    def validate(self) -> None:
        """Check ops, names, data flow and that every parameter is an integer array."""
        known = set(self.inputs)
        seen = set()
        missing = [n for n in self.inputs if n not in self.input_types]
        if missing:
            raise ArtifactError(f"network input {missing[0]!r} has no type (IntegerNetwork.input_types)")
        for layer in self.layers:
            if layer.op not in OPS:
                raise ArtifactError(f"layer {layer.name!r}: unsupported op {layer.op!r} (supported: {', '.join(sorted(OPS))})")
            if layer.name in seen or layer.name in self.inputs:
                raise ArtifactError(f"layer name {layer.name!r} is used twice")
            seen.add(layer.name)
            for src in layer.inputs:
                if src not in known:
                    raise ArtifactError(f"layer {layer.name!r} reads {src!r}, which no earlier layer or input produces")
            for pname, arr in layer.params.items():
                if not isinstance(arr, np.ndarray) or arr.dtype not in _INT_DTYPES:
                    dtype = getattr(arr, "dtype", type(arr).__name__)
                    raise ArtifactError(f"layer {layer.name!r} parameter {pname!r} must be an integer array, got {dtype}")
            for aname, value in layer.attrs.items():
                _check_attr(layer.name, aname, value)
            _check_schema(layer)
            src = layer.attrs.get("params_from")
            if src is not None and (src not in seen or src == layer.name or not self.layer(src).params):
                raise ArtifactError(f"layer {layer.name!r} shares parameters of {src!r}, which is not an earlier layer with parameters")
            if src is None:
                lacking = [p for p in OP_PARAMS.get(layer.op, ()) if p not in layer.params]
                if lacking:
                    raise ArtifactError(f"layer {layer.name!r} ({layer.op}) has no parameter {lacking[0]!r}")
            known.add(layer.output)
        for out in self.outputs:
            if out not in known:
                raise ArtifactError(f"network output {out!r} is never produced")
        infer_types(self)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}")

    def params_of(self, layer: Layer) -> dict:
        """A layer's parameters, following ``attrs["params_from"]`` (weight sharing between branches)."""
        src = layer.attrs.get("params_from")
        return self.layer(src).params if src else layer.params


def infer_types(net: IntegerNetwork) -> dict[str, TensorType]:
    """Types of all tensors of ``net``, inferred in layer order from ``net.input_types``."""
    types = dict(net.input_types)
    for layer in net.layers:
        try:
            args = [types[i] for i in layer.inputs]
        except KeyError as e:
            raise ArtifactError(f"layer {layer.name!r} reads {e.args[0]!r}, which has no type yet") from None
        types[layer.name] = _infer(layer, net.params_of(layer), args)
    return types


def _check_attr(layer: str, name: str, value) -> None:
    if isinstance(value, float):
        raise ArtifactError(f"layer {layer!r} attribute {name!r} is a float ({value}); the integer network holds no floats")
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_attr(layer, name, v)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_attr(layer, f"{name}.{k}", v)
    elif not isinstance(value, (int, bool, str)) and value is not None:
        raise ArtifactError(f"layer {layer!r} attribute {name!r} has unsupported type {type(value).__name__}")


def save_artifact(net: IntegerNetwork, directory: str | os.PathLike) -> Path:
    """Validate ``net`` and write it to ``directory`` (created if needed) atomically."""
    net.validate()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"{layer.name}/{p}": arr for layer in net.layers for p, arr in layer.params.items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    manifest = {
        "format": "spiketrack-integer-network",
        "version": FORMAT_VERSION,
        "params_sha256": hashlib.sha256(blob).hexdigest(),
        "meta": net.meta,
        "inputs": net.inputs,
        "outputs": net.outputs,
        "tensors": {name: t.to_json() for name, t in net.types.items()},
        "layers": [
            {
                "name": layer.name,
                "op": layer.op,
                "inputs": layer.inputs,
                "attrs": layer.attrs,
                "params": {p: {"dtype": str(a.dtype), "shape": list(a.shape)} for p, a in layer.params.items()},
            }
            for layer in net.layers
        ],
    }
    write_bytes_atomic(directory / "params.npz", blob)
    write_bytes_atomic(directory / "manifest.json", json.dumps(manifest, indent=1).encode())
    return directory


def read_manifest(directory, manifest_name: str, blob_name: str, *, fmt: str, version: int, sha_key: str,
                  error=ValueError, what: str, rerun: str) -> tuple[dict, bytes, Path, Path]:
    """The checked JSON manifest and data blob of a versioned, hash-checked artifact folder.

    Shared by the integer-network artifact and the compiled artifact: missing files, broken JSON,
    another format, another version (naming it and the command that rewrites it) and a blob whose
    SHA-256 is not the manifest's each raise ``error`` naming the file.
    """
    directory = Path(directory)
    mpath, ppath = directory / manifest_name, directory / blob_name
    for p in (mpath, ppath):
        if not p.is_file():
            raise error(f"{what} {directory}: missing {p.name}")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{mpath}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise error(f"{mpath}: not a {fmt} manifest")
    if manifest.get("version") != version:
        raise error(f"{mpath}: {what} format version {manifest.get('version')} is not supported "
                    f"(this code reads version {version}); re-run `{rerun}`")
    blob = ppath.read_bytes()
    if hashlib.sha256(blob).hexdigest() != manifest.get(sha_key):
        raise error(f"{ppath}: SHA-256 does not match {mpath.name} (corrupted, changed or from another artifact)")
    return manifest, blob, mpath, ppath


def load_artifact(directory: str | os.PathLike) -> IntegerNetwork:
    """Read and check an artifact; any inconsistency raises :class:`ArtifactError` naming it."""
    manifest, blob, mpath, ppath = read_manifest(
        directory, "manifest.json", "params.npz", fmt="spiketrack-integer-network", version=FORMAT_VERSION,
        sha_key="params_sha256", error=ArtifactError, what="integer-network artifact",
        rerun="spiketrack quantize (format 2: typed tensors)")
    try:
        arrays = dict(np.load(io.BytesIO(blob), allow_pickle=False))
    except Exception as e:  # numpy raises several types for broken zips
        raise ArtifactError(f"{ppath}: cannot read ({e})") from None
    layers = []
    for spec in manifest["layers"]:
        params = {}
        for pname, info in spec.get("params", {}).items():
            key = f"{spec['name']}/{pname}"
            if key not in arrays:
                raise ArtifactError(f"{ppath}: parameter {key!r} listed in the manifest is missing")
            arr = arrays[key]
            if str(arr.dtype) != info["dtype"] or list(arr.shape) != info["shape"]:
                raise ArtifactError(f"{ppath}: parameter {key!r} is {arr.dtype}{list(arr.shape)}, "
                                    f"manifest says {info['dtype']}{info['shape']}")
            params[pname] = arr
        layers.append(Layer(spec["name"], spec["op"], list(spec["inputs"]), dict(spec.get("attrs", {})), params))
    try:
        stored = {name: TensorType.from_json(t) for name, t in manifest["tensors"].items()}
    except (KeyError, AttributeError):
        raise ArtifactError(f"{mpath}: manifest has no tensor types") from None
    net = IntegerNetwork(layers, list(manifest["inputs"]), list(manifest["outputs"]), dict(manifest.get("meta", {})),
                         {n: stored[n] for n in manifest["inputs"] if n in stored})
    net.validate()
    inferred = net.types
    for name in sorted(set(stored) | set(inferred)):
        if stored.get(name) != inferred.get(name):
            raise ArtifactError(f"{mpath}: tensor {name!r} is stored as {stored.get(name)} but its layers make "
                                f"{inferred.get(name)} (edited or from another network)")
    return net
