"""A small DDPM U-Net (Ho et al. 2020) sized for an FPGA's block RAM.

Residual blocks with GroupNorm + SiLU and an additive time embedding, self-attention at the
lowest resolution, skip concatenations between the down and up paths, nearest upsampling.
The default config has about 0.35 M parameters: 2.8 Mbit at 8 bits, within an ECP5-85F's
3.7 Mbit of block RAM.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hwsim.nets.common import MatMul, TimestepEmbedding


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 1
    image_size: int = 28  # must be divisible by 2 ** (len(channel_mults) - 1)
    base_channels: int = 16  # channels at full resolution
    channel_mults: tuple[int, ...] = (1, 2, 3)  # one level per entry, halving the resolution
    res_blocks: int = 1  # residual blocks per level on the down path (up path has the same)
    attention_levels: tuple[int, ...] = (2,)  # levels with self-attention (the middle always has it)
    groups: int = 8  # GroupNorm groups
    heads: int = 1  # attention heads

    def __post_init__(self):
        levels = len(self.channel_mults)
        if self.image_size % (2 ** (levels - 1)):
            raise ValueError(f"image_size {self.image_size} not divisible by 2**{levels - 1}")
        bad = [lvl for lvl in self.attention_levels if not 0 <= lvl < levels]
        if bad:
            raise ValueError(f"attention_levels {bad} out of range for {levels} levels")
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.groups:
                raise ValueError(f"channels {self.base_channels * mult} not divisible by {self.groups} groups")


class ResBlock(nn.Module):
    """GN-SiLU-Conv, + time embedding, GN-SiLU-Conv, plus a (1x1 projected) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.act1 = nn.SiLU()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_act = nn.SiLU()
        self.temb_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.act2 = nn.SiLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act1(self.norm1(x)))
        h = h + self.temb_proj(self.temb_act(temb))[:, :, None, None]
        h = self.conv2(self.act2(self.norm2(h)))
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, ch: int, groups: int, heads: int):
        super().__init__()
        if ch % heads:
            raise ValueError(f"{ch} channels not divisible by {heads} heads")
        self.heads = heads
        self.scale = (ch // heads) ** -0.5
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.qk = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.av = MatMul()
        self.proj = nn.Linear(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, hgt, wid = x.shape
        tokens = self.norm(x).reshape(n, c, hgt * wid).transpose(1, 2)  # [N, L, C]
        q, k, v = self.qkv(tokens).reshape(n, -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = self.softmax(self.qk(q * self.scale, k.transpose(-1, -2)))  # [N, heads, L, L]
        out = self.av(attn, v).transpose(1, 2).reshape(n, hgt * wid, c)
        return x + self.proj(out).transpose(1, 2).reshape(n, c, hgt, wid)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


class Concat(nn.Module):
    """Channel concatenation of a skip connection, a module so its rescaling rule can be swapped."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b], dim=1)


class Level(nn.Module):
    """Residual blocks (each optionally followed by attention) at one resolution."""

    def __init__(self, chans: list[tuple[int, int]], temb_dim: int, cfg: UNetConfig, attention: list[bool]):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(i, o, temb_dim, cfg.groups) for i, o in chans)
        self.attns = nn.ModuleList(
            AttentionBlock(o, cfg.groups, cfg.heads) if att else nn.Identity()
            for (_, o), att in zip(chans, attention)
        )

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        for block, attn in zip(self.blocks, self.attns):
            h = attn(block(h, temb))
        return h


class UNet(nn.Module):
    """eps-prediction U-Net: ``forward(x_t [N,C,H,W], t [N] int) -> eps [N,C,H,W]``."""

    FIRST_LAYER, LAST_LAYER = "conv_in", "conv_out"  # for the precision plan's first/last rules

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = cfg = config
        chans = [cfg.base_channels * m for m in cfg.channel_mults]
        temb_dim = 4 * cfg.base_channels
        self.time_embed = TimestepEmbedding(cfg.base_channels, temb_dim)
        self.conv_in = nn.Conv2d(cfg.in_channels, chans[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = chans[0]
        for lvl, ch in enumerate(chans):
            pairs = [(prev if i == 0 else ch, ch) for i in range(cfg.res_blocks)]
            attention = [lvl in cfg.attention_levels] * cfg.res_blocks
            self.down.append(Level(pairs, temb_dim, cfg, attention))
            prev = ch
            last = lvl == len(chans) - 1
            self.downsample.append(nn.Identity() if last else Downsample(ch))

        self.mid = Level([(prev, prev), (prev, prev)], temb_dim, cfg, [True, False])  # RB-Attn-RB

        self.concat = nn.ModuleList()
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl in reversed(range(len(chans))):
            ch = chans[lvl]
            pairs = [(prev + ch if i == 0 else ch, ch) for i in range(cfg.res_blocks)]
            self.concat.append(Concat())
            self.up.append(Level(pairs, temb_dim, cfg, [lvl in cfg.attention_levels] * cfg.res_blocks))
            self.upsample.append(Upsample(ch) if lvl > 0 else nn.Identity())
            prev = ch

        self.norm_out = nn.GroupNorm(cfg.groups, prev)
        self.act_out = nn.SiLU()
        self.conv_out = nn.Conv2d(prev, cfg.in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_embed(t)
        h = self.conv_in(x)
        skips = []
        for level, down in zip(self.down, self.downsample):
            h = level(h, temb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, temb)
        for concat, level, up in zip(self.concat, self.up, self.upsample):
            h = up(level(concat(h, skips.pop()), temb))
        return self.conv_out(self.act_out(self.norm_out(h)))
