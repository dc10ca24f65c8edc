"""Quantization-aware distillation of the weights (EfficientDM-style, data-free).

EfficientDM (He et al., 2023; in the seeds' surveys) fine-tunes a low-bit diffusion model so that
its noise prediction matches the full-precision model's on the full-precision model's own sampling
trajectories: no training data, and the objective is the whole net's output at every timestep
rather than one layer's or block's (AdaRound, BRECQ). Here the quantized twin itself is trained,
so the forward pass is the hardware's (every quantizer, integer GroupNorm, lookup-table
activation, integer softmax, split concatenation), with straight-through gradients:

- weights and biases of every quantized Conv/Linear are trained through Brevitas' own
  straight-through weight quantizers (scales re-derived from the weights as they change);
- an integer input grid (float scales, zero points) rounds straight through;
- a hardware-exact nonlinear module returns its exact output but passes the float module's
  gradient (the float net's module of the same name).

EfficientDM trains LoRA adapters to save memory on large nets; these nets are small enough to
train the weights themselves. Its learned activation step sizes (TALSQ) are not taken: the
activation ranges stay those calibration chose. After training the weights are written back into
the float net, which is then quantized as usual, so the integer graph is unchanged in kind and the
later stages (bias correction, PTQD, trajectory bias) see the trained net. Layers with group-wise
weights keep their nearest rounding (their integers are buffers, not trained).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from torch import nn

from hwsim.quant import modules as hw
from hwsim.quant.methods.adaround import quantized_layers


@dataclass(frozen=True)
class DistillConfig:
    iterations: int = 400
    batch: int = 32  # images per step, drawn across the calibration trajectories' (x_t, t)
    # Adam's step per iteration in the float net's weight units: a layer behind an integer input
    # grid holds its weights divided by the grid's gain and mantissa, and gets lr divided likewise
    lr: float = 1e-4


DEFAULT = DistillConfig()


class _StraightInput(nn.Module):
    """An IntegerInputLayer whose input rounding passes gradients straight through (same output)."""

    def __init__(self, m: hw.IntegerInputLayer):
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.m
        scaled = x * (m.in_mult * 2.0**m.in_exp)
        q = scaled + (torch.clamp(torch.round(scaled), m.qmin, m.qmax) - scaled).detach()
        y = m.layer(q)
        return y * m.out_factor(y.ndim)


class _StraightThrough(nn.Module):
    """The exact module's output with the float module's gradient."""

    def __init__(self, exact: nn.Module, ref: nn.Module):
        super().__init__()
        self.exact, self.ref = exact, ref

    def forward(self, *args):
        ref = self.ref(*args)
        return ref + (self.exact(*args) - ref).detach()


EXACT_NONLINEAR = (hw.IntGroupNorm, hw.LUTActivation, hw.IntSoftmax, hw.IntModulation)


def _trainable(qnet: nn.Module, float_net: nn.Module, names: list[str]) -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """Make ``qnet`` differentiable in place; per trained layer name, its Brevitas layer and the
    per-output-channel factors from that layer's weights and bias to the float net's (1 unless it
    sits behind an integer input grid: the float scale's mantissa, times the grid's gain for the
    weights; hwsim.quant.quantize._integer_input_layer divides by them)."""
    floats = dict(float_net.named_modules())
    layers = {}
    wrapped: list[str] = []
    for name, m in list(qnet.named_modules()):
        if any(name.startswith(w + ".") for w in wrapped):
            continue  # inside a module already wrapped: reached through the wrapper
        parent, _, attr = name.rpartition(".")
        owner = qnet.get_submodule(parent) if parent else qnet
        if isinstance(m, (hw.IntegerInputLayer, *EXACT_NONLINEAR)):
            wrapped.append(name)
        if isinstance(m, hw.IntegerInputLayer):
            setattr(owner, attr, _StraightInput(m))
            if name in names and isinstance(m.layer, (QuantConv2d, QuantLinear)):
                mantissa = m.out_mult.double() * 2.0**-m.mantissa_bits
                layers[name] = (m.layer, mantissa * (m.in_mult * 2.0**m.in_exp), mantissa)
        elif isinstance(m, EXACT_NONLINEAR) and name in floats:
            setattr(owner, attr, _StraightThrough(m, floats[name]))
        elif name in names and isinstance(m, (QuantConv2d, QuantLinear)):
            # a plain layer's weights are the float ones (Brevitas holds float32 copies); behind an
            # integer input grid they are divided, and clipped where the grid clips, so not checked
            if not torch.allclose(m.weight.detach(), floats[name].weight.detach(), rtol=1e-6, atol=1e-9):
                raise RuntimeError(f"distill: layer {name}'s quantized weights are not its float weights")
            one = torch.ones(m.weight.shape[0], dtype=torch.float64)
            layers[name] = (m, one, one)
    return layers


def _training_net(ctx) -> nn.Module:
    """The quantized net the later stages build: with the split shortcut if it is among the
    methods (its stage runs after this one)."""
    from hwsim.quant.qmodel import QuantizedModel

    if ctx.group_ranges:
        raise ValueError("distill: timestep groups (one net per group) are not supported; use a plan without them")
    split = bool(ctx.meta.get("split_concat")) or "split-shortcut" in ctx.meta.get("methods", ())
    return QuantizedModel(ctx.model, ctx.plan, ctx.ranges, {**ctx.meta, "split_concat": split}).net()


def apply(ctx, cfg: DistillConfig | None = None) -> None:
    """Train the quantized twin's weights against the float net's output, then write them back."""
    cfg = cfg or DEFAULT
    _, names = quantized_layers(ctx)
    float_net = ctx.model.net
    qnet = _training_net(ctx)
    layers = _trainable(qnet, float_net, names)
    groups = [{"params": [p for p in (layer.weight, layer.bias) if p is not None], "lr": cfg.lr / float(w_factor.mean())}
              for layer, w_factor, _ in layers.values()]
    for p in qnet.parameters():
        p.requires_grad_(False)
    for group in groups:
        for p in group["params"]:
            p.requires_grad_(True)
    x_all = torch.cat([x for x, _ in ctx.inputs]).double()
    t_all = torch.cat([t for _, t in ctx.inputs])
    with torch.no_grad():
        target = torch.cat([float_net(x_all[i:i + 256], t_all[i:i + 256]) for i in range(0, len(x_all), 256)])
    gen = torch.Generator().manual_seed(ctx.calib.seed)
    opt = torch.optim.Adam(groups)
    losses, started = [], time.time()
    qnet.train(False)
    gridded = [name for name in layers if isinstance(qnet.get_submodule(name), _StraightInput)]
    peaks = {name: _row_peaks(layers[name][0].weight) for name in gridded}
    before = {name: _integers(layer) for name, (layer, _, _) in layers.items()}
    for _ in range(cfg.iterations):
        pick = torch.randint(len(x_all), (cfg.batch,), generator=gen)
        loss = ((qnet(x_all[pick], t_all[pick]) - target[pick]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for name in gridded:
                _pin_peaks(layers[name][0].weight, *peaks[name])
        losses.append(float(loss.detach()))
    trained = {name: _integers(layer) for name, (layer, _, _) in layers.items()}
    floats = dict(float_net.named_modules())
    with torch.no_grad():
        for name, (layer, w_factor, b_factor) in layers.items():
            floats[name].weight.copy_(layer.weight * w_factor.reshape(-1, *[1] * (layer.weight.ndim - 1)))
            if layer.bias is not None:
                floats[name].bias.copy_(layer.bias * b_factor)
    window = max(1, cfg.iterations // 10)
    ctx.meta["distill"] = {
        "config": vars(cfg), "images": len(x_all), "seconds": round(time.time() - started, 1),
        "loss_first": sum(losses[:window]) / window, "loss_last": sum(losses[-window:]) / window,
        "changed_from_nearest": {n: float((trained[n] != before[n]).double().mean()) for n in sorted(layers)},
        "requantized_differs": _requantized_differs(ctx, trained)}


def _row_peaks(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each output row's largest |weight|: where it is and its value."""
    flat = w.detach().reshape(len(w), -1)
    where = flat.abs().argmax(dim=1)
    return where, flat[torch.arange(len(flat)), where].clone()


