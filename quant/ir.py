"""The integer network: an ordered list of integer layers and its versioned on-disk artifact.

This is the one data format between the layers of the project: ``quant`` writes it, the golden
executor and ``hw``/``sim`` read it. Every operation is defined in docs/integer_semantics.md.

On disk an artifact is a folder with two files:

* ``params.npz``: every integer tensor, keyed ``"<layer>/<param>"``;
* ``manifest.json``: format version, network metadata, the ordered layers (op, inputs, output,
  integer attributes, and for each parameter its dtype and shape), and the SHA-256 of
  ``params.npz``.

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

__all__ = ["FORMAT_VERSION", "OPS", "Layer", "IntegerNetwork", "ArtifactError", "save_artifact", "load_artifact"]

FORMAT_VERSION = 1

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
    "mean_fusion": "§IS-10 compare-only mean over timesteps",
    "repeat_time": "copy a one-step tensor to T timesteps (query expansion input)",
    "select_time": "take one timestep or a slice of the time axis (no arithmetic)",
    "concat_time": "stack one-step tensors along time (no arithmetic)",
}

_INT_DTYPES = {np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")}


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
    """

    layers: list[Layer]
    inputs: list[str]
    outputs: list[str]
    meta: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check ops, names, data flow and that every parameter is an integer array."""
        known = set(self.inputs)
        seen = set()
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
            src = layer.attrs.get("params_from")
            if src is not None and (src not in seen or src == layer.name or not self.layer(src).params):
                raise ArtifactError(f"layer {layer.name!r} shares parameters of {src!r}, which is not an earlier layer with parameters")
            known.add(layer.output)
        for out in self.outputs:
            if out not in known:
                raise ArtifactError(f"network output {out!r} is never produced")

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}")

    def params_of(self, layer: Layer) -> dict:
        """A layer's parameters, following ``attrs["params_from"]`` (weight sharing between branches)."""
        src = layer.attrs.get("params_from")
        return self.layer(src).params if src else layer.params


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


def load_artifact(directory: str | os.PathLike) -> IntegerNetwork:
    """Read and check an artifact; any inconsistency raises :class:`ArtifactError` naming it."""
    directory = Path(directory)
    mpath, ppath = directory / "manifest.json", directory / "params.npz"
    for p in (mpath, ppath):
        if not p.is_file():
            raise ArtifactError(f"integer-network artifact {directory}: missing {p.name}")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{mpath}: not valid JSON ({e})") from None
    if manifest.get("format") != "spiketrack-integer-network":
        raise ArtifactError(f"{mpath}: not a spiketrack integer-network manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise ArtifactError(f"{mpath}: artifact format version {manifest.get('version')} is not supported "
                            f"(this code reads version {FORMAT_VERSION}); re-run `spiketrack quantize`")
    blob = ppath.read_bytes()
    if hashlib.sha256(blob).hexdigest() != manifest.get("params_sha256"):
        raise ArtifactError(f"{ppath}: SHA-256 does not match the manifest (corrupted or from another artifact)")
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
    net = IntegerNetwork(layers, list(manifest["inputs"]), list(manifest["outputs"]), dict(manifest.get("meta", {})))
    net.validate()
    return net
