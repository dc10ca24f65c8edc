"""The Denoiser protocol: the one interface between samplers and every backend."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Denoiser(Protocol):
    """Predicts the noise eps in x_t at integer timesteps t."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t float [N, C, H, W], t int64 [N] -> eps float [N, C, H, W]."""
        ...


class TorchDenoiser:
    """A PyTorch module (float or Brevitas) in eval mode, without autograd."""

    def __init__(self, module: nn.Module):
        self.module = module.eval()

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.module(x_t, t)