def _pin_peaks(w: torch.Tensor, where: torch.Tensor, value: torch.Tensor) -> None:
    """Hold each row's largest |weight| and keep the others within it, for a layer behind an
    integer input grid: its weights were divided by a mantissa derived from the row's peak, which
    re-quantization derives again from the written-back weights; with the peak held it is the
    same, so re-quantizing gives the trained integers. (A plain Brevitas layer re-derives its
    power-of-two scales from its weights at every forward, in training as in re-quantization.)"""
    flat = w.data.reshape(len(w), -1)
    bound = value.abs()[:, None]
    flat.copy_(torch.maximum(torch.minimum(flat, bound), -bound))
    flat[torch.arange(len(flat)), where] = value


def _integers(layer: nn.Module) -> torch.Tensor:
    return layer.quant_weight().int().detach().to(torch.int64)


def _requantized_differs(ctx, trained: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per layer, the fraction of integers the re-quantized net computes with that differ from the
    trained ones (0 unless a clipping range re-derived from the new weights moved)."""
    qnet = dict(_training_net(ctx).named_modules())
    out = {}
    for name, ints in trained.items():
        m = qnet[name]
        got = _integers(m.layer if isinstance(m, hw.IntegerInputLayer) else m)
        out[name] = float((got != ints).double().mean())
    return out
