"""Checkpoint files: one writer (atomic) and one reader (validating), shared by train/track/eval.

A checkpoint is a ``torch.save`` dict::

    format    "spiketrack-checkpoint"
    version   1
    variant   config name, e.g. "edge-t3"
    config    the model config as a plain dict
    model     model state_dict
    optimizer optimizer state_dict or None
    step      optimisation steps done
    git_rev   ``git rev-parse HEAD`` of the source tree, or "unknown"
    extra     free-form (training arguments, metrics, ...)

Writes go to a temporary file in the destination folder, are fsync'ed and then renamed over
the destination with ``os.replace``, so a crash never leaves a partial checkpoint.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
from pathlib import Path

import torch

from spiketrack.atomic import write_bytes_atomic
from spiketrack.cli import UserError

FORMAT = "spiketrack-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "variant", "config", "model", "step")
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
#: The shipped default: edge-t3 fine-tuned with Brevitas int8 QAT (stem frozen, docs/quant.md); a QAT
#: checkpoint, so every command that loads it without a --checkpoint runs its integer network.
DEFAULT_CHECKPOINT = CHECKPOINTS / "edge-t3-qat8.pt"
#: Its float parent (the float edge-t3 of docs/tracking.md 2.1), shipped for comparison (``--float``).
FLOAT_CHECKPOINT = CHECKPOINTS / "edge-t3.pt"
PRODUCE_HINT = (
    "produce it with `spiketrack train --config edge-t1 --data synthetic --out runs/t1` then "
    "`spiketrack train --config edge-t3 --data synthetic --init-from runs/t1/last.pt --out runs/t3` "
    "and copy runs/t3/last.pt to {path} (see docs/tracking.md); the QAT default then is `spiketrack quantize "
    "--qat-steps` of it (phase 3 of tools/make_default_checkpoint.sh, docs/quant.md); or pass --checkpoint"
)


def git_revision() -> str:
    """``git rev-parse HEAD`` of the source tree, or "unknown"."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_dict(cfg) -> dict:
    """A model config (dataclass, namespace or dict) as a plain dict."""
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    if isinstance(cfg, dict):
        return dict(cfg)
    return dict(vars(cfg))


def variant_name(cfg) -> str:
    d = config_dict(cfg)
    for key in ("name", "variant"):
        if key in d:
            return str(d[key])
    raise ValueError("model config has no name/variant field")


def make_payload(model, optimizer=None, step: int = 0, extra: dict | None = None) -> dict:
    """The checkpoint dict for ``model`` (unwraps DDP)."""
    m = getattr(model, "module", model)
    return state_payload(m.cfg, m.state_dict(), optimizer.state_dict() if optimizer is not None else None,
                         step, extra)


def state_payload(cfg, state: dict, optimizer_state: dict | None = None, step: int = 0,
                  extra: dict | None = None) -> dict:
    """The checkpoint dict for model config ``cfg`` and its state dict ``state``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "variant": variant_name(cfg),
        "config": config_dict(cfg),
        "model": state,
        "optimizer": optimizer_state,
        "step": int(step),
        "git_rev": git_revision(),
        "extra": extra or {},
    }


def save_checkpoint_atomic(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder + os.replace)."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    return write_bytes_atomic(path, buf.getvalue())


def resolve_checkpoint(path: str | Path | None, float_default: bool = False) -> Path:
    """The --checkpoint argument, or the shipped default (the QAT :data:`DEFAULT_CHECKPOINT`; with
    ``float_default`` its float parent :data:`FLOAT_CHECKPOINT`); UserError if it does not exist."""
    if path is None:
        default = FLOAT_CHECKPOINT if float_default else DEFAULT_CHECKPOINT
        if not default.exists():
            raise UserError(f"no shipped checkpoint at {default}; " + PRODUCE_HINT.format(path=default))
        return default
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    return p


def load_checkpoint(path: str | Path, expect_variant: str | None = None) -> dict:
    """Read and validate a checkpoint; UserError on missing, corrupted, foreign or mismatched files."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {p} is corrupted or truncated ({first})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise UserError(f"{p} is not a SpikeTrack checkpoint (no '{FORMAT}' format tag)")
    if ck.get("version") != VERSION:
        raise UserError(f"checkpoint {p} has format version {ck.get('version')}; this code reads version {VERSION}")
    missing = [k for k in REQUIRED if k not in ck]
    if missing:
        raise UserError(f"checkpoint {p} lacks {', '.join(missing)}")
    if expect_variant is not None and ck["variant"] != expect_variant:
        raise UserError(f"checkpoint {p} holds variant {ck['variant']!r} but variant {expect_variant!r} "
                        "was requested")
    return ck


