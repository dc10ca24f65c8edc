"""AdaRound (Nagel et al., ICML 2020): learn whether each weight rounds down or up so that the
layer's output on calibration data stays close to the float layer's, instead of rounding to
nearest. The building block of BRECQ's block reconstruction, here layer by layer.

The rounding is learned on the grids of the layer's quantized twin (:class:`LayerGrid`): power-of-
two or float weight scales, symmetric inputs or inputs with a zero point. It is written back as
float weights on that grid, so the ordinary quantizer reproduces the chosen integers and nothing
else changes: the integer graph and the simulator need no new op. The weights are placed so that
re-deriving the scale from them gives the same scale (a power-of-two scale's peak nudged a
quarter step outwards, a float scale's peak kept at the grid's end), and :func:`commit` checks
that the twin then computes with exactly the learned integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hwsim.quant import modules as hw
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


@dataclass(frozen=True)
class LayerGrid:
    """The grids the quantized twin of one layer puts its weight and input on, in the float layer's
    units: weight = integer * ``scale`` (per output row), input = clamp(round(x * ``in_gain``),
    ``in_low``, ``in_high``) / ``in_gain``. Read off the twin itself (a Brevitas layer or
    hw.IntegerInputLayer), so power-of-two and float scales and zero points are learned on the grid
    the hardware computes. The integers stay in Brevitas' narrow range [-``qmax``, ``qmax``]: a
    learned -2^(w-1) would be clamped, and its nudged peak would double a power-of-two scale."""

    scale: torch.Tensor
    qmax: int
    in_gain: float
    in_low: int
    in_high: int
    float_scale: bool  # the scale is re-derived from the weights' peak per row (not a power of two)

    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the input grid, with a straight-through gradient (so a block's reconstruction
        loss reaches the layers before it)."""
        q = torch.clamp(torch.round(x * self.in_gain), self.in_low, self.in_high) / self.in_gain
        return x + (q - x).detach() if x.requires_grad else q


def _twin(layer: nn.Module, prec: LayerPrecision, r: dict) -> nn.Module:
    from hwsim.quant.quantize import layer_for

    return layer_for(layer, prec, r)


def _weight_layer(twin: nn.Module) -> nn.Module:
    """The Brevitas layer holding the twin's integer weights."""
    return twin.layer if isinstance(twin, hw.IntegerInputLayer) else twin


def twin_integers(layer: nn.Module, prec: LayerPrecision, r: dict) -> torch.Tensor:
    """The integer weights the quantized twin of ``layer`` computes with (int64)."""
    return _weight_layer(_twin(layer, prec, r)).quant_weight().int().detach().to(torch.int64)


def layer_grid(layer: nn.Module, prec: LayerPrecision, r: dict) -> LayerGrid:
    """The grids of ``layer``'s quantized twin at its calibration entry ``r``."""
    twin = _twin(layer, prec, r)
    qmax = 2 ** (prec.weight_bits - 1) - 1
    scale = _weight_layer(twin).quant_weight().scale.detach().double()
    if not isinstance(twin, hw.IntegerInputLayer):
        top = 2 ** (prec.act_bits - 1)
        return LayerGrid(scale.float(), qmax, 1 / po2_scale(r["in0"], prec.act_bits), -top, top - 1, False)
    gain = twin.in_mult * 2.0**twin.in_exp  # q = round(x * gain); the twin's output is rescaled by out_mult * 2^-k
    factor = (twin.out_mult.double() * 2.0**-twin.mantissa_bits).reshape(-1, *[1] * (layer.weight.ndim - 1))
    return LayerGrid((scale * factor * gain).float(), qmax, gain, twin.qmin, twin.qmax, prec.scale == "float")


def layer_fn(layer: nn.Module):
    """The layer's function of (input, weight) in float32 (optimization needs no float64)."""
    bias = None if layer.bias is None else layer.bias.detach().float()
    if isinstance(layer, nn.Conv2d):
        return lambda x, w: F.conv2d(x, w, bias, layer.stride, layer.padding)
    return lambda x, w: F.linear(x, w, bias)


class Rounding(nn.Module):
    """One layer's learnable rounding: weight = clamp(floor(w/s) + h(v), -qmax, qmax) * s, with
    h(v) starting at the fractional part (the float weight) and pushed to 0 or 1 by the regularizer."""

    def __init__(self, layer: nn.Module, grid: LayerGrid):
        super().__init__()
        self.register_buffer("scale", grid.scale)
        self.qmax = grid.qmax
        w = torch.clamp(layer.weight.detach().float() / self.scale, -self.qmax, self.qmax)  # a clipped float grid clips here
        self.register_buffer("floor", torch.floor(w))
        frac = (w - self.floor).clamp(1e-4, 1 - 1e-4)
        self.v = nn.Parameter(-torch.log((ZETA - GAMMA) / (frac - GAMMA) - 1))  # h(v) = frac at the start

    def soft(self) -> torch.Tensor:
        return torch.clamp(self.floor + _h(self.v), -self.qmax, self.qmax) * self.scale

    def regularizer(self, beta: float) -> torch.Tensor:
        return (1 - (2 * _h(self.v) - 1).abs().pow(beta)).sum() / self.v.numel()

    @torch.no_grad()
    def integers(self) -> torch.Tensor:
        return torch.clamp(self.floor + (_h(self.v) >= 0.5).float(), -self.qmax, self.qmax).to(torch.int64)


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


