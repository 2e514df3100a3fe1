"""NI-LIF multi-level spiking neuron (spec §3), its ANN twin and the firing-rate monitor.

Tensors are time-first: ``[T, B, ...]``. A neuron layer keeps membrane state only across the
``T`` timesteps of one call (template branch, MRM query expansion); every call starts from zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spiketrack.model.configs import ROUNDINGS
from spiketrack.model.hooks import ForwardHooks

LEVELS = 4  # D: spike levels, S = k / D with k in {0..D}
MAX_TIMESTEPS = 3  # the reference caps the time window at 3 (spec §3.1)
DECAY_INIT = 0.25


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 1/2)``: ties go up (0.5 -> 1, 1.5 -> 2, 2.5 -> 3), unlike ``torch.round``."""
    return torch.floor(x + 0.5)


def round_half_even(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest, ties to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2): ``torch.round``, the reference's NI-LIF."""
    return torch.round(x)


ROUNDING = dict(zip(ROUNDINGS, (round_half_up, round_half_even)))
"""Fire-stage rounding modes (``SpikeTrackConfig.rounding``; docs/integer_semantics.md §IS-7)."""


def check_rounding(rounding: str) -> str:
    """``rounding`` if it names a mode of :data:`ROUNDING`, else ValueError listing them."""
    if rounding not in ROUNDING:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING)}, got {rounding!r}")
    return rounding


class _MultiLevelSTE(torch.autograd.Function):
    """S = round(clip(U, 0, D)) / D (``round`` from :data:`ROUNDING`); dS/dU = 1/D inside [0, D], 0 outside."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, levels: int, rounding: str = "half_up") -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.levels = levels
        return ROUNDING[rounding](torch.clamp(u, 0, levels)) / levels

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        window = (u >= 0) & (u <= ctx.levels)
        return grad * window.to(grad.dtype) / ctx.levels, None, None


def check_timesteps(T: int, what: str = "input") -> None:
    """ValueError when ``T`` is outside ``1..MAX_TIMESTEPS``."""
    if T < 1 or T > MAX_TIMESTEPS:
        raise ValueError(f"{what} has T={T} timesteps; NI-LIF supports 1..{MAX_TIMESTEPS} timesteps")


class NILIF(nn.Module):
    """Normalised-integer LIF neuron with ``D`` spike levels (spec §3).

    Equations, per element, for an input ``X`` of shape ``[T, B, ...]`` (``T <= 3``)::

        U[0] = X[0]
        U[t] = decay(H[t-1], t) + X[t]          decay(h, t) = beta_t * h,  beta_t = sigmoid(theta_t)
        S[t] = quantize(U[t]) = round(clip(U[t], 0, D)) / D
        H[t] = U[t] - S[t]                      soft reset by the normalised spike (as the reference)

    ``round`` is set by ``rounding``: ``"half_up"`` ``floor(x + 1/2)`` (the default; ties 0.5,
    1.5, 2.5, 3.5 go up) or ``"half_even"`` (``torch.round``, ties to even: 0.5 -> 0, 1.5 -> 2,
    2.5 -> 2, 3.5 -> 4), which is what the reference NI-LIF does. The integer hardware
    (``docs/integer_semantics.md`` §IS-7) implements both exactly. The backward pass is a straight-through
    estimator with a rectangular window: ``dS/dU = 1/D`` for ``0 <= U <= D`` and 0 outside. The
    reset subtracts ``S.detach()`` (the reference does the same). With ``T = 1`` the neuron is a
    stateless quantiser.

    The learnable decay is one scalar per layer per timestep slot: ``decay_logit`` holds
    ``MAX_TIMESTEPS - 1 = 2`` logits (slot ``t - 1`` is used at step ``t``), initialised so that
    ``beta = 0.25``. A T=1 model never uses them; keeping the slots makes T1 and T3 state dicts
    identical in shape (T1 -> T3 fine-tuning).

    Subclass hooks for the quantisation layer: :meth:`decay` (replace ``beta * h`` by a shift-add
    form) and :meth:`quantize` (the firing function).

    Parameters
    ----------
    levels : int
        ``D``, the number of spike levels (4).
    rounding : str
        Fire rounding, ``"half_up"`` or ``"half_even"`` (see :data:`ROUNDING`).
    """

    def __init__(self, levels: int = LEVELS, rounding: str = "half_up"):
        super().__init__()
        self.levels = int(levels)
        self.rounding = check_rounding(rounding)
        init = math.log(DECAY_INIT / (1 - DECAY_INIT))
        self.decay_logit = nn.Parameter(torch.full((MAX_TIMESTEPS - 1,), init))

    def beta(self, t: int) -> torch.Tensor:
        """Decay factor used at step ``t >= 1`` (a 0-d tensor in (0, 1))."""
        return torch.sigmoid(self.decay_logit[t - 1])

    def decay(self, h: torch.Tensor, t: int) -> torch.Tensor:
        """Leak applied to the reset membrane before step ``t``: ``beta_t * h``."""
        return self.beta(t) * h

    def quantize(self, u: torch.Tensor) -> torch.Tensor:
        """Fire: normalised multi-level spike ``round(clip(u, 0, D)) / D`` with this layer's rounding."""
        return _MultiLevelSTE.apply(u, self.levels, self.rounding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, ...] -> [T, B, ...]
        T = x.shape[0]
        check_timesteps(T, "neuron input")
        if T == 1:
            return self.quantize(x)
        out = []
        h = None
        for t in range(T):
            u = x[t] if t == 0 else self.decay(h, t) + x[t]
            s = self.quantize(u)
            h = u - s.detach()
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, rounding={self.rounding}"