def model_from_checkpoint(path: str | Path | None, device: str = "cpu", *, float_default: bool = False,
                          **overrides):
    """Build the checkpoint's variant and load its weights (eval mode). Returns (model, ckpt).

    ``path`` None: the shipped default (QAT), or with ``float_default`` its float parent.

    ``overrides``: :data:`BEHAVIOUR_FIELDS` to set instead of the checkpoint's (``None`` values are
    ignored), e.g. ``rounding="half_even"``. A quantisation-aware (QAT) checkpoint
    (``extra["quant"]`` holds its format, see ``spiketrack.quant.qat.qat_payload``) gives the
    quantisation-aware model.
    """
    p = resolve_checkpoint(path, float_default)
    ck = load_checkpoint(p)
    from spiketrack.model import build_model

    try:
        if (ck.get("extra") or {}).get("quant") is not None:
            from spiketrack.quant.qat import quantized_from_payload

            try:
                model = quantized_from_payload(ck, lambda _variant: build_model(checkpoint_config(ck, **overrides)))
            except ValueError as e:
                raise UserError(f"checkpoint {p}: bad quantisation format ({e})") from None
        else:
            model = build_model(checkpoint_config(ck, **overrides))
    except KeyError:
        raise UserError(f"checkpoint {p} holds unknown variant {ck['variant']!r}") from None
    except ValueError as e:
        raise UserError(f"checkpoint {p}: {e}") from None
    load_weights(model, ck, p)
    return model.to(device).eval(), ck


BEHAVIOUR_FIELDS = ("rounding",)
"""Config fields a checkpoint may set apart from its registered variant (shapes always come from the
registry; ``load_weights`` checks them). A checkpoint without them gets the registry's values."""


def checkpoint_config(ck: dict, **overrides):
    """The model config of checkpoint ``ck``: its registered variant with the stored
    :data:`BEHAVIOUR_FIELDS` (e.g. ``rounding="half_even"`` of an imported official checkpoint), then
    ``overrides`` (behaviour fields only; ``None`` values are ignored). Without any such field: the
    variant name itself (what ``build_model`` takes)."""
    from spiketrack.model.configs import get_config

    stored = ck.get("config") or {}
    fields = {k: stored[k] for k in BEHAVIOUR_FIELDS if k in stored}
    for k, v in overrides.items():
        if k not in BEHAVIOUR_FIELDS:
            raise ValueError(f"{k} is not a behaviour field a checkpoint may override ({', '.join(BEHAVIOUR_FIELDS)})")
        if v is not None:
            fields[k] = v
    return get_config(ck["variant"], **fields) if fields else ck["variant"]


def load_weights(model, ck: dict, path: str | Path) -> None:
    """Load checkpoint ``ck`` (read from ``path``) into ``model``; UserError naming the first differing
    tensor when the checkpoint was made by a different definition of the variant."""
    problems = state_dict_mismatch(model.state_dict(), ck["model"])
    if problems:
        raise UserError(f"checkpoint {path} does not fit variant {ck['variant']!r} as this code defines it "
                        f"({len(problems)} tensors differ; first: {problems[0]}); it was made by git revision "
                        f"{ck.get('git_rev', 'unknown')}")
    model.load_state_dict(ck["model"])


def state_dict_mismatch(expected: dict, got: dict) -> list[str]:
    """Human-readable differences between a model's state dict and a checkpoint's (empty: they fit)."""
    out = [f"{k}: shape {list(got[k].shape)} in the checkpoint, {list(v.shape)} in the model"
           for k, v in expected.items() if k in got and tuple(got[k].shape) != tuple(v.shape)]
    out += [f"{k}: missing from the checkpoint" for k in expected if k not in got]
    out += [f"{k}: not in the model" for k in got if k not in expected]
    return out


def export_weights(src: str | Path, dst: str | Path, extra: dict | None = None) -> Path:
    """Copy a checkpoint without its optimizer state (what ships in the package), atomically.
    ``extra``: entries to set in the copy's ``extra`` (e.g. a QAT run's recipe in ``"qat"``)."""
    ck = load_checkpoint(src)
    ck = dict(ck, optimizer=None)
    ck["extra"] = dict(ck.get("extra") or {}, **(extra or {}), exported_from=str(src))
    return save_checkpoint_atomic(dst, ck)
