"""Noise schedules: the forward process q(x_t | x_0) of DDPM (Ho et al. 2020)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ScheduleConfig:
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"  # "linear" (DDPM) or "cosine" (Nichol & Dhariwal 2021)
    beta_start: float = 1e-4  # linear only
    beta_end: float = 0.02  # linear only

    def __post_init__(self):
        if self.beta_schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown beta_schedule {self.beta_schedule!r}; use 'linear' or 'cosine'")
        if self.num_train_timesteps < 2:
            raise ValueError("num_train_timesteps must be at least 2")


class NoiseSchedule:
    """betas, alphas and their cumulative products (float64, to keep the closed forms exact)."""

    def __init__(self, config: ScheduleConfig = ScheduleConfig()):
        self.config = config
        steps = config.num_train_timesteps
        if config.beta_schedule == "linear":
            self.betas = torch.linspace(config.beta_start, config.beta_end, steps, dtype=torch.float64)
        else:
            s = 0.008
            f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + s) / (1 + s) * math.pi / 2) ** 2
            self.betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, per sample timestep t [N]."""
        abar = self.alphas_cumprod[t].to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise
