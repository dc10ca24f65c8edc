"""SmoothQuant (Xiao et al., ICML 2023) for the DiT, the equalization PTQ4DiT builds on:
activation outliers live in a few input channels of the Linear layers after adaLN, so divide
those channels by ``s_j = max|X_j|^alpha / max|W_j|^(1-alpha)`` and multiply the weights' input
columns by ``s_j``. The float function is unchanged.

Where the division goes: the layers fed by a modulation (qkv after mod1, fc1 after mod2, the
head after the final modulation) see ``norm(x) * (1 + scale) + shift`` with scale and shift
from the adaLN Linear, so 1/s is folded into that Linear's scale and shift rows (``(1 + scale)/s
- 1`` and ``shift/s`` are affine in its output). The per-timestep tables of the quantized net
then carry it for free. brevitas.graph.equalize does not serve here: it equalizes
weight-weight pairs across activations it can see through, not a layer fed by adaLN.
"""

from __future__ import annotations

import torch
from torch import nn

from hwsim.quant.hooks import run_hooked

ALPHA = 0.5  # migration strength, SmoothQuant's default


def _targets(net: nn.Module):
    """(ada Linear, shift chunk, scale chunk, number of chunks, consumer Linear) of every modulated layer."""
    out = []
    for block in net.blocks:
        out.append((block.ada, 0, 1, 6, block.attn.qkv))
        out.append((block.ada, 3, 4, 6, block.fc1))
    out.append((net.final_ada, 0, 1, 2, net.head))
    return out


@torch.no_grad()
def _input_peaks(net: nn.Module, layers: list[nn.Module], inputs) -> list[torch.Tensor]:
    peaks = [None] * len(layers)

    def hook(i):
        def fn(module, args, output):
            p = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(dim=0)
            peaks[i] = p if peaks[i] is None else torch.maximum(peaks[i], p)
        return fn

    run_hooked(net, [(layer, hook(i)) for i, layer in enumerate(layers)], inputs)
    return peaks


@torch.no_grad()
def smooth(net: nn.Module, inputs, alpha: float = ALPHA) -> dict[str, list[float]]:
    """Apply the smoothing in place; returns the factors' range per consumer layer."""
    from hwsim.nets.dit import DiT

    if not isinstance(net, DiT):
        raise ValueError(f"smoothquant: implemented for the DiT's adaLN-fed layers, not a {type(net).__name__}")
    targets = _targets(net)
    peaks = _input_peaks(net, [t[4] for t in targets], inputs)
    names = {m: n for n, m in net.named_modules()}
    report = {}
    for (ada, shift_i, scale_i, chunks, layer), a in zip(targets, peaks):
        w = layer.weight.abs().amax(dim=0)
        s = (a.clamp_min(1e-8) ** alpha / w.clamp_min(1e-8) ** (1 - alpha)).clamp(1e-3, 1e3)
        dim = layer.in_features
        rows = lambda i: slice(i * dim, (i + 1) * dim)  # noqa: E731
        ada.weight[rows(shift_i)] /= s[:, None]
        ada.bias[rows(shift_i)] /= s
        ada.weight[rows(scale_i)] /= s[:, None]
        ada.bias[rows(scale_i)] = (ada.bias[rows(scale_i)] + 1) / s - 1
        layer.weight *= s[None, :]
        report[names[layer]] = [float(s.min()), float(s.max())]
    return report


def apply(ctx) -> None:
    ctx.meta["smoothquant"] = {"alpha": ALPHA, "factor_range": smooth(ctx.model.net, ctx.inputs)}
