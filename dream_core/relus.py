"""ReLUs that let a picture grown from noise find its way out of a dead channel (for channel pictures).

A channel that is zero everywhere on a picture, because every ReLU on its way is shut, gives a zero gradient: the
picture never moves, and the channel's picture stays grey (half of a randomly initialised GoogLeNet's inception4c
channels are zero on any noise). Inside `redirected_relus()`, each ReLU (and ReLU6) passes its gradient on as
usual; only for a picture whose whole gradient the ReLU would block, it passes the part that pushes its shut
inputs up (towards opening) and still blocks the part that would push them further down (lucid's
"redirected ReLU gradient", written here for torch). The forward pass is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class _RedirectedClamp(torch.autograd.Function):
    """`x.clamp(low, high)` (ReLU: high None) whose gradient is redirected where the clamp blocks all of it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, low: float, high: float | None) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        below, above = x < ctx.low, (x > ctx.high) if ctx.high is not None else torch.zeros_like(x, dtype=torch.bool)
        passed = grad.masked_fill(below | above, 0)
        # Where the clamp blocks, let through only what moves the input back inside (up from below, down from above).
        redirected = grad.masked_fill((below & (grad < 0)) | (above & (grad > 0)), 0)
        if passed.ndim == 0:
            return passed, None, None
        blocked = passed.flatten(1).abs().amax(1) == 0  # per picture: nothing gets through at all
        blocked = blocked.view(-1, *([1] * (passed.ndim - 1)))
        return torch.where(blocked, redirected, passed), None, None


_RELUS = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
_RELU6 = {F.relu6}


class _Redirecting(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS and args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
            return _RedirectedClamp.apply(args[0], 0.0, None)
        if func in _RELU6 and args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
            return _RedirectedClamp.apply(args[0], 0.0, 6.0)
        if func is F.hardtanh and args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
            low, high = _hardtanh_bounds(args, kwargs)
            if (low, high) == (0.0, 6.0):  # nn.ReLU6
                return _RedirectedClamp.apply(args[0], 0.0, 6.0)
        return func(*args, **kwargs)


def _hardtanh_bounds(args: tuple, kwargs: dict) -> tuple[float, float]:
    low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
    return float(low), float(high)


@contextmanager
def redirected_relus() -> Iterator[None]:
    """Within: ReLUs and ReLU6s called through torch's functions (nn.ReLU, F.relu, torch.relu, ...) redirect their
    gradient as the module says."""
    with _Redirecting():
        yield
