"""The authors' SpikeTrack checkpoints: key map, import and export (``spiketrack import``).

An official checkpoint stores the model under ``net`` with the authors' key names
(``encoder.*`` backbone and MRMs, ``decoder.*`` head). Every official tensor maps to one tensor of
our paper variant of the same name (``paper-s256-t1`` ...), with four layout differences:

==============================================  ===============================================
official                                         ours
==============================================  ===============================================
``Conv1d`` weights ``(out, in, 1)`` in the MLPs  ``Conv2d`` weights ``(out, in, 1, 1)`` (reshape,
                                                 same element order)
``s_pos_embed`` ``(1, C, N)``                    ``pos_embed_search`` ``(1, C, h, w)``
``t_pos_embeds.<j>`` ``(1, C, N)``               slot ``j`` of ``pos_embed_template`` ``(4, C, h, w)``
``decay`` ``(3,)`` per neuron                    ``decay_logit`` ``(2,)``: entries 0 and 1 (the only
                                                 ones used at T <= 3); entry 2 is kept in the
                                                 checkpoint's ``extra["official"]["decay_slot2"]``
                                                 so that the export gives the file back exactly
==============================================  ===============================================

Two of our tensors have no official tensor of their own: the MRM retrieval neuron ``sn_r``
is the official query neuron ``q_spike`` applied a second time, so it gets a copy of
``q_spike.decay`` (the export requires the two to be equal); and the ``num_batches_tracked``
counters of the BatchNorm layers that the official backbone freezes (it has no counter there)
are set to 0 (eval never reads them).

The importer refuses, naming the first offending key and its shape, when the file holds a key the
map does not know, lacks one it needs, or has a tensor of another shape or dtype; it names the
variant the file does fit when there is one. Files that ``torch.load(..., weights_only=True)``
refuses are loaded only with ``trust_pickle=True``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from spiketrack.cli import UserError

OFFICIAL_FORMAT = "official-spiketrack"
OFFICIAL_ROUNDING = "half_even"  #: the reference NI-LIF rounds with torch.round (ties to even)
OFFICIAL_DECAY_SLOTS = 3
FROZEN_BN_COUNTER = "num_batches_tracked"
_STAGE_DOWN = ("downsample1_2", "downsample2", "downsample3", "downsample4")


@dataclass(frozen=True)
class Entry:
    """One official tensor and the tensor of ours it fills.

    ``kind``: ``"tensor"`` (reshape between ``official_shape`` and ours), ``"slot"`` (slot
    ``slot`` of ours), ``"decay"`` (entries 0..1 of the official ``decay``), ``"tied"`` (a copy
    of an official tensor that another entry already uses) or ``"fill"`` (ours only, set to 0).
    """

    official: str | None
    ours: str
    kind: str
    official_shape: tuple
    slot: int = 0


class _Mapper:
    """Builds the entry list for one paper variant from our state-dict shapes."""

    def __init__(self, shapes: dict[str, tuple]):
        self.shapes = shapes
        self.entries: list[Entry] = []

    def tensor(self, off: str, ours: str, official_shape: tuple | None = None) -> None:
        self.entries.append(Entry(off, ours, "tensor", tuple(official_shape or self.shapes[ours])))

    def neuron(self, off: str, ours: str) -> None:
        self.entries.append(Entry(f"{off}.decay", f"{ours}.decay_logit", "decay", (OFFICIAL_DECAY_SLOTS,)))

    def tied_neuron(self, off: str, ours: str) -> None:
        self.entries.append(Entry(f"{off}.decay", f"{ours}.decay_logit", "tied", (OFFICIAL_DECAY_SLOTS,)))

    def conv_bn(self, conv: str, bn: str, ours: str, *, conv1d: bool = False, tracked: bool = False) -> None:
        """Conv (+bias when ours has one) and its BatchNorm; ``tracked``: the official BN is trainable."""
        w = self.shapes[f"{ours}.conv.weight"]
        self.tensor(f"{conv}.weight", f"{ours}.conv.weight", w[:-1] if conv1d else w)
        if f"{ours}.conv.bias" in self.shapes:
            self.tensor(f"{conv}.bias", f"{ours}.conv.bias")
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.tensor(f"{bn}.{name}", f"{ours}.bn.{name}")
        if tracked:
            self.tensor(f"{bn}.{FROZEN_BN_COUNTER}", f"{ours}.bn.{FROZEN_BN_COUNTER}")
        else:
            self.entries.append(Entry(None, f"{ours}.bn.{FROZEN_BN_COUNTER}", "fill", ()))

    def seq_conv(self, off: str, ours: str, tracked: bool = False) -> None:
        """An official ``Sequential(conv, bn)`` (``off.0``, ``off.1``)."""
        self.conv_bn(f"{off}.0", f"{off}.1", ours, tracked=tracked)

    def plain(self, off: str, ours: str) -> None:
        for name in ("weight", "bias"):
            self.tensor(f"{off}.{name}", f"{ours}.{name}")

    def pos(self, off: str, ours: str, slots: int) -> None:
        s = self.shapes[f"{ours}.pos_embed_search"]
        self.tensor(f"{off}.s_pos_embed", f"{ours}.pos_embed_search", (1, s[1], s[2] * s[3]))
        t = self.shapes[f"{ours}.pos_embed_template"]
        for j in range(slots):
            self.entries.append(Entry(f"{off}.t_pos_embeds.{j}", f"{ours}.pos_embed_template", "slot",
                                      (1, t[1], t[2] * t[3]), j))

    # ---------------------------------------------------------------- blocks
    def sepconv(self, off: str, ours: str) -> None:
        for i, (conv, name) in enumerate((("pwconv1", "pw1"), ("dwconv", "dw"), ("pwconv2", "pw2")), 1):
            self.neuron(f"{off}.spike{i}", f"{ours}.sn{i}")
            self.seq_conv(f"{off}.{conv}", f"{ours}.{name}")

    def convblock(self, off: str, ours: str) -> None:
        self.sepconv(f"{off}.Conv", f"{ours}.sep")
        for i in (1, 2):
            self.neuron(f"{off}.spike{i}", f"{ours}.sn{i}")
            self.conv_bn(f"{off}.conv{i}", f"{off}.bn{i}", f"{ours}.conv{i}")

    def mlp(self, off: str, ours: str, tracked: bool) -> None:
        for i in (1, 2):
            self.neuron(f"{off}.fc{i}_spike", f"{ours}.sn{i}")
            self.conv_bn(f"{off}.fc{i}_conv", f"{off}.fc{i}_bn", f"{ours}.fc{i}", conv1d=True, tracked=tracked)

    def block(self, off: str, ours: str, slots: int) -> None:
        self.sepconv(f"{off}.conv", f"{ours}.sep")
        a, oa = f"{off}.attn", f"{ours}.attn"
        self.pos(a, f"{oa}.pos", slots)
        for spike, sn in (("head", "sn_in"), ("q", "sn_q"), ("k", "sn_k"), ("v", "sn_v"), ("attn", "sn_a")):
            self.neuron(f"{a}.{spike}_spike", f"{oa}.{sn}")
        for conv in ("q", "k", "v", "proj"):
            self.seq_conv(f"{a}.{conv}_conv", f"{oa}.{conv}")
        self.mlp(f"{off}.mlp", f"{ours}.mlp", tracked=False)

    def mrm(self, i: int, T: int, slots: int) -> None:
        r, o = f"encoder.mrm.{i}.retriever", f"backbone.mrm.{i}"
        self.pos(r, f"{o}.pos", slots)
        for spike, sn in (("head", "sn_h"), ("q", "sn_q"), ("k", "sn_k"), ("v", "sn_v"), ("attn", "sn_attn"),
                          ("seg_dw", "sn_dw"), ("seg_pw", "sn_pw"), ("fuser", "sn_f"), ("gate", "fusion.sn_gate")):
            self.neuron(f"{r}.{spike}_spike", f"{o}.{sn}")
        self.tied_neuron(f"{r}.q_spike", f"{o}.sn_r")
        for conv in ("q", "k", "v", "proj"):
            self.seq_conv(f"{r}.{conv}_conv", f"{o}.{conv}", tracked=True)
        self.seq_conv(f"{r}.fuser", f"{o}.fuse", tracked=True)
        for t in range(T):
            self.seq_conv(f"{r}.seg_responder_dw.{t}", f"{o}.detail_dw.{t}", tracked=True)
            self.seq_conv(f"{r}.seg_responder_pw.{t}", f"{o}.detail_pw.{t}", tracked=True)
        self.plain(f"{r}.gate.mlp.0", f"{o}.fusion.fc1")
        self.neuron(f"{r}.gate.mlp.1", f"{o}.fusion.sn")
        self.plain(f"{r}.gate.mlp.2", f"{o}.fusion.fc2")
        self.mlp(f"encoder.mrm.{i}.mlp", f"{o}.mlp", tracked=True)

    def head(self) -> None:
        self.neuron("decoder.spike", "head.sn_in")
        for branch in ("ctr", "offset", "size"):
            for i in range(4):
                self.seq_conv(f"decoder.conv{i + 1}_{branch}", f"head.{branch}.convs.{i}", tracked=True)
                self.neuron(f"decoder.{branch}{i + 1}_spike", f"head.{branch}.sns.{i}")
            self.plain(f"decoder.conv5_{branch}", f"head.{branch}.out")


def _check_paper(cfg) -> None:
    from spiketrack.model.configs import get_config

    try:
        ref = get_config(cfg.name.removesuffix("-ann")) if cfg.name.startswith("paper-") else None
    except ValueError:
        ref = None
    if ref is None or cfg.ann or any(getattr(cfg, f) != getattr(ref, f) for f in
                                     ("dims", "depths", "mrm_sites", "heads", "head_channels", "search_size",
                                      "timesteps", "fusion", "pos_slots", "stem_block")):
        raise UserError(f"config {cfg.name!r} has no official counterpart; official checkpoints import into the "
                        "spiking paper variants paper-{s256,b256,b384}-{t1,t3}")


def our_shapes(cfg) -> dict[str, tuple]:
    """Our state-dict shapes for ``cfg`` (built on the meta device: no memory, no init time)."""
    from spiketrack.model.configs import get_config

    return dict(_our_shapes(get_config(cfg)))


@functools.lru_cache(maxsize=16)
def _our_shapes(cfg) -> tuple:
    from spiketrack.model.spiketrack import build_model

    with torch.device("meta"):
        model = build_model(cfg)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def key_map(cfg) -> list[Entry]:
    """Every official tensor of paper variant ``cfg`` and the tensor of ours it fills."""
    from spiketrack.model.configs import get_config

    return list(_key_map(get_config(cfg)))


@functools.lru_cache(maxsize=16)
def _key_map(cfg) -> tuple:
    _check_paper(cfg)
    m = _Mapper(our_shapes(cfg))
    slots = cfg.pos_slots
    m.conv_bn("encoder.downsample1_1.encode_conv", "encoder.downsample1_1.encode_bn", "backbone.stem.conv")
    m.convblock("encoder.ConvBlock1_1.0", "backbone.stem_block")
    for i in range(4):
        down, ours = f"encoder.{_STAGE_DOWN[i]}", f"backbone.stages.{i}"
        m.conv_bn(f"{down}.encode_conv", f"{down}.encode_bn", f"{ours}.down.conv")
        m.neuron(f"{down}.encode_spike", f"{ours}.down.sn")
        for k in range(cfg.depths[i]):
            ob = f"{ours}.blocks.{k}"
            if i == 0:
                m.convblock(f"encoder.ConvBlock1_2.{k}", ob)
            elif i == 1:
                m.convblock(f"encoder.ConvBlock2_{k + 1}.0", ob)
            else:
                m.block(f"encoder.block{i + 1}.{k}", ob, slots)
    for i in range(len(cfg.mrm_sites)):
        m.mrm(i, cfg.timesteps, slots)
    m.head()
    return tuple(m.entries)


def official_shapes(cfg) -> dict[str, tuple]:
    """``{official key: shape}`` of paper variant ``cfg`` (what its checkpoints hold under ``net``)."""
    return {e.official: e.official_shape for e in key_map(cfg) if e.kind in ("tensor", "slot", "decay")}


# -------------------------------------------------------------------------- reading
def read_official(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The ``net`` state dict of an official checkpoint file; UserError on anything else.

    ``torch.load(weights_only=True)`` first. A file it refuses because it holds Python objects
    (trainer settings, optimizer classes ...) is unpickled only when ``trust_pickle``.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"official checkpoint not found: {p}")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise UserError(f"official checkpoint {p} is corrupted or truncated ({_first_line(e)})") from None
        if not trust_pickle:
            raise UserError(
                f"official checkpoint {p} holds Python objects besides tensors, which the safe loader "
                f"(torch.load weights_only=True) refuses: {_refused_global(e)}. Unpickling them runs code named "
                "in the file; if you trust where it came from, run again with --trust-pickle") from None
        try:
            ck = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as e2:  # noqa: BLE001 - any unpickling failure is the file's fault
            raise UserError(f"official checkpoint {p} could not be unpickled ({_first_line(e2)})") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, not a torch file, ...
        raise UserError(f"official checkpoint {p} is corrupted or truncated ({_first_line(e)})") from None
    if isinstance(ck, dict) and "net" in ck:
        sd = ck["net"]
    elif isinstance(ck, dict) and ck and all(isinstance(k, str) and k.startswith(("encoder.", "decoder."))
                                               for k in ck):
        sd = ck  # a bare state dict
    else:
        keys = ", ".join(map(str, list(ck)[:5])) if isinstance(ck, dict) else type(ck).__name__
        raise UserError(f"{p} is not an official SpikeTrack checkpoint: no 'net' state dict (found: {keys})")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{p}: 'net' is not a state dict of tensors")
    return dict(sd)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _refused_global(e: Exception) -> str:
    for line in str(e).splitlines():
        if "GLOBAL" in line or "Unsupported" in line:
            return line.strip()
    return _first_line(e)


# -------------------------------------------------------------------------- conversion
def _shape(s) -> str:
    return "(" + ", ".join(str(int(x)) for x in s) + ("," if len(s) == 1 else "") + ")"


def mismatch(sd: dict[str, torch.Tensor], expected: dict[str, tuple]) -> str | None:
    """The first problem of ``sd`` against ``{key: shape}`` (extra, missing, shape), or None."""
    for k, v in sd.items():
        if k not in expected:
            return f"unexpected key {k} {_shape(v.shape)}"
    for k, s in expected.items():
        if k not in sd:
            return f"missing key {k} {_shape(s)}"
        if tuple(sd[k].shape) != tuple(s):
            return f"key {k} has shape {_shape(sd[k].shape)}, expected {_shape(s)}"
    return None


def detect_variant(sd: dict[str, torch.Tensor]) -> str | None:
    """The paper variant whose official key set and shapes ``sd`` fits exactly, or None."""
    from spiketrack.model.configs import list_configs

    for name in list_configs(ann=False):
        if name.startswith("paper-") and mismatch(sd, official_shapes(name)) is None:
            return name
    return None


def official_to_ours(sd: dict[str, torch.Tensor], cfg) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Convert an official ``net`` state dict to ours: ``(state dict, decay slot-2 entries)``.

    Tensors of ours may be views of ``sd``'s (``load_state_dict`` copies them).

    UserError naming the first unmatched key and its shape when ``sd`` is not exactly the official
    state dict of ``cfg`` (and the variant it does fit, if any).
    """
    from spiketrack.model.configs import get_config

    cfg = get_config(cfg)
    entries = key_map(cfg)
    shapes = our_shapes(cfg)
    problem = mismatch(sd, official_shapes(cfg))
    if problem:
        other = detect_variant(sd)
        hint = f"; the file is an official {other} checkpoint" if other else ""
        raise UserError(f"not an official {cfg.name} checkpoint: {problem}{hint}")
    ours: dict[str, torch.Tensor] = {}
    slot2: dict[str, torch.Tensor] = {}
    used: dict[str, int] = {}
    for e in entries:
        if e.kind == "fill":
            ours[e.ours] = torch.zeros((), dtype=torch.long)
            continue
        src = sd[e.official]
        if e.kind != "tied":
            used[e.official] = used.get(e.official, 0) + 1
        if e.kind == "tensor":
            ours[e.ours] = src.reshape(shapes[e.ours])
        elif e.kind == "slot":
            if e.ours not in ours:
                ours[e.ours] = torch.empty(shapes[e.ours], dtype=src.dtype)
            ours[e.ours][e.slot] = src.reshape(shapes[e.ours][1:])
        else:  # decay, tied
            ours[e.ours] = src[: shapes[e.ours][0]].clone()
            if e.kind == "decay":
                slot2[e.official] = src[shapes[e.ours][0]:].clone()
    twice = [k for k, n in used.items() if n != 1]
    if twice or set(used) != set(sd) or set(ours) != set(shapes):
        raise AssertionError(f"internal key map error: used twice {twice[:1]}, unused "
                             f"{sorted(set(sd) - set(used))[:1]}, unfilled {sorted(set(shapes) - set(ours))[:1]}")
    return ours, slot2


def ours_to_official(state: dict[str, torch.Tensor], cfg,
                     decay_slot2: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Our state dict of paper variant ``cfg`` as an official ``net`` state dict (tensors may be views of
    ``state``'s). ``decay_slot2``: the unused third decay entries recorded at import
    (absent entries get the reference's initial value logit(0.25))."""
    from spiketrack.model.neuron import DECAY_INIT

    decay_slot2 = decay_slot2 or {}
    init = math.log(DECAY_INIT / (1 - DECAY_INIT))
    out: dict[str, torch.Tensor] = {}
    entries = key_map(cfg)
    for e in entries:
        if e.kind == "fill":
            continue
        src = state[e.ours]
        if e.kind == "tensor":
            out[e.official] = src.reshape(e.official_shape)
        elif e.kind == "slot":
            out[e.official] = src[e.slot].reshape(e.official_shape)
        elif e.kind == "decay":
            tail = decay_slot2.get(e.official, torch.full((OFFICIAL_DECAY_SLOTS - src.numel(),), init,
                                                           dtype=src.dtype))
            out[e.official] = torch.cat([src, tail.to(src.dtype)])
    for e in entries:  # a tied layer must equal the one the official format stores
        if e.kind == "tied" and not torch.equal(out[e.official][: state[e.ours].numel()], state[e.ours]):
            raise UserError(f"{e.ours} differs from the layer stored as {e.official}; the official format "
                            "shares one decay between them, so this model cannot be exported exactly")
    return out


# -------------------------------------------------------------------------- files
def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_official(src: str | Path, config: str, out: str | Path, *, trust_pickle: bool = False) -> dict:
    """Convert official checkpoint ``src`` of paper variant ``config`` into our checkpoint ``out``.

    The model gets ``rounding="half_even"`` (the reference NI-LIF). ``out`` is written atomically,
    and only after every check passed. Returns a summary dict (also what ``--json`` prints).
    """
    from spiketrack.model.checkpoint import save_checkpoint_atomic, state_payload
    from spiketrack.model.configs import get_config
    from spiketrack.model.spiketrack import build_model

    try:
        cfg = get_config(config, rounding=OFFICIAL_ROUNDING)
    except ValueError as e:
        raise UserError(str(e)) from None
    _check_paper(cfg)
    sd = read_official(src, trust_pickle)
    ours, slot2 = official_to_ours(sd, cfg)
    with torch.device("meta"):
        expected = build_model(cfg).state_dict()
    for k, v in ours.items():
        if v.dtype != expected[k].dtype:
            raise UserError(f"official tensor for {k} has dtype {v.dtype}, expected {expected[k].dtype}")
    info = {"format": OFFICIAL_FORMAT, "source": str(src), "sha256": file_sha256(src),
            "tensors": len(sd), "elements": int(sum(v.numel() for v in sd.values())), "decay_slot2": slot2}
    state = {k: ours[k].contiguous() for k in expected}   # our key order
    save_checkpoint_atomic(out, state_payload(cfg, state, extra={"official": info}))
    return {"out": str(out), "variant": cfg.name, "rounding": cfg.rounding, "official_tensors": len(sd),
            "official_elements": info["elements"], "our_tensors": len(expected), "sha256": info["sha256"]}


def export_official(ck: dict) -> dict[str, dict[str, torch.Tensor]]:
    """Our checkpoint dict (:func:`~spiketrack.model.checkpoint.load_checkpoint`) in the official
    format ``{"net": state dict}``; exact inverse of :func:`import_official` for imported files."""
    from spiketrack.model.checkpoint import checkpoint_config

    official = (ck.get("extra") or {}).get("official") or {}
    return {"net": ours_to_official(ck["model"], checkpoint_config(ck), official.get("decay_slot2"))}


__all__ = ["Entry", "key_map", "official_shapes", "read_official", "official_to_ours", "ours_to_official",
           "import_official", "export_official", "detect_variant", "OFFICIAL_ROUNDING"]