class ReLUNeuron(NILIF):
    """ANN twin of :class:`NILIF`: ``S = clip(X, 0, D) / D`` per timestep, no state, no rounding.

    The output range equals the spiking neuron's ([0, 1]), so an ANN-twin model has the same
    architecture, weights shapes and scale; only the activation is continuous. The (unused)
    ``decay_logit`` parameters are kept so state dicts match the spiking model's.
    """

    def quantize(self, u: torch.Tensor) -> torch.Tensor:
        return torch.clamp(u, 0, self.levels) / self.levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_timesteps(x.shape[0], "neuron input")
        return self.quantize(x)


def neuron_factory(ann: bool = False, levels: int = LEVELS, rounding: str = "half_up"):
    """A zero-argument constructor for the model's neuron layers (NI-LIF, or ReLU when ``ann``)."""
    cls = ReLUNeuron if ann else NILIF
    check_rounding(rounding)
    return lambda: cls(levels, rounding)


class FiringRateMonitor(ForwardHooks):
    """Record the spike-firing rate of every neuron layer of ``model`` (spec §3.4).

    Used as a context manager; forward hooks on every :class:`NILIF` (and ANN twin) record, per
    call, ``mean(S) * D`` per timestep, i.e. the mean integer spike count in ``[0, D]``. Calls
    are averaged per timestep index. Wrap ``encode_template`` and ``encode_search`` in separate
    monitors to get per-branch figures (the branches share the neuron modules).

    Examples
    --------
    >>> with FiringRateMonitor(model) as mon:
    ...     model(z, x)
    >>> mon.rates()["backbone.stem_block.sep.sn1"]   # [rate_t0, rate_t1, ...]
    """

    KINDS = (NILIF,)

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self._sums: dict[str, list[float]] = {}
        self._counts: dict[str, list[int]] = {}

    def _hook(self, name: str):
        def fn(module, inputs, output):
            levels = module.levels
            per_t = (output.detach().float().flatten(1).mean(1) * levels).tolist()
            sums = self._sums.setdefault(name, [])
            counts = self._counts.setdefault(name, [])
            for t, r in enumerate(per_t):
                if t == len(sums):
                    sums.append(0.0)
                    counts.append(0)
                sums[t] += r
                counts[t] += 1
        return fn

    def rates(self) -> dict[str, list[float]]:
        """``{layer name: [mean integer count at t=0, t=1, ...]}`` for every layer that fired."""
        return {k: [s / c for s, c in zip(self._sums[k], self._counts[k])] for k in self._sums}
