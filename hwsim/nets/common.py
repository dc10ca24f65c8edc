"""Building blocks shared by the U-Net and the DiT.

Every non-linearity and normalization is an ``nn.Module`` attribute (never an ``F.`` call) so
that the quantization pass can swap it by module name for its hardware-exact counterpart.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """DDPM/Transformer sinusoidal embedding of integer timesteps: [N] -> [N, dim].

    Depends only on t, which is why the hardware path stores it (and the MLP after it) as a
    per-timestep constant table instead of computing it.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.to(torch.float32)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of t followed by a two-layer MLP."""

    def __init__(self, freq_dim: int, out_dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        self.linear1 = nn.Linear(freq_dim, out_dim)
        self.act = nn.SiLU()
        self.linear2 = nn.Linear(out_dim, out_dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = sinusoidal_embedding(t, self.freq_dim).to(self.linear1.weight.dtype)
        return self.linear2(self.act(self.linear1(emb)))


class MatMul(nn.Module):
    """Activation x activation product (attention's QK^T and AV) as a swappable module."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
