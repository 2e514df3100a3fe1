"""One way to observe a model: forward hooks on every module of some kinds, as a context manager."""

from __future__ import annotations

from torch import nn


class ForwardHooks:
    """Register :meth:`_hook` (``name -> hook fn``) on every module of ``model`` that is one of ``KINDS``.

    Subclasses set ``KINDS`` and implement ``_hook``; the hooks live inside the ``with`` block.
    """

    KINDS: tuple = ()

    def __init__(self, model: nn.Module):
        self.model = model
        self._handles: list = []

    def _hook(self, name: str):
        raise NotImplementedError

    def __enter__(self):
        for name, m in self.model.named_modules():
            if isinstance(m, self.KINDS):
                self._handles.append(m.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