def adaround_layer(layer: nn.Module, grid: LayerGrid, inputs: torch.Tensor,
                   cfg: AdaRoundConfig = AdaRoundConfig(), seed: int = 0) -> torch.Tensor:
    """The learned integer weights of ``layer`` (int64, the layer's weight shape) on ``grid``.

    ``inputs`` are the layer's float inputs on calibration data; the layer sees them on its input
    grid and is asked to reproduce its float output on the float inputs.
    """
    x_float = inputs.float()
    x_q = grid.quant_input(x_float)
    fn = layer_fn(layer)
    with torch.no_grad():
        target = fn(x_float, layer.weight.detach().float())
    norm = float(target.pow(2).mean()) or 1.0
    rounding = Rounding(layer, grid)
    optimize([rounding], lambda idx: F.mse_loss(fn(x_q[idx], rounding.soft()), target[idx]) / norm, cfg, len(x_q), seed)
    return rounding.integers()


def po2_grid_weights(w_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Float weights w_int * scale, the largest |value| per scale group nudged by scale/4 away from
    zero (same integer after rounding) so the power-of-two scale re-derives unchanged."""
    w = w_int.double() * scale.double()
    groups = w.reshape(scale.numel(), -1) if scale.numel() > 1 else w.reshape(1, -1)
    s = scale.double().reshape(-1, 1)
    top = groups.abs().argmax(dim=1, keepdim=True)
    peak = groups.gather(1, top)
    groups.scatter_(1, top, peak + torch.sign(peak) * s / 4)
    return groups.reshape(w.shape)


FLOAT_SHRINK = 1 - 2.0**-20  # above float32's rounding, below a mantissa step of the re-derived scale


def float_grid_weights(w_int: torch.Tensor, nearest: torch.Tensor, weight: torch.Tensor, grid: LayerGrid,
                       per_tensor: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Float weights whose float scale re-derives unchanged, the integers they quantize to, and how
    many scale groups kept their float weights.

    A float scale is the weights' peak over ``qmax`` (rounded up to its mantissa): the peak of a
    scale group must stay at +-``qmax``. Where no learned integer of a group reaches it, the
    element rounding to nearest at +-``qmax`` keeps that integer; a group that does not reach it
    even to nearest keeps its float weights (and its nearest integers). Every value is shrunk by
    2^-20 so that the re-derived scale, rounded up, is the same."""
    ints, near = w_int.clone(), nearest
    groups = 1 if per_tensor else len(ints)
    flat, near_flat = ints.reshape(groups, -1), near.reshape(groups, -1)
    reached = (flat.abs() == grid.qmax).any(dim=1)
    near_peak = near_flat.abs().argmax(dim=1)
    rows = torch.arange(len(flat))
    pin = ~reached & (near_flat[rows, near_peak].abs() == grid.qmax)
    flat[rows[pin], near_peak[pin]] = near_flat[rows[pin], near_peak[pin]]
    keep = ~reached & ~pin
    flat[keep] = near_flat[keep]
    w = (ints.double() * grid.scale.double() * FLOAT_SHRINK).reshape(flat.shape)
    w[keep] = weight.detach().double().reshape(flat.shape)[keep]
    return w.reshape(ints.shape), ints, int(keep.sum())


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
def commit(name: str, layer: nn.Module, w_int: torch.Tensor, prec: LayerPrecision, r: dict) -> tuple[float, int]:
    """Write ``w_int`` into ``layer`` as grid weights, checked: the layer's quantized twin must
    compute with exactly these integers (a float grid may keep a few at nearest, see
    :func:`float_grid_weights`). Returns the fraction of weights whose integer differs from
    rounding to nearest, and the number of scale groups left at their float weights."""
    grid, nearest = layer_grid(layer, prec, r), twin_integers(layer, prec, r)
    kept = 0
    if grid.float_scale:
        weights, w_int, kept = float_grid_weights(w_int, nearest, layer.weight, grid,
                                                  prec.weight_granularity == "per_tensor")
    else:
        weights = po2_grid_weights(w_int, grid.scale)
    layer.weight.copy_(weights)
    got = twin_integers(layer, prec, r)
    if not torch.equal(got, w_int):
        raise RuntimeError(f"{name}: the learned rounding did not survive re-quantization ({int((got != w_int).sum())} of "
                           f"{w_int.numel()} integers differ); its weight grid was re-derived differently")
    return float((w_int != nearest).double().mean()), kept


def apply(ctx, cfg: AdaRoundConfig | None = None) -> None:
    """Replace every Conv/Linear weight of ``ctx.model.net`` by its AdaRound grid weights."""
    cfg = cfg or DEFAULT
    precision, names = quantized_layers(ctx)
    inputs = layer_inputs(ctx.model.net, names, ctx.inputs, cfg.images, seed=ctx.calib.seed)
    modules = dict(ctx.model.net.named_modules())
    changed, kept = {}, {}
    for i, name in enumerate(names):
        layer, prec, r = modules[name], precision[name], ctx.ranges[name]
        w_int = adaround_layer(layer, layer_grid(layer, prec, r), inputs[name], cfg, seed=ctx.calib.seed + i)
        changed[name], kept[name] = commit(name, layer, w_int, prec, r)
    ctx.meta["adaround"] = {"config": vars(cfg), "changed_from_nearest": changed, "groups_kept_float": kept_float(kept)}


def kept_float(kept: dict[str, int]) -> dict[str, int]:
    """The layers with scale groups a float grid left at their float weights, and how many."""
    return {name: n for name, n in kept.items() if n}
