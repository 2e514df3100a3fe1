"""Export the quantised model to QONNX and ONNX-QCDQ (Brevitas), and check the exports.

Each export runs in a fresh process (``python -m spiketrack.quant.export``): a failed Brevitas
export can leave the model in export mode and corrupt the next one. The check runs the exported
graph (QONNX: ``qonnx.core.onnx_exec``; QCDQ: onnxruntime) on the same inputs as the Brevitas
model and reports the largest absolute difference of the head outputs.

Usage::

    python -m spiketrack.quant.export --format qonnx|qcdq --out build/export [--checkpoint CKPT | --config NAME]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import torch
from torch import nn

__all__ = ["export_in_fresh_process"]


class _HeadOutputs(nn.Module):
    """(z, x) -> (score logits, size, offset): the tuple form exporters need."""

    def __init__(self, q):
        super().__init__()
        self.q = q

    def forward(self, z, x):
        o = self.q(z, x)
        return o["score_map"], o["size_map"], o["offset_map"]


def _model(args):
    from spiketrack.model import build_model
    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.quant.qat import quantize_model

    if args.checkpoint:
        model, _ = model_from_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(args.seed)
        model = build_model(args.config)
    return quantize_model(model.eval()).eval()


def _run_export(args) -> dict:
    warnings.filterwarnings("ignore")
    q = _model(args)
    cfg = q.cfg
    g = torch.Generator().manual_seed(args.seed)
    z = torch.randn(cfg.timesteps, 1, 3, cfg.template_size, cfg.template_size, generator=g)
    x = torch.randn(1, 3, cfg.search_size, cfg.search_size, generator=g)
    wrapped = _HeadOutputs(q).eval()
    with torch.no_grad():
        ref = [t.numpy() for t in wrapped(z, x)]
    path = f"{args.out}/{cfg.name}.{args.format}.onnx"
    t0 = time.time()
    if args.format == "qonnx":
        from brevitas.export import export_qonnx

        export_qonnx(wrapped, args=(z, x), export_path=path)
    else:
        from brevitas.export import export_onnx_qcdq

        # the dynamo path refuses quantised biases (Brevitas 0.13.4); the TorchScript path takes them
        export_onnx_qcdq(wrapped, args=(z, x), export_path=path, dynamo=False)
    export_s = time.time() - t0
    import onnx

    model = onnx.load(path)
    names = [i.name for i in model.graph.input]
    feeds = dict(zip(names, (z.numpy(), x.numpy())))
    t0 = time.time()
    if args.format == "qonnx":
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx

        mw = ModelWrapper(model)
        res = execute_onnx(mw, feeds)
        outs = [res[o.name] for o in mw.graph.output]
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
    run_s = time.time() - t0
    diffs = [float(abs(a - b).max()) for a, b in zip(outs, ref)]
    ops = sorted({n.op_type for n in model.graph.node})
    return {"format": args.format, "path": path, "config": cfg.name, "max_abs_diff": max(diffs),
            "equal": all(d == 0.0 for d in diffs), "ops": ops, "export_s": round(export_s, 1), "run_s": round(run_s, 1)}


def export_in_fresh_process(fmt: str, out: str, config: str = "edge-t1", checkpoint: str | None = None,
                            timeout: int = 900) -> dict:
    """Run one export + check in a fresh Python process; returns its JSON report."""
    cmd = [sys.executable, "-m", "spiketrack.quant.export", "--format", fmt, "--out", out, "--config", config]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{fmt} export failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spiketrack.quant.export")
    ap.add_argument("--format", choices=("qonnx", "qcdq"), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default="edge-t1")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from pathlib import Path

    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(json.dumps(_run_export(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
