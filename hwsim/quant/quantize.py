"""Turn a float hwsim net into its hardware-exact quantized twin from a precision plan.

The calibration ranges (:mod:`hwsim.quant.calibrate`, collected on :func:`prepared`) give every
quantizer its clipping range. Conv/Linear layers become Brevitas ``QuantConv2d``/``QuantLinear`` (power-of-two
weight and input scales, INT32 bias at the accumulator scale), the ops Brevitas keeps in float
become the hardware-exact modules of :mod:`hwsim.quant.modules`, and the time embedding becomes
per-timestep tables. Run the result in float64 (``.double()``): then every tensor is an exact
integer multiple of its power-of-two scale (docs/numerics.md).
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint, Int8WeightPerTensorFixedPoint
from brevitas.quant.scaled_int import Int32Bias
from torch import nn

from hwsim.diffusion.denoiser import TorchDenoiser
from hwsim.nets.common import MatMul
from hwsim.nets.dit import DiT, DiTBlock
from hwsim.nets.unet import ResBlock, UNet
from hwsim.quant import modules as hw
from hwsim.quant.calibrate import Ranges, collect_ranges, zero_point_grid
from hwsim.quant.float_scales import fixed_point_multiplier
from hwsim.quant.plan import PrecisionPlan, in_timestep_table, resolve_for_net


def _attentions(net: nn.Module):
    return [m for m in net.modules() if hasattr(m, "qkv") and getattr(m, "scale", 1.0) != 1.0]


def fold_attention_scale(net: nn.Module) -> nn.Module:
    """Fold attention's 1/sqrt(d) into the query rows of qkv (a non-power-of-two multiply would
    otherwise sit between two quantizers). The float function is unchanged."""
    for module in _attentions(net):
        c = module.qkv.out_features // 3
        with torch.no_grad():
            module.qkv.weight[:c] *= module.scale
            module.qkv.bias[:c] *= module.scale
    return mark_folded(net)


def mark_folded(net: nn.Module) -> nn.Module:
    """Declare the attention scale already folded into the weights (a net rebuilt to load them)."""
    for module in _attentions(net):
        module.scale = 1.0
    return net


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def _integer_input_layer(layer: nn.Module, prec, in_range: tuple[float, float]) -> nn.Module:
    """``layer`` behind an integer input grid (hw.IntegerInputLayer) for float scales and zero points.

    Input: with float scales, the gain ``in_mult * 2^-n`` is (2^(b-1) - 1) / max|x| (or, with a
    zero point, (2^b - 1) / (hi - lo)) rounded *down* to ``mantissa_bits``; with power-of-two
    scales it is 1 / the scale :func:`zero_point_grid` gives. Weights: with float scales, the
    scale per output channel (or per tensor) is :func:`weight_peaks` / (2^(w-1) - 1) rounded up
    to the mantissa (the weights clipped to it); with power-of-two ones, the ordinary power-of-two
    weight quantizer."""
    k, bits, (lo, hi) = prec.mantissa_bits, prec.act_bits, in_range
    if prec.scale == "float":
        levels, span = (2**bits - 1, hi - lo) if prec.act_zero_point else (2 ** (bits - 1) - 1, max(-lo, hi))
        in_mult, in_shift = fixed_point_multiplier(levels / max(span, 1e-8), k, "down")
    else:
        in_mult, in_shift, k = 1, round(math.log2(zero_point_grid(lo, hi, bits)[0])), 0
    gain = in_mult * 2.0**-in_shift  # q = round(x * gain)
    zero_point = min(max(round(-lo * gain), 0), 2**bits - 1) if prec.act_zero_point else None
    w = layer.weight.detach().double() / gain
    if prec.scale == "float":
        rows = "per_channel" if prec.weight_granularity == "per_group" else prec.weight_granularity  # groups: po2 within a row
        peaks = weight_peaks(w.reshape(w.shape[0], -1), prec.weight_bits, rows, prec.weight_clip)
        bound = peaks.reshape(-1, *[1] * (w.ndim - 1))
        w = torch.maximum(torch.minimum(w, bound), -bound)  # the clip (a no-op for max): integers stay within +-(2^(w-1) - 1)
        out_mult = torch.tensor([fixed_point_multiplier(float(p) / (2 ** (prec.weight_bits - 1) - 1), k, "up")[0]
                                 for p in peaks])
    else:
        out_mult = torch.ones(w.shape[0], dtype=torch.int64)
    factor = out_mult.double() * 2.0**-k  # float: in [1/2, 1), the mantissa; the power of two stays in the po2 weight scale
    inner = copy.deepcopy(layer).double()
    inner.weight.data = w / factor.reshape(-1, *[1] * (w.ndim - 1))
    if inner.bias is not None:
        inner.bias.data = inner.bias.data.double() / factor
    # input grid: the integers (scale 1), one bit wider with a zero point ([-z, 2^b - 1 - z])
    wide = bits + 1 if prec.act_zero_point else bits
    plain = dataclasses.replace(prec, scale="po2", act_zero_point=False, act_bits=wide, weight_clip="max")
    q = _quant_layer(inner, plain, float(2 ** (wide - 1)))
    return hw.IntegerInputLayer(q, bits, in_mult, -in_shift, out_mult, k, channel_axis=1 if isinstance(layer, nn.Conv2d) else -1,
                                zero_point=zero_point)


CLIP_CANDIDATES = torch.arange(1.0, 0.195, -0.01, dtype=torch.float64)  # BRECQ's and Q-Diffusion's search grid


def weight_peaks(w: torch.Tensor, bits: int, granularity: str, clip: str = "max") -> torch.Tensor:
    """Per output row of ``w`` [O, K], the range its float weight scale covers (range / (2^(b-1) - 1)):
    the largest |weight| (``max``; per tensor, the largest of all rows), or (``mse``) the fraction of
    it, from 1 down to 0.2 in steps of 0.01, with the least squared rounding-and-clipping error."""
    peak = w.abs().amax(dim=1).clamp_min(1e-12)
    if granularity != "per_channel":
        peak = peak.max().expand_as(peak)
    if clip == "max":
        return peak
    qmax = 2 ** (bits - 1) - 1
    flat = w if granularity == "per_channel" else w.reshape(1, -1)
    top = peak[: len(flat)]
    scales = CLIP_CANDIDATES[:, None] * top[None, :] / qmax  # [A, O]
    errors = torch.stack([((torch.clamp(torch.round(flat / s[:, None]), -qmax, qmax) * s[:, None] - flat) ** 2).sum(dim=1)
                          for s in scales])
    best = CLIP_CANDIDATES[errors.argmin(dim=0)] * top
    return best.expand_as(peak) if granularity != "per_channel" else best


def _quant_layer(layer: nn.Module, prec, in_max: float, in_range: tuple[float, float] | None = None) -> nn.Module:
    """The quantized twin of a Conv2d/Linear by its precision ``prec``; ``in_max`` is the
    calibrated max |input|, ``in_range`` the signed [lo, hi] that a zero point needs."""
    if prec.act_zero_point:
        if in_range is None:
            raise ValueError("act_zero_point needs the calibrated signed input range (in0_lo/in0_hi); recalibrate with this plan")
        return _integer_input_layer(layer, prec, in_range)
    if prec.scale == "float":
        return _integer_input_layer(layer, prec, (-in_max, in_max))
    if prec.weight_granularity == "per_group":
        return hw.GroupQuantLayer(layer, prec.weight_bits, prec.group_size, prec.act_bits, in_max)
    weight_quant = Int8WeightPerChannelFixedPoint if prec.weight_granularity == "per_channel" else Int8WeightPerTensorFixedPoint
    common = dict(weight_quant=weight_quant, weight_bit_width=prec.weight_bits, bias_quant=Int32Bias,
                  input_quant=hw.Int8ActPerTensorFixedPointMinMaxInit, input_bit_width=prec.act_bits,
                  input_min_val=-max(in_max, 1e-8), input_max_val=max(in_max, 1e-8), return_quant_tensor=False)
    if isinstance(layer, nn.Conv2d):
        q = QuantConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, bias=layer.bias is not None, **common)
    else:
        q = QuantLinear(layer.in_features, layer.out_features, bias=layer.bias is not None, **common)
    q.load_state_dict(layer.state_dict(), strict=False)
    return q


def layer_for(layer: nn.Module, prec, r: dict[str, float]) -> nn.Module:
    """:func:`_quant_layer` with the input range from the layer's calibration entry ``r``."""
    in_range = (r["in0_lo"], r["in0_hi"]) if "in0_lo" in r else None
    return _quant_layer(layer, prec, r.get("in0", 0.0), in_range)


