"""AdaRound (Nagel et al., ICML 2020): learn whether each weight rounds down or up so that the
layer's output on calibration data stays close to the float layer's, instead of rounding to
nearest. The building block of BRECQ's block reconstruction, here layer by layer.

The learned rounding is written back as float weights that are exact multiples of the
(power-of-two) weight scale, so the ordinary quantizer reproduces the chosen integers and
nothing else changes: the integer graph and the simulator need no new op. The element of
largest magnitude in each scale group is nudged by a quarter step (still rounding to the same
integer) so that re-deriving the power-of-two scale from the weights gives the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hwsim.quant.hooks import run_hooked
from hwsim.quant.modules import po2_scale
from hwsim.quant.plan import LayerPrecision

ZETA, GAMMA = 1.1, -0.1  # rectified sigmoid stretch (the AdaRound paper's values)


@dataclass(frozen=True)
class AdaRoundConfig:
    iterations: int = 400
    lr: float = 3e-2
    reg_weight: float = 0.01  # lambda of the rounding regularizer
    beta_start: float = 20.0  # annealed to beta_end over the iterations after warmup
    beta_end: float = 2.0
    warmup: float = 0.2  # fraction of iterations without the regularizer
    batch: int = 32  # calibration images per iteration


def _h(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def weight_scale(layer: nn.Module, prec: LayerPrecision, in_max: float) -> torch.Tensor:
    """The weight scale the quantized layer will use (from the same Brevitas quantizer)."""
    from hwsim.quant.quantize import _quant_layer

    return _quant_layer(layer, prec, in_max).quant_weight().scale.detach().to(layer.weight.dtype)


def _layer_fn(layer: nn.Module):
    """The layer's function of (input, weight) in float32 (optimization needs no float64)."""
    bias = None if layer.bias is None else layer.bias.detach().float()
    if isinstance(layer, nn.Conv2d):
        return lambda x, w: F.conv2d(x, w, bias, layer.stride, layer.padding)
    return lambda x, w: F.linear(x, w, bias)


def adaround_layer(layer: nn.Module, prec: LayerPrecision, in_max: float, inputs: torch.Tensor,
                   cfg: AdaRoundConfig = AdaRoundConfig(), seed: int = 0) -> torch.Tensor:
    """The learned integer weights of ``layer`` (int64, the layer's weight shape).

    ``inputs`` are the layer's float inputs on calibration data; the layer sees them quantized by
    its input quantizer and is asked to reproduce its float output on the float inputs.
    """
    w = layer.weight.detach().float()
    scale = weight_scale(layer, prec, in_max).float()
    qmax = 2 ** (prec.weight_bits - 1) - 1
    qmin = -qmax - 1
    s_in = po2_scale(in_max, prec.act_bits)
    amax = 2 ** (prec.act_bits - 1)
    x_float = inputs.float()
    x_q = torch.clamp(torch.round(x_float / s_in), -amax, amax - 1) * s_in
    fn = _layer_fn(layer)
    with torch.no_grad():
        target = fn(x_float, w)
    floor = torch.floor(w / scale)
    frac = (w / scale - floor).clamp(1e-4, 1 - 1e-4)
    v = nn.Parameter(-torch.log((ZETA - GAMMA) / (frac - GAMMA) - 1))  # h(v) = frac at the start
    opt = torch.optim.Adam([v], lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    warm = int(cfg.warmup * cfg.iterations)
    for it in range(cfg.iterations):
        idx = torch.randint(0, len(x_q), (min(cfg.batch, len(x_q)),), generator=gen)
        w_soft = torch.clamp(floor + _h(v), qmin, qmax) * scale
        loss = F.mse_loss(fn(x_q[idx], w_soft), target[idx])
        if it >= warm:
            progress = (it - warm) / max(1, cfg.iterations - warm)
            beta = cfg.beta_end + (cfg.beta_start - cfg.beta_end) * (1 - progress)
            loss = loss + cfg.reg_weight * (1 - (2 * _h(v) - 1).abs().pow(beta)).sum() / v.numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return torch.clamp(floor + (_h(v) >= 0.5).float(), qmin, qmax).to(torch.int64)


def grid_weights(w_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Float weights w_int * scale, the largest |value| per scale group nudged by scale/4 away from
    zero (same integer after rounding) so the power-of-two scale re-derives unchanged."""
    w = w_int.double() * scale.double()
    groups = w.reshape(scale.numel(), -1) if scale.numel() > 1 else w.reshape(1, -1)
    s = scale.double().reshape(-1, 1)
    top = groups.abs().argmax(dim=1, keepdim=True)
    peak = groups.gather(1, top)
    groups.scatter_(1, top, peak + torch.sign(peak) * s / 4)
    return groups.reshape(w.shape)


@torch.no_grad()
def layer_inputs(net: nn.Module, names: list[str], inputs, images: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """The float inputs of the named layers on ``images`` calibration images drawn across ``inputs``."""
    x_all = torch.cat([x for x, _ in inputs])
    t_all = torch.cat([t for _, t in inputs])
    pick = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(seed))[:images]
    captured: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    modules = dict(net.named_modules())
    hooks = [(modules[n], lambda m, a, o, n=n: captured[n].append(a[0].detach())) for n in names]
    run_hooked(net, hooks, [(x_all[chunk], t_all[chunk]) for chunk in pick.split(16)])
    return {n: torch.cat(v) for n, v in captured.items()}


DEFAULT = AdaRoundConfig()


def apply(ctx, cfg: AdaRoundConfig | None = None) -> None:
    """Replace every Conv/Linear weight of ``ctx.model.net`` by its AdaRound grid weights."""
    from hwsim.quant.plan import resolve_for_net

    cfg = cfg or DEFAULT
    net = ctx.model.net
    precision = resolve_for_net(ctx.plan, net)
    names = [n for n in precision if n in ctx.ranges and precision[n].weight_granularity != "per_group"]
    inputs = layer_inputs(net, names, ctx.inputs, seed=ctx.calib.seed)
    modules = dict(net.named_modules())
    changed = {}
    for i, name in enumerate(names):
        layer, in_max = modules[name], ctx.ranges[name]["in0"]
        w_int = adaround_layer(layer, precision[name], in_max, inputs[name], cfg, seed=ctx.calib.seed + i)
        scale = weight_scale(layer, precision[name], in_max)
        qmax = 2 ** (precision[name].weight_bits - 1) - 1
        nearest = torch.clamp(torch.round(layer.weight.detach() / scale), -qmax - 1, qmax).to(torch.int64)
        changed[name] = float((w_int != nearest).double().mean())
        with torch.no_grad():
            layer.weight.copy_(grid_weights(w_int, scale))
    ctx.meta["adaround"] = {"config": vars(cfg), "changed_from_nearest": changed}
