"""Run a net over calibration inputs with forward hooks attached, then detach them: the one
pattern behind every statistic the PTQ steps collect."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

Hook = Callable[[nn.Module, tuple, object], None]


@torch.no_grad()
def run_hooked(net: nn.Module, hooks: Iterable[tuple[nn.Module, Hook]], inputs) -> None:
    """``net(x, t)`` for every (x, t) in ``inputs`` (x cast to the net's dtype) with ``hooks``."""
    dtype = next(net.parameters()).dtype
    handles = [module.register_forward_hook(fn) for module, fn in hooks]
    try:
        for x, t in inputs:
            net(x.to(dtype), t)
    finally:
        for handle in handles:
            handle.remove()