def output_grid(layer: nn.Module) -> torch.Tensor:
    """Per output channel, the power-of-two scale of a quantized layer's exact output integers
    (the accumulator's; for float scales, the accumulator times its mantissa)."""
    if isinstance(layer, hw.IntegerInputLayer):
        return output_grid(layer.layer) * 2.0**-layer.mantissa_bits
    return (layer.quant_weight().scale.reshape(-1) * layer.input_quant.scale()).detach().double()


def prepared(net: nn.Module) -> nn.Module:
    """The float64 copy that is quantized (attention scale folded); calibrate on this."""
    return fold_attention_scale(copy.deepcopy(net).double().eval())


def _check_ranges(net: nn.Module, ranges: Ranges) -> None:
    needed = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.GroupNorm, nn.SiLU, nn.GELU,
                                                                  nn.Softmax, MatMul))]
    missing = [n for n in needed if n not in ranges]
    if missing:
        raise ValueError(f"calibration ranges miss {len(missing)} modules, e.g. {missing[:3]}; were they collected on this net?")


@torch.no_grad()
def quantize_unet(net: UNet, plan: PrecisionPlan, ranges: Ranges, num_train_timesteps: int,
                  split_concat: bool = False) -> nn.Module:
    """The hardware-exact quantized twin of a float U-Net (float64; the float net is not modified).

    ``split_concat``: Q-Diffusion's split shortcut at every skip concatenation (hw.SplitConcat).
    """
    net = prepared(net)
    _check_ranges(net, ranges)
    precision = resolve_for_net(plan, net)
    bits, nl_bits = plan.default.act_bits, plan.nonlinear_act_bits  # concatenations; nonlinear ops

    # time embedding -> per-timestep tables, computed with the float MLP before anything changes
    all_t = torch.arange(num_train_timesteps)
    temb = net.time_embed(all_t)
    tables = {name: m.temb_proj(m.temb_act(temb)) for name, m in net.named_modules() if isinstance(m, ResBlock)}

    if split_concat:
        _split_concats(net, precision, ranges, bits, nl_bits)
    _replace_common(net, precision, ranges, nl_bits)
    net.time_embed = hw.PassTimestep()
    for name, module in net.named_modules():
        if isinstance(module, ResBlock):
            scale = output_grid(module.conv1)
            module.temb_act = nn.Identity()
            module.temb_proj = hw.TimestepTable(tables[name], scale.double())
    return net.double().eval()


