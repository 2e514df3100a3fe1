"""Training loop (spec §9): sampler -> model -> 1*focal + 2*GIoU + 5*L1 -> AdamW.

- Parameter groups: the base LR for parameters whose names contain ``mrm``, ``decay`` or
  ``pos_embed`` (plus the head when T = 1); ``backbone_lr_mult`` (0.1) x base LR for all
  others. AdamW, weight decay 1e-4, gradient clipping at norm 0.1, step LR drop (x0.1) at
  ``lr_drop`` x steps (0.75 for T1 as 240/320 epochs, 0.5 for T3 as 30/60).
- Steps, not epochs: ``samples_per_epoch`` only decides when the per-epoch draw changes.
  Sample k of step s is a pure function of (seed, epoch, index), so a run resumed from a
  checkpoint sees exactly the batches it would have seen without the interruption.
- Distributed: under ``torchrun`` (WORLD_SIZE > 1) each process initialises
  ``torch.distributed`` (gloo on CPU, nccl on CUDA), wraps the model in DDP and reads its
  shard through ``DistributedSampler``; a single process runs the very same code with
  world size 1 and no process group.
- Checkpoints (``OUT/last.pt``) are written atomically every ``ckpt_every`` steps and at the
  end, by rank 0 only; each is followed by a line of ``OUT/train_log.jsonl`` (mean loss parts
  and training IoU since the previous line).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from spiketrack.cli import UserError
from spiketrack.model.checkpoint import load_checkpoint, load_weights, make_payload, save_checkpoint_atomic
from spiketrack.model.mrm import PER_TIMESTEP_LISTS

BASE_LR_KEYS = ("mrm", "decay", "pos_embed")
HEAD_KEYS = ("head", "decoder")


@dataclass
class TrainConfig:
    variant: str
    data: str = "synthetic"
    out: str = "runs/train"
    steps: int = 1000
    batch: int = 16
    lr: float = 4e-4
    backbone_lr_mult: float = 0.1
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    lr_drop: float | None = None  # fraction of steps; None -> 0.75 (T=1) / 0.5 (T>1)
    ckpt_every: int = 50
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    samples_per_epoch: int = 60000
    max_interval: int = 400
    center_jitter: float = 3.5
    scale_jitter: float = 0.5
    scene_cache: int = 32  # synthetic scenes kept in memory (speed only)
    resume: bool = False
    stop_after: int | None = None  # run at most this many steps in this invocation (time-sliced training)
    init_from: str | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)  # merged into every checkpoint's ``extra`` (e.g. a QAT format)


def param_groups(model: torch.nn.Module, lr: float, mult: float, timesteps: int) -> list[dict]:
    """Split parameters into the base-LR group and the reduced-LR group (spec §9)."""
    base, rest = [], []
    base_names = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        keys = BASE_LR_KEYS + (HEAD_KEYS if timesteps == 1 else ())
        if any(k in name for k in keys):
            base.append(p)
            base_names.append(name)
        else:
            rest.append(p)
    groups = []
    if base:
        groups.append({"params": base, "lr": lr, "lr_mult": 1.0, "name": "base"})
    if rest:
        groups.append({"params": rest, "lr": lr * mult, "lr_mult": mult, "name": "reduced"})
    return groups


def lr_at(step: int, cfg: TrainConfig, timesteps: int) -> float:
    drop = cfg.lr_drop if cfg.lr_drop is not None else (0.75 if timesteps == 1 else 0.5)
    return cfg.lr * (0.1 if step >= int(round(drop * cfg.steps)) else 1.0)


_PER_TIMESTEP_KEY = re.compile(r"^(.*\.(?:%s))\.(\d+)\.(.*)$" % "|".join(PER_TIMESTEP_LISTS))


def init_from_checkpoint(model: torch.nn.Module, path: str) -> dict:
    """Copy every tensor whose name and shape match from ``path``; report what was new.

    T1 -> T3 inflation: a tensor of timestep ``t > 0`` of a per-timestep module list
    (:data:`~spiketrack.model.mrm.PER_TIMESTEP_LISTS`) that the source lacks starts as a copy of
    the source's timestep-0 tensor (``inflated``), so every timestep begins with the trained T1
    weights instead of a random initialisation. Everything else the source lacks is ``new``.
    """
    ck = load_checkpoint(path)
    src = ck["model"]
    own = model.state_dict()
    loaded, shape_mismatch, inflated = [], [], []
    for k, v in own.items():
        if k in src and src[k].shape == v.shape:
            own[k] = src[k].to(v.dtype)
            loaded.append(k)
        elif k in src:
            shape_mismatch.append(k)
        elif (m := _PER_TIMESTEP_KEY.match(k)) and int(m[2]) > 0:
            k0 = f"{m[1]}.0.{m[3]}"
            if k0 in src and src[k0].shape == v.shape:
                own[k] = src[k0].to(v.dtype).clone()
                inflated.append(k)
    model.load_state_dict(own)
    new = [k for k in own if k not in src and k not in inflated]
    unused = [k for k in src if k not in own]
    return {"from_variant": ck["variant"], "loaded": loaded, "inflated": inflated, "new": new,
            "shape_mismatch": shape_mismatch, "unused": unused}


LOG_NAME = "train_log.jsonl"


def _append_log(path: Path, step: int, lr: float, window: dict[str, list[float]]) -> None:
    """One JSON line per checkpoint: the step, the LR and the mean of each loss part since the last line.

    Appended after the checkpoint is written, so after a kill the log may hold lines past the
    resumed step; readers keep the last line of each step.
    """
    row = {"step": step, "lr": lr, **{k: round(sum(v) / len(v), 5) for k, v in window.items() if v}}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def train(cfg: TrainConfig, build=None, loss_fn=None) -> dict:
    """Run (or resume) training; returns a small report dict. ``build`` overrides build_model."""
    world, rank, local = _dist_env()
    device = torch.device(cfg.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda requested but no CUDA device is available")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(cfg, build, loss_fn, world, rank, device)
    finally:
        # Tear the group down before the interpreter exits: left to interpreter shutdown, a rank whose
        # peer already exited can see the closed gloo connection in a background thread and abort (SIGABRT).
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, build, loss_fn, world: int, rank: int, device: torch.device) -> dict:
    """The body of :func:`train` once the process group (if any) exists."""
    from spiketrack.model.data.sampler import TrackingPairs

    if build is None:
        from spiketrack.model import build_model as build
    if cfg.steps < 1 or cfg.batch < 1:
        raise UserError("--steps and --batch must be positive")
    out = Path(cfg.out)
    last = out / "last.pt"
    if last.exists() and not cfg.resume:
        raise UserError(f"{last} exists; pass --resume to continue that run or choose another --out")

    torch.manual_seed(cfg.seed)
    model = build(cfg.variant)
    T = int(model.cfg.timesteps)
    report: dict = {"variant": cfg.variant, "world_size": world}
    start = 0
    ck = None
    if cfg.resume and last.exists():
        ck = load_checkpoint(last, expect_variant=cfg.variant)
        load_weights(model, ck, last)
        start = int(ck["step"])
        report["resumed_from"] = start
    elif cfg.resume and rank == 0:
        print(f"--resume: no checkpoint at {last} yet, starting from step 0")
    if ck is None and cfg.init_from:
        info = init_from_checkpoint(model, cfg.init_from)
        report["init_from"] = {k: (v if isinstance(v, str) else len(v)) for k, v in info.items()}
        if rank == 0:
            print(f"init from {cfg.init_from} ({info['from_variant']}): loaded {len(info['loaded'])} tensors, "
                  f"inflated {len(info['inflated'])} (timesteps > 0 from timestep 0), "
                  f"new {len(info['new'])}" + (f" ({', '.join(info['new'][:8])}"
                                                 f"{', ...' if len(info['new']) > 8 else ''})" if info["new"] else "")
                  + (f", shape mismatch {len(info['shape_mismatch'])}" if info["shape_mismatch"] else ""))
    model.to(device).train()
    opt = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.backbone_lr_mult, T), lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    if ck is not None and ck.get("optimizer") is not None:
        opt.load_state_dict(ck["optimizer"])
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if loss_fn is None:
        from spiketrack.model.loss import tracking_loss as loss_fn

    mcfg = model.cfg
    data = TrackingPairs.from_spec(cfg.data, n_templates=T, template_size=int(mcfg.template_size),
                                   search_size=int(mcfg.search_size), samples_per_epoch=cfg.samples_per_epoch,
                                   max_interval=cfg.max_interval, center_jitter=cfg.center_jitter,
                                   scale_jitter=cfg.scale_jitter, seed=cfg.seed,
                                   scene_cache=cfg.scene_cache)
    per_step = cfg.batch * world
    steps_per_epoch = max(cfg.samples_per_epoch // per_step, 1)
    train_args = {k: v for k, v in asdict(cfg).items() if k not in ("progress",)}

    def save(step: int) -> None:
        if rank == 0:
            save_checkpoint_atomic(last, make_payload(model, opt, step, {**cfg.extra, "train": train_args}))
        if world > 1:
            dist.barrier()

    bar = None
    if cfg.progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.variant}", unit="step", dynamic_ncols=True)
    it, epoch_loaded = None, -1
    t_start, seen = time.perf_counter(), 0
    losses = []
    window: dict[str, list[float]] = {}
    step = start
    stop = cfg.steps if cfg.stop_after is None else min(cfg.steps, start + cfg.stop_after)
    while step < stop:
        epoch, within = divmod(step, steps_per_epoch)
        if it is None or epoch != epoch_loaded:
            data.set_epoch(epoch)
            sampler = torch.utils.data.DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True,
                                                          seed=cfg.seed, drop_last=True)
            sampler.set_epoch(epoch)
            indices = list(sampler)[within * cfg.batch:]
            loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch, sampler=indices, drop_last=True,
                                                 num_workers=cfg.workers)
            it, epoch_loaded = iter(loader), epoch
        z, x, box = next(it)
        z = z.transpose(0, 1).to(device)  # [T, B, 3, Hz, Wz]
        x, box = x.to(device), box.to(device)
        lr = lr_at(step, cfg, T)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        out_dict = net(z, x)
        loss, parts = loss_fn(out_dict, box)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip and cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        seen += per_step
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise RuntimeError(f"loss became {lv} at step {step}")
        losses.append(lv)
        for k, v in {"loss": lv, **{k: float(v) for k, v in (parts or {}).items()}}.items():
            window.setdefault(k, []).append(v)
        if step % cfg.ckpt_every == 0 or step == stop:
            save(step)
            if rank == 0:
                _append_log(out / LOG_NAME, step, lr, window)
            window = {}
        if bar is not None:
            el = time.perf_counter() - t_start
            post = {"loss": f"{lv:.3f}", "samples/s": f"{seen / el:.1f}"}
            for k, v in (parts or {}).items():
                post[k] = f"{float(v):.3f}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()
    if world > 1 and dist.is_initialized():
        dist.barrier()
    report.update({"steps": step, "last_loss": losses[-1] if losses else None,
                   "checkpoint": str(last), "seconds": time.perf_counter() - t_start})
    return report
