"""The accelerator as a tracking backend: the integer network runs on the RTL (simulated) or on a
board, behind the tracker's model interface (``encode_template``, ``encode_search``, ``decode_box``).

:class:`AcceleratorTracking` is :class:`~spiketrack.quant.tracking.ArtifactTracking` with the two
passes moved to the device: the template crop's pixels are written to their rows, the template
program runs and leaves the memories in the template slots (they never come back to the host), each
search crop is written, the search program runs and the head maps are read back and turned into
the float head outputs exactly as the golden path does. With ``check=True`` every pass is also run
by the golden functions of the compiled program and every head map must be equal (``reports``:
cycles, the cycle model's prediction and mismatches per pass).
"""

from __future__ import annotations

import sys
import time

import torch

from spiketrack.compiler.accel import AccelProgram, _size, rows_tensor
from spiketrack.hw.accel.protocol import RunKind
from spiketrack.quant.tracking import ArtifactTracking

__all__ = ["AcceleratorTracking", "DeviceMemories"]


class DeviceMemories(list):
    """Stand-in for the template memories: they live in the accelerator's template slots."""


class AcceleratorTracking(ArtifactTracking):
    """Parameters
    ----------
    net : IntegerNetwork
    ap : AccelProgram
        ``net`` compiled for the accelerator (``lower_to_accel``).
    drv : AccelDriver
        Over any transport: the simulated accelerator, the simulated board's UART, a serial port.
    load : bool
        Write the program, weights and tables first (False where they are baked into the design).
    load_ext : bool
        With external weights, write memory EXT (the weights) first even when ``load`` is False:
        a bitstream carries the on-chip images, never the SDRAM's.
    check : bool
        Compare each pass's outputs with the golden executor.
    """

    def __init__(self, net, ap: AccelProgram, drv, *, load: bool = True, load_ext: bool = False, check: bool = False):
        super().__init__(net)
        self.ap, self.drv, self.check = ap, drv, check
        self.reports: list[dict] = []
        if check:
            from spiketrack.compiler.fuse import fuse
            from spiketrack.compiler.schedule import programs

            self.graph, _ = fuse(net)
            self.progs = programs(self.graph)
        self._env_t = None
        for mem, rows in ap.host_images():
            if load or (load_ext and mem == "ext"):
                drv.write(mem, 0, rows)
        drv.guard(ap.guard)

    def _pass(self, program: str, kind: int, pixels: dict) -> dict:
        """Write the pass's crops and run it: one RUN, or several (``AccelProgram.runs``: a banded
        crop's bands, the template pass's positional tables), each after its writes."""
        before = self.drv.status()
        for run in self.ap.runs(program):
            for mem, addr, rows in self.ap.host_writes(run, pixels):
                self.drv.write(mem, addr, rows)
            self.drv.run(run.first, run.count, kind)
            self.drv.wait_idle()
        after = self.drv.status()
        return {"pass": program, "cycles": (after["run_cycles"] - before["run_cycles"]) % (1 << 32),
                "events": (after["events"] - before["events"]) % (1 << 32)}

    def _read(self, name: str) -> torch.Tensor:
        pl, ty = self.ap.placement[name], self.net.types[name]
        rows, per_t = _size(ty.shape, ty.kind, self.ap.lanes)
        got = []
        for t in range(ty.shape[0]):
            got += self.drv.read(pl.mem, pl.base + t * pl.t_stride, per_t)
        return rows_tensor(got, ty.shape, ty.kind, self.ap.lanes)

    @torch.no_grad()
    def encode_template(self, z: torch.Tensor):
        from spiketrack.compiler.schedule import run_program

        if z.dim() != 5 or z.shape[0] != self.cfg.timesteps:
            raise ValueError(f"template must be [T={self.cfg.timesteps}, B, 3, H, W], got {list(z.shape)}")
        px = self._pixels(z.cpu(), self.cfg.template_size, "template")[:, 0]
        rep = self._pass("template_update", RunKind.TEMPLATE, {"template_pixels": px})
        if self.check:
            self._env_t = run_program(self.graph, self.progs["template_update"], {"template_pixels": px[:, None]})
            rep["predicted"] = self.ap.run_cycles(self.graph, "template_update", self._env_t)
        self.reports.append(rep)
        return DeviceMemories(self.memories)

    @torch.no_grad()
    def encode_search(self, x: torch.Tensor, memories):
        from spiketrack.compiler.schedule import run_program
        from spiketrack.model.head import SIGMOID_CLAMP

        if not isinstance(memories, DeviceMemories):
            raise ValueError("the accelerator backend searches with the template memories on the device "
                             "(run encode_template first)")
        px = self._pixels(x.cpu(), self.cfg.search_size, "search")[:1]
        rep = self._pass("search_frame", RunKind.SEARCH, {"search_pixels": px})
        heads = [self.net.meta[k] for k in ("score", "size", "offset")]
        maps = [self._read(h) for h in heads]
        if self.check:
            env_t = self._env_t
            mems = {m: env_t[m] for m in self.progs["template_update"].outputs}
            env_s = run_program(self.graph, self.progs["search_frame"], {"search_pixels": px[:, None], **mems})
            rep["predicted"] = self.ap.run_cycles(self.graph, "search_frame", {**env_t, **env_s})
            gold = [env_s[h][:, 0] for h in heads]
            rep["mismatches"] = int(sum((a != g.to(a.dtype)).sum() for a, g in zip(maps, gold)))
        self.reports.append(rep)
        score, size, offset = (m.double().mean(0)[None] * 2.0 ** -self.frac for m in maps)
        size = torch.sigmoid(size).clamp(SIGMOID_CLAMP, 1 - SIGMOID_CLAMP)
        return {"score_map": score.float(), "size_map": size.float(), "offset_map": offset.float()}