def _split_concats(net: UNet, precision, ranges: Ranges, bits: int, nl_bits: int) -> None:
    """Split-quantize every skip concatenation; its consumers (the next block's norm1 and 1x1
    shortcut) read it wider at the finer scale, so they hold both halves exactly."""
    for i, level in enumerate(net.up):
        r = ranges[f"concat.{i}"]
        split = hw.SplitConcat(bits, r["in0"], r["in1"])
        net.concat[i] = split
        block, prefix = level.blocks[0], f"up.{i}.blocks.0"
        wide_bits = bits + split.shift_bits
        gn = ranges[f"{prefix}.norm1"]
        block.norm1 = hw.IntGroupNorm(block.norm1, nl_bits, split.wide_max, gn["out"], int(gn.get("spatial", 1)), wide_bits)
        if isinstance(block.shortcut, nn.Conv2d):
            prec = precision[f"{prefix}.shortcut"]
            # po2 scales without a zero point: a float scale or a zero point would requantize the
            # two halves onto one grid again
            wide = dataclasses.replace(prec, act_bits=prec.act_bits + split.shift_bits, scale="po2", act_zero_point=False,
                                       weight_clip="max")
            block.shortcut = _quant_layer(block.shortcut, wide, split.wide_max)


def _replace_common(net: nn.Module, precision, ranges, bits: int) -> None:
    """Swap layers and nonlinearities for their quantized / hardware-exact twins, by module name
    (the nonlinearities at ``bits``); the modules that become per-timestep tables stay float."""
    for name, module in list(net.named_modules()):
        if not name or in_timestep_table(name):
            continue
        r = ranges.get(name, {})
        if isinstance(module, (QuantConv2d, QuantLinear, hw.GroupQuantLayer)):
            continue  # already quantized (a split concatenation's consumer)
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            try:
                _set(net, name, layer_for(module, precision[name], r))
            except (ValueError, NotImplementedError) as err:
                raise type(err)(f"layer {name}: {err}") from None
        elif isinstance(module, nn.GroupNorm):
            _set(net, name, hw.IntGroupNorm(module, bits, r["in0"], r["out"], int(r.get("spatial", 1))))
        elif isinstance(module, nn.SiLU):
            _set(net, name, hw.LUTActivation("silu", bits, r["in0"], r["out"]))
        elif isinstance(module, nn.GELU):
            _set(net, name, hw.LUTActivation("gelu_tanh", bits, r["in0"], r["out"]))
        elif isinstance(module, nn.Softmax):
            _set(net, name, hw.IntSoftmax(bits, r["in0"]))
        elif isinstance(module, MatMul):
            _set(net, name, hw.QuantMatMul(bits, r["in0"], bits, r["in1"]))


