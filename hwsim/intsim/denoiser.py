"""The Denoiser backed by the integer simulator, so samplers and FID run on what hardware computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hwsim.intsim.executor import Simulator


class IntsimDenoiser:
    """``__call__(x_t, t) -> eps`` through :class:`Simulator` (float32 out, like the float nets)."""

    def __init__(self, graph: str | Path, saturate: bool = False):
        self.simulator = Simulator(graph, saturate=saturate)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.simulator.run(x_t.detach().numpy().astype(np.float64), t.detach().numpy())
        return torch.from_numpy(eps).float()
