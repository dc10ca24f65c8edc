"""Empirical bias correction (Nagel et al., "Data-Free Quantization", ICCV 2019; the idea behind
"Softmax Bias Correction for Quantized Generative Models", ICCV-W 2023, in the seeds): rounding
errors that are unbiased weight by weight are not unbiased layer by layer. ``sum_k dW[c, k] *
E[x_k]`` is a fixed offset of output channel ``c`` wherever the inputs have a non-zero mean (every
input after a SiLU), and 8-bit softmax and GroupNorm outputs shift the mean of what follows them.
Through 50 sampling steps such an offset in the predicted noise adds up coherently, while noise
of zero mean averages out.

Measured, not assumed: on unet-digits W8A8 it lowers the output MSE and halves the output's mean
error (tests/quant/test_methods.py), yet on unet-fashion W8A8 the samples come out brighter than
the float model's and FID gets worse, against the data and against the float model's own samples
(experiments/results/ptq_table/README.md, session 16): per-step error on the float model's
trajectories is not what the sampled images feel.

Each quantized Conv/Linear, in execution order, gets its float bias lowered by the mean per
output channel of (quantized output - float output) over calibration inputs, measured on the
whole hardware-exact net with every earlier layer already corrected (correcting all layers at
once overshoots: a layer's error then counts both its own offset and the offsets of the layers
before it, which are being removed too). The correction is an ordinary bias, quantized to the
INT32 accumulator scale like any other: the integer graph, the simulator and the RTL need
nothing new, and unlike PTQD (a correction of the output on the host) it removes each offset
where it arises, before nonlinearities distort it. One constant per channel serves all
timesteps: the part of the offset that moves with t stays.
"""

from __future__ import annotations

import torch
from torch import nn

from hwsim.quant.methods.adaround import quantized_layers
from hwsim.quant.timestep_groups import layer_name

IMAGES = 512  # calibration images the means are taken over, spread over the trajectories' timesteps


class _Reached(Exception):
    """Raised by a hook once the layer being corrected has run: the rest of the forward is not needed."""


def _channel_sum(module: nn.Module, out: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum per output channel and the number of values each sum covers (channels: dim 1 of a
    convolution's output, the last dim of a linear layer's)."""
    out = out.detach().double()
    conv = isinstance(module, nn.Conv2d) or getattr(module, "channel_axis", -1) == 1  # IntegerInputLayer, GroupQuantLayer
    channels = out.movedim(1, -1) if conv else out
    flat = channels.reshape(-1, channels.shape[-1])
    return flat.sum(dim=0), flat.shape[0]


def execution_order(net: nn.Module, names: list[str], x: torch.Tensor, t: torch.Tensor) -> list[str]:
    """``names`` in the order the layers run in ``net(x, t)``; a layer that runs more than once
    per forward is an error (its one bias could not be corrected for both uses)."""
    calls: list[str] = []
    wanted = set(names)
    hooks = [m.register_forward_hook(lambda m, a, o, n=n: calls.append(n))
             for n, m in net.named_modules() if n in wanted]
    try:
        with torch.no_grad():
            net(x.to(next(net.parameters()).dtype), t)
    finally:
        for h in hooks:
            h.remove()
    repeated = sorted({n for n in calls if calls.count(n) > 1})
    if repeated:
        raise ValueError(f"bias-correction: layers {repeated} run more than once per forward")
    return calls


@torch.no_grad()
def _channel_means(net: nn.Module, layers: dict[str, str], inputs, stop: bool = False) -> dict[str, torch.Tensor]:
    """Mean per output channel of the modules of ``net`` named in ``layers`` (module name -> the
    layer's name in the float net: a grouped net has one module per group), over ``inputs``; with
    ``stop``, each forward ends once such a module has run (the rest of the net is not needed)."""
    sums: dict[str, list] = {}

    def hook(layer):
        def fn(module, args, out):
            s, count = _channel_sum(module, out)
            total = sums.setdefault(layer, [0, 0])
            total[0] = total[0] + s
            total[1] += count
            if stop:
                raise _Reached
        return fn

    handles = [m.register_forward_hook(hook(layers[n])) for n, m in net.named_modules() if n in layers]
    try:
        for x, t in inputs:
            try:
                net(x.double(), t)
            except _Reached:
                pass
    finally:
        for h in handles:
            h.remove()
    return {layer: s / count for layer, (s, count) in sums.items()}


@torch.no_grad()
def apply(ctx, images: int = IMAGES) -> None:
    """Lower every quantized layer's float bias by its measured mean output error, in execution order."""
    net = ctx.model.net
    _, names = quantized_layers(ctx)
    per_batch = len(ctx.inputs[0][0])
    inputs = ctx.inputs[:: max(1, len(ctx.inputs) * per_batch // images)]
    modules = dict(net.named_modules())
    without_bias = [n for n in names if modules[n].bias is None]
    if without_bias:
        raise ValueError(f"bias-correction: layers {without_bias} have no bias to correct")
    order = execution_order(net, names, *inputs[0])
    reference = _channel_means(net, {n: n for n in order}, inputs)
    shift = {}
    for name in order:
        qnet = ctx.quantized_net()
        copies = {n: name for n, _ in qnet.named_modules() if layer_name(n) == name}
        error = _channel_means(qnet, copies, inputs, stop=True)[name] - reference[name]
        modules[name].bias -= error.to(modules[name].bias.dtype)
        shift[name] = float(error.abs().max())
    ctx.meta["bias_correction"] = {"images": len(inputs) * per_batch, "order": order, "max_abs_shift": shift}
