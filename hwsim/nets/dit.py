"""A small Diffusion Transformer (Peebles & Xie 2023): patchify, adaLN-Zero blocks, unpatchify.

The default config (patch 4 on 28x28 -> 49 tokens, width 64, depth 4, 4 heads) has about
0.32 M parameters, the same budget as the default U-Net.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hwsim.nets.common import MatMul, TimestepEmbedding


@dataclass(frozen=True)
class DiTConfig:
    in_channels: int = 1
    image_size: int = 28
    patch_size: int = 4  # image_size must be divisible by it
    dim: int = 64  # token width
    depth: int = 4  # transformer blocks
    heads: int = 4
    mlp_ratio: int = 4  # hidden width of the MLP = mlp_ratio * dim

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} not divisible by patch_size {self.patch_size}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} not divisible by {self.heads} heads")


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position embedding [grid*grid, dim] (as in MAE and DiT)."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (np.arange(quarter) / quarter)
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    parts = []
    for pos in (ys.reshape(-1), xs.reshape(-1)):
        args = pos[:, None] * omega[None]
        parts += [np.sin(args), np.cos(args)]
    emb = np.concatenate(parts, axis=1)
    return torch.from_numpy(np.pad(emb, ((0, 0), (0, dim - emb.shape[1])))).float()


class Modulation(nn.Module):
    """adaLN: LayerNorm without affine, then ``x * (1 + scale) + shift`` from the condition."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.qk = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.av = MatMul()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn = self.softmax(self.qk(q * self.scale, k.transpose(-1, -2)))
        return self.proj(self.av(attn, v).transpose(1, 2).reshape(n, length, dim))


class DiTBlock(nn.Module):
    """Attention and MLP, each modulated and gated by the condition (adaLN-Zero)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim = cfg.dim
        self.ada_act = nn.SiLU()
        self.ada = nn.Linear(dim, 6 * dim)
        self.mod1 = Modulation(dim)
        self.attn = Attention(dim, cfg.heads)
        self.mod2 = Modulation(dim)
        self.fc1 = nn.Linear(dim, cfg.mlp_ratio * dim)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(cfg.mlp_ratio * dim, dim)
        nn.init.zeros_(self.ada.weight)  # adaLN-Zero: every block starts as the identity
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(self.ada_act(c)).chunk(6, dim=1)
        x = x + gate1[:, None] * self.attn(self.mod1(x, shift1, scale1))
        return x + gate2[:, None] * self.fc2(self.mlp_act(self.fc1(self.mod2(x, shift2, scale2))))


class DiT(nn.Module):
    """eps-prediction DiT: ``forward(x_t [N,C,H,W], t [N] int) -> eps [N,C,H,W]``."""

    FIRST_LAYER, LAST_LAYER = "patchify", "head"  # for the precision plan's first/last rules

    def __init__(self, config: DiTConfig = DiTConfig()):
        super().__init__()
        self.config = cfg = config
        self.grid = cfg.image_size // cfg.patch_size
        self.patchify = nn.Conv2d(cfg.in_channels, cfg.dim, cfg.patch_size, stride=cfg.patch_size)
        self.register_buffer("pos", sincos_2d(cfg.dim, self.grid), persistent=False)
        self.time_embed = TimestepEmbedding(cfg.dim, cfg.dim)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final_ada_act = nn.SiLU()
        self.final_ada = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.final_mod = Modulation(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.patch_size**2 * cfg.in_channels)
        for layer in (self.final_ada, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cfg, n = self.config, x.shape[0]
        h = self.patchify(x).flatten(2).transpose(1, 2) + self.pos  # [N, L, dim]
        c = self.time_embed(t)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(self.final_ada_act(c)).chunk(2, dim=1)
        h = self.head(self.final_mod(h, shift, scale))  # [N, L, p*p*C]
        p, g = cfg.patch_size, self.grid
        h = h.reshape(n, g, g, p, p, cfg.in_channels).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(n, cfg.in_channels, g * p, g * p)