TABLE_BITS = 16  # width of the adaLN tables (ROM words)


def _chunk_table(values: torch.Tensor, chunks: int) -> tuple[torch.Tensor, list[int]]:
    """Per-chunk power-of-two scales for a [T, chunks*D] table: (scale per column, exponent per chunk)."""
    d = values.shape[1] // chunks
    exps = [int(round(math.log2(hw.po2_scale(float(c.abs().max()), TABLE_BITS)))) for c in values.split(d, dim=1)]
    scale = torch.tensor([2.0**e for e in exps for _ in range(d)], dtype=torch.float64)
    return scale, exps


@torch.no_grad()
def quantize_dit(net: DiT, plan: PrecisionPlan, ranges: Ranges, num_train_timesteps: int) -> nn.Module:
    """The hardware-exact quantized twin of a float DiT (float64; the float net is not modified)."""
    net = prepared(net)
    _check_ranges(net, ranges)
    precision = resolve_for_net(plan, net)
    bits = plan.nonlinear_act_bits  # adaLN, softmax, attention matmuls, GELU
    dim = net.config.dim

    c = net.time_embed(torch.arange(num_train_timesteps))
    tables = {name: (m.ada(m.ada_act(c)), 6) for name, m in net.named_modules() if isinstance(m, DiTBlock)}
    tables[""] = (net.final_ada(net.final_ada_act(c)), 2)
    _replace_common(net, precision, ranges, bits)

    net.time_embed = hw.PassTimestep()
    for prefix, (values, chunks) in tables.items():
        owner = net.get_submodule(prefix) if prefix else net
        scale, exps = _chunk_table(values, chunks)
        table = hw.TimestepTable(values, scale)
        mods = [("mod1", 0, 1), ("mod2", 3, 4)] if chunks == 6 else [("final_mod", 0, 1)]
        for mod_name, shift_i, scale_i in mods:
            full = f"{prefix}.{mod_name}" if prefix else mod_name
            r = ranges[full]
            setattr(owner, mod_name, hw.IntModulation(dim, bits, r["in0"], r["out"], exps[scale_i], exps[shift_i]))
        if chunks == 6:
            owner.ada_act, owner.ada = nn.Identity(), table
        else:
            owner.final_ada_act, owner.final_ada = nn.Identity(), table
    # the fixed position embedding is added to the patchify accumulator: store it at that scale
    acc_scale = float(output_grid(net.patchify).min())
    net.pos = torch.round(net.pos.double() / acc_scale) * acc_scale
    return net.double().eval()


@torch.no_grad()
def quantize_layers_only(net: nn.Module, plan: PrecisionPlan, ranges: Ranges) -> nn.Module:
    """Plain Brevitas fake-quant: Conv/Linear quantized (same quantizers and calibration as the
    hardware-exact net), everything else left in float. The baseline a Brevitas user would export."""
    net = fold_attention_scale(copy.deepcopy(net).eval())
    precision = resolve_for_net(plan, net)
    for name, module in list(net.named_modules()):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            _set(net, name, layer_for(module, precision[name], ranges.get(name, {})))
    return net.eval()


def quantize_net(net: nn.Module, plan: PrecisionPlan, ranges: Ranges, num_train_timesteps: int,
                 split_concat: bool = False) -> nn.Module:
    """Dispatch on the net's type (U-Net or DiT)."""
    if isinstance(net, UNet):
        return quantize_unet(net, plan, ranges, num_train_timesteps, split_concat)
    if split_concat:
        raise ValueError(f"split-shortcut quantizes skip concatenations, which a {type(net).__name__} does not have")
    if isinstance(net, DiT):
        return quantize_dit(net, plan, ranges, num_train_timesteps)
    raise NotImplementedError(f"no quantization recipe for {type(net).__name__}")


def quantize_calibrated(net: nn.Module, plan: PrecisionPlan, inputs: list[tuple[torch.Tensor, torch.Tensor]],
                        num_train_timesteps: int) -> nn.Module:
    """Min-max ranges over ``inputs`` (calibration points (x_t, t)), then :func:`quantize_net`."""
    zero_points = any(p.act_zero_point for p in resolve_for_net(plan, net).values())
    return quantize_net(net, plan, collect_ranges(prepared(net), inputs, zero_points), num_train_timesteps)


def quantized_denoiser(qnet: nn.Module) -> TorchDenoiser:
    """A Denoiser running the quantized net in float64 and returning float32 eps."""

    class _Float64(TorchDenoiser):
        @torch.no_grad()
        def __call__(self, x_t, t):
            return self.module(x_t.double(), t).float()

    return _Float64(qnet)
