"""BRECQ (Li et al., ICLR 2021): block reconstruction. The AdaRound variables of every Conv and
Linear inside one block (a U-Net residual or attention block, a DiT block) are learned together,
so that the block's output, with rounded weights and each weight layer's input through its
calibrated activation quantizer, matches the float block's output on calibration data. Errors
one layer makes can then be compensated by the next layer of the same block, which layer-wise
AdaRound cannot do. Layers outside every block (first and last convolutions, down/upsampling,
patch embedding) are rounded layer by layer, as AdaRound does.

Departures from the paper, for the integer path and this CPU: activation scales stay the
calibrated ones (no LSQ step learned with the rounding); the block sees float
inputs (not the already-quantized model's); the loss is the plain output MSE (no Fisher
weighting); GroupNorm, SiLU, softmax and the attention matmuls stay float inside the loop (the
hardware-exact modules replace them after the weights are fixed). As AdaRound, the result is
written back as grid weights, so the integer graph needs nothing new.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from hwsim.quant.methods.adaround import (DEFAULT, AdaRoundConfig, LayerGrid, Rounding, adaround_layer, commit, kept_float,
                                          layer_grid, module_io, optimize, quantized_layers)


def block_types() -> tuple[type, ...]:
    from hwsim.nets.dit import DiTBlock
    from hwsim.nets.unet import AttentionBlock, ResBlock

    return ResBlock, AttentionBlock, DiTBlock


def blocks_of(net: nn.Module, layers: list[str]) -> dict[str, list[str]]:
    """Each reconstruction block of ``net`` and the given layers inside it, in network order;
    blocks without any of the layers are left out."""
    found = {}
    for name, module in net.named_modules():
        if isinstance(module, block_types()):
            inside = [n for n in layers if n.startswith(name + ".")]
            if inside:
                found[name] = inside
    return found


def reconstruct_block(block: nn.Module, layers: dict[str, LayerGrid], args: tuple[torch.Tensor, ...], target: torch.Tensor,
                      cfg: AdaRoundConfig = DEFAULT, seed: int = 0) -> dict[str, torch.Tensor]:
    """The learned integer weights of ``layers`` (name relative to ``block`` -> its grids) that
    make ``block(*args)`` reproduce ``target``; ``block`` itself is not changed."""
    work = copy.deepcopy(block).float()
    modules = dict(work.named_modules())
    roundings = {n: Rounding(modules[n], grid) for n, grid in layers.items()}
    for n, grid in layers.items():
        modules[n].register_forward_pre_hook(lambda m, a, grid=grid: (grid.quant_input(a[0]),) + a[1:])
    args32 = tuple(a.float() for a in args)
    target32 = target.float()
    norm = float(target32.pow(2).mean()) or 1.0

    def loss(idx):
        weights = {f"{n}.weight": r.soft() for n, r in roundings.items()}
        return F.mse_loss(functional_call(work, weights, tuple(a[idx] for a in args32)), target32[idx]) / norm

    optimize(list(roundings.values()), loss, cfg, len(target32), seed)
    return {n: r.integers() for n, r in roundings.items()}


def apply(ctx, cfg: AdaRoundConfig | None = None) -> None:
    """Replace every Conv/Linear weight of ``ctx.model.net`` by block-reconstructed grid weights."""
    cfg = cfg or DEFAULT
    net = ctx.model.net
    precision, names = quantized_layers(ctx)
    blocks = blocks_of(net, names)
    in_blocks = {n for inside in blocks.values() for n in inside}
    alone = [n for n in names if n not in in_blocks]
    modules = dict(net.named_modules())
    io = module_io(net, list(blocks) + alone, ctx.inputs, cfg.images, seed=ctx.calib.seed, outputs=True)
    changed, kept = {}, {}
    for i, (block_name, inside) in enumerate(blocks.items()):
        args, target = io[block_name]
        rel = {n[len(block_name) + 1:]: layer_grid(modules[n], precision[n], ctx.ranges[n]) for n in inside}
        learned = reconstruct_block(modules[block_name], rel, args, target, cfg, seed=ctx.calib.seed + i)
        for n in inside:
            changed[n], kept[n] = commit(n, modules[n], learned[n[len(block_name) + 1:]], precision[n], ctx.ranges[n])
    for i, n in enumerate(alone):
        grid = layer_grid(modules[n], precision[n], ctx.ranges[n])
        w_int = adaround_layer(modules[n], grid, io[n][0][0], cfg, seed=ctx.calib.seed + len(blocks) + i)
        changed[n], kept[n] = commit(n, modules[n], w_int, precision[n], ctx.ranges[n])
    ctx.meta["brecq"] = {"config": vars(cfg), "blocks": blocks, "layer_by_layer": alone, "changed_from_nearest": changed,
                         "groups_kept_float": kept_float(kept)}
