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
    reg_weight: float = 1.0  # lambda of the rounding regularizer, against the output MSE relative to the output's mean square
    beta_start: float = 20.0  # annealed to beta_end over the iterations after warmup
    beta_end: float = 2.0
    warmup: float = 0.2  # fraction of iterations without the regularizer
    batch: int = 32  # calibration images per iteration
    images: int = 256  # calibration images drawn from the trajectories (64 overfit the DiT's 4-bit rounding)


def _h(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def weight_scale(layer: nn.Module, prec: LayerPrecision, in_max: float) -> torch.Tensor:
    """The weight scale the quantized layer will use (from the same Brevitas quantizer)."""
    from hwsim.quant.quantize import _quant_layer

    return _quant_layer(layer, prec, in_max).quant_weight().scale.detach().to(layer.weight.dtype)


def layer_fn(layer: nn.Module):
    """The layer's function of (input, weight) in float32 (optimization needs no float64)."""
    bias = None if layer.bias is None else layer.bias.detach().float()
    if isinstance(layer, nn.Conv2d):
        return lambda x, w: F.conv2d(x, w, bias, layer.stride, layer.padding)
    return lambda x, w: F.linear(x, w, bias)


def fake_quant_input(x: torch.Tensor, in_max: float, bits: int) -> torch.Tensor:
    """``x`` through the layer's signed power-of-two input quantizer, with a straight-through
    gradient (so a block's reconstruction loss reaches the layers before it)."""
    scale = po2_scale(in_max, bits)
    top = 2 ** (bits - 1)
    q = torch.clamp(torch.round(x / scale), -top, top - 1) * scale
    return x + (q - x).detach() if x.requires_grad else q


class Rounding(nn.Module):
    """One layer's learnable rounding: weight = clamp(floor(w/s) + h(v), qmin, qmax) * s, with
    h(v) starting at the fractional part (the float weight) and pushed to 0 or 1 by the regularizer."""

    def __init__(self, layer: nn.Module, prec: LayerPrecision, in_max: float):
        super().__init__()
        w = layer.weight.detach().float()
        self.register_buffer("scale", weight_scale(layer, prec, in_max).float())
        self.qmax = 2 ** (prec.weight_bits - 1) - 1
        self.register_buffer("floor", torch.floor(w / self.scale))
        frac = (w / self.scale - self.floor).clamp(1e-4, 1 - 1e-4)
        self.v = nn.Parameter(-torch.log((ZETA - GAMMA) / (frac - GAMMA) - 1))  # h(v) = frac at the start

    def soft(self) -> torch.Tensor:
        return torch.clamp(self.floor + _h(self.v), -self.qmax - 1, self.qmax) * self.scale

    def regularizer(self, beta: float) -> torch.Tensor:
        return (1 - (2 * _h(self.v) - 1).abs().pow(beta)).sum() / self.v.numel()

    @torch.no_grad()
    def integers(self) -> torch.Tensor:
        return torch.clamp(self.floor + (_h(self.v) >= 0.5).float(), -self.qmax - 1, self.qmax).to(torch.int64)


def optimize(roundings: list[Rounding], loss_fn, cfg: AdaRoundConfig, samples: int, seed: int) -> None:
    """Adam on the roundings' v: ``loss_fn(batch_index)`` (the reconstruction MSE relative to the
    target's mean square, so that one ``reg_weight`` suits every layer) plus, after the warmup, the
    rounding regularizer with beta annealed from beta_start to beta_end. The regularizer must be
    strong enough to drive every h(v) to 0 or 1 by the end: the weights are then rounded at
    h = 1/2, and an undecided h is rounded where the loss never looked (at reg_weight 0.01, 40% of
    a 4-bit conv's h stayed in (0.05, 0.95) and its output MSE was 16x the soft one's)."""
    opt = torch.optim.Adam([r.v for r in roundings], lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    warm = int(cfg.warmup * cfg.iterations)
    for it in range(cfg.iterations):
        loss = loss_fn(torch.randint(0, samples, (min(cfg.batch, samples),), generator=gen))
        if it >= warm:
            progress = (it - warm) / max(1, cfg.iterations - warm)
            beta = cfg.beta_end + (cfg.beta_start - cfg.beta_end) * (1 - progress)
            loss = loss + cfg.reg_weight * sum(r.regularizer(beta) for r in roundings)
        opt.zero_grad()
        loss.backward()
        opt.step()


def adaround_layer(layer: nn.Module, prec: LayerPrecision, in_max: float, inputs: torch.Tensor,
                   cfg: AdaRoundConfig = AdaRoundConfig(), seed: int = 0) -> torch.Tensor:
    """The learned integer weights of ``layer`` (int64, the layer's weight shape).

    ``inputs`` are the layer's float inputs on calibration data; the layer sees them quantized by
    its input quantizer and is asked to reproduce its float output on the float inputs.
    """
    x_float = inputs.float()
    x_q = fake_quant_input(x_float, in_max, prec.act_bits)
    fn = layer_fn(layer)
    with torch.no_grad():
        target = fn(x_float, layer.weight.detach().float())
    norm = float(target.pow(2).mean()) or 1.0
    rounding = Rounding(layer, prec, in_max)
    optimize([rounding], lambda idx: F.mse_loss(fn(x_q[idx], rounding.soft()), target[idx]) / norm, cfg, len(x_q), seed)
    return rounding.integers()


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
def module_io(net: nn.Module, names: list[str], inputs, images: int = 64, seed: int = 0,
              outputs: bool = False) -> dict[str, tuple[tuple[torch.Tensor, ...], torch.Tensor | None]]:
    """The float positional inputs (and, if asked, outputs) of the named modules on ``images``
    calibration images drawn across ``inputs``, each concatenated over the images, in float32
    (what the optimization runs in; half the memory of the float64 net's tensors)."""
    x_all = torch.cat([x for x, _ in inputs])
    t_all = torch.cat([t for _, t in inputs])
    pick = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(seed))[:images]
    captured: dict[str, list] = {n: [] for n in names}
    modules = dict(net.named_modules())

    def hook(name):
        return lambda m, a, o: captured[name].append((tuple(v.detach().float() for v in a), o.detach().float() if outputs else None))
    run_hooked(net, [(modules[n], hook(n)) for n in names], [(x_all[chunk], t_all[chunk]) for chunk in pick.split(16)])
    joined = {}
    for n, calls in captured.items():
        args = tuple(torch.cat([c[0][k] for c in calls]) for k in range(len(calls[0][0])))
        joined[n] = (args, torch.cat([c[1] for c in calls]) if outputs else None)
    return joined


def layer_inputs(net: nn.Module, names: list[str], inputs, images: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """The float inputs of the named layers on ``images`` calibration images drawn across ``inputs``."""
    return {n: args[0] for n, (args, _) in module_io(net, names, inputs, images, seed).items()}


DEFAULT = AdaRoundConfig()


def quantized_layers(ctx) -> tuple[dict[str, LayerPrecision], list[str]]:
    """The plan's precision per layer, and the layers whose rounding can be learned: quantized
    (not folded into a float per-timestep table), calibrated, with one scale per tensor or channel
    (group-wise scales are re-derived per group of inputs)."""
    from hwsim.quant.plan import in_timestep_table, resolve_for_net

    precision = resolve_for_net(ctx.plan, ctx.model.net)
    return precision, [n for n in precision if n in ctx.ranges and not in_timestep_table(n)
                       and precision[n].weight_granularity != "per_group"]


@torch.no_grad()
def commit(layer: nn.Module, w_int: torch.Tensor, prec: LayerPrecision, in_max: float) -> float:
    """Write ``w_int`` into ``layer`` as grid weights; returns the fraction of weights whose
    integer differs from rounding to nearest."""
    scale = weight_scale(layer, prec, in_max)
    qmax = 2 ** (prec.weight_bits - 1) - 1
    nearest = torch.clamp(torch.round(layer.weight / scale), -qmax - 1, qmax).to(torch.int64)
    layer.weight.copy_(grid_weights(w_int, scale))
    return float((w_int != nearest).double().mean())


def po2_only(method: str, precision: dict[str, LayerPrecision], names: list[str]) -> None:
    """The learned grid is the power-of-two one on a symmetric input grid; a float scale or a zero
    point (hw.IntegerInputLayer) would move it."""
    floats = [n for n in names if precision[n].scale == "float"]
    if floats:
        raise ValueError(f"{method} learns power-of-two weight grids; layers {floats[:3]} have scale: float")
    shifted = [n for n in names if precision[n].act_zero_point]
    if shifted:
        raise ValueError(f"{method} learns on symmetric input grids; layers {shifted[:3]} have act_zero_point")


def apply(ctx, cfg: AdaRoundConfig | None = None) -> None:
    """Replace every Conv/Linear weight of ``ctx.model.net`` by its AdaRound grid weights."""
    cfg = cfg or DEFAULT
    precision, names = quantized_layers(ctx)
    po2_only("adaround", precision, names)
    inputs = layer_inputs(ctx.model.net, names, ctx.inputs, cfg.images, seed=ctx.calib.seed)
    modules = dict(ctx.model.net.named_modules())
    changed = {}
    for i, name in enumerate(names):
        layer, prec, in_max = modules[name], precision[name], ctx.ranges[name]["in0"]
        w_int = adaround_layer(layer, prec, in_max, inputs[name], cfg, seed=ctx.calib.seed + i)
        changed[name] = commit(layer, w_int, prec, in_max)
    ctx.meta["adaround"] = {"config": vars(cfg), "changed_from_nearest": changed}