def track_job(drv, cycle, *, artifact: str, frames: str, init: list, max_frames: int | None = None,
              update_interval: int | None = None, update_threshold: float | None = None,
              ext_weights: bool = False) -> dict:
    """Host job for the cocotb testbench (``sim/accel_cocotb.run_job_cocotb``): track the frames
    on the accelerator whose memories hold ``artifact``'s compiled images (``ext_weights``: compiled
    with the weights in external memory); boxes and per-pass cycles."""
    import numpy as np

    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.model.cli_track import iter_frames
    from spiketrack.model.tracker import SpikeTrackTracker
    from spiketrack.quant.ir import load_artifact

    net = load_artifact(artifact)
    ap = lower_to_accel(net, 8, ext_weights=ext_weights)
    model = AcceleratorTracking(net, ap, drv, load=False)
    tracker = SpikeTrackTracker(model, update_interval=update_interval, update_threshold=update_threshold)
    boxes = []
    t0 = time.monotonic()
    for i, img in enumerate(iter_frames(frames)):
        if max_frames is not None and i >= max_frames:
            break
        if i == 0:
            tracker.init(img, np.asarray(init, dtype=np.float64))
            boxes.append([float(v) for v in init])
        else:
            boxes.append([float(v) for v in tracker.update(img)])
        # progress on the terminal: the simulator's cycle and wall time after each frame
        print(f"[rtl] frame {i + 1}: cycle {cycle()}, {time.monotonic() - t0:.0f} s, box "
              f"{','.join(f'{v:.1f}' for v in boxes[-1])}", file=sys.stderr, flush=True)
    return {"boxes": boxes, "passes": model.reports, "cycles_simulated": cycle()}


def eval_job(drv, cycle, *, artifact: str, dataset: str, max_seqs: int | None, out_dir: str, absent: str = "exclude",
             max_frames: int | None = None,
             plot: str | None = None, size_lr: float | None = None, update_interval: int | None = None,
             update_threshold: float | None = None) -> dict:
    """Host job for ``spiketrack eval --backend rtl``: one-pass evaluation with the tracker's model on
    the accelerator (the same tracker settings as the golden backend); the evaluation summary plus the
    mean search-frame cycles."""
    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.model.data.datasets import load_eval_dataset
    from spiketrack.model.evaluate import evaluate
    from spiketrack.model.tracker import SpikeTrackTracker
    from spiketrack.quant.ir import load_artifact

    net = load_artifact(artifact)
    model = AcceleratorTracking(net, lower_to_accel(net, 8), drv, load=False)
    kind, seqs = load_eval_dataset(dataset, max_seqs, max_frames)
    tracker = SpikeTrackTracker(model, size_lr=size_lr, dataset=kind, update_interval=update_interval,
                                update_threshold=update_threshold)
    summary = evaluate(tracker, seqs, out_dir, absent=absent, plot=plot, progress=True, label="SpikeTrack (RTL)")
    search = [r["cycles"] for r in model.reports if r["pass"] == "search_frame"]
    summary["search_cycles"] = sum(search) / max(1, len(search))
    summary["fps_at_100mhz"] = 100e6 * len(search) / max(1, sum(search))
    summary["cycles_simulated"] = cycle()
    return summary
