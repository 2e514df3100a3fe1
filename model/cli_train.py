"""``spiketrack train``: train a variant (single process, or one process per rank under torchrun)."""

from __future__ import annotations

import argparse
import json

from spiketrack.cli import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="variant name, e.g. edge-t1 or edge-t3")
    p.add_argument("--data", default="synthetic",
                   help="synthetic[:N] | synthetic-hard[:N] | lasot:DIR | got10k:DIR | otb:DIR | mix:SPEC@W,SPEC@W "
                        "(default synthetic)")
    p.add_argument("--out", required=True, help="run folder; the checkpoint is OUT/last.pt")
    p.add_argument("--steps", type=int, default=1000, help="total optimisation steps (default 1000)")
    p.add_argument("--batch", type=int, default=16, help="batch size per process (default 16)")
    p.add_argument("--lr", type=float, default=4e-4, help="base learning rate (default 4e-4)")
    p.add_argument("--lr-drop", type=float, default=None,
                   help="LR x0.1 after this fraction of the steps (default 0.75 for T=1, 0.5 for T>1)")
    p.add_argument("--backbone-lr-mult", type=float, default=0.1,
                   help="LR multiplier of the backbone group (default 0.1 as the reference, which starts from "
                        "ImageNet weights; use 1.0 when training from scratch)")
    p.add_argument("--grad-clip", type=float, default=0.1, help="gradient norm clip (default 0.1; 0 = off)")
    p.add_argument("--ckpt-every", type=int, default=50, help="checkpoint every N steps (default 50)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--stop-after", type=int, default=None,
                   help="run at most N steps in this invocation, then checkpoint and exit (resume later)")
    p.add_argument("--init-from", default=None, help="initialise matching tensors from this checkpoint (T1 -> T3)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes (default 0)")
    p.add_argument("--samples-per-epoch", type=int, default=60000)
    p.add_argument("--center-jitter", type=float, default=3.5,
                   help="search-crop centre jitter, in units of 0.5 x sqrt(w h) of the jittered box (default 3.5, spec)")
    p.add_argument("--scale-jitter", type=float, default=0.5, help="search-crop log-scale jitter (default 0.5, spec)")
    p.add_argument("--scene-cache", type=int, default=32,
                   help="synthetic scenes kept in memory, ~1.1 MB each (default 32); 5000 keeps every training "
                        "scene and roughly halves the data time per step. Changes speed only, not the samples")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch

    from spiketrack.model import get_config
    from spiketrack.model.train import TrainConfig, train

    try:
        get_config(args.config)
    except KeyError:
        raise UserError(f"unknown variant {args.config!r}") from None
    if args.ckpt_every < 1:
        raise UserError("--ckpt-every must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.center_jitter < 0 or args.scale_jitter < 0:
        raise UserError("--center-jitter and --scale-jitter must be >= 0")
    if args.scene_cache < 0:
        raise UserError("--scene-cache must be >= 0")
    cfg = TrainConfig(variant=args.config, data=args.data, out=args.out, steps=args.steps, batch=args.batch,
                      lr=args.lr, backbone_lr_mult=args.backbone_lr_mult, lr_drop=args.lr_drop,
                      grad_clip=args.grad_clip, ckpt_every=args.ckpt_every, resume=args.resume,
                      stop_after=args.stop_after, init_from=args.init_from, device=args.device, seed=args.seed,
                      workers=args.workers, samples_per_epoch=args.samples_per_epoch,
                      center_jitter=args.center_jitter, scale_jitter=args.scale_jitter,
                      scene_cache=args.scene_cache, progress=not args.no_progress)
    report = train(cfg)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        print(json.dumps(report))
    return 0
