"""Hardware-exact replacements for the ops Brevitas exports as float (GroupNorm, SiLU/GELU,
softmax, the time embedding), and a quantized activation x activation matmul.

Each module quantizes its input with a Brevitas ``QuantIdentity`` (power-of-two scale) and
computes its output with the numpy reference of the integer op (``hwsim.intsim.ops``), so the
PyTorch forward is, by construction, exactly what the integer graph and the hardware compute
(docs/numerics.md). They are for post-training quantization: no gradients flow through them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from brevitas.nn import QuantIdentity
from brevitas.quant.fixed_point import Int8ActPerTensorFixedPointMinMaxInit
from torch import nn

from hwsim.intsim.ops.lut import build_table, int_range
from hwsim.intsim.ops.norm import check_group_size, fixed_point_affine, groupnorm_ref, modulate_ref
from hwsim.intsim.ops.softmax import build_exp_table, softmax_ref


def po2_scale(max_abs: float, bits: int, signed: bool = True) -> float:
    """Brevitas' fixed-point scale: 2^ceil(log2(max|x|)) / 2^(b-1) (signed) or / 2^b (unsigned)."""
    max_abs = max(float(max_abs), 1e-8)
    return 2.0 ** math.ceil(math.log2(max_abs)) / 2.0 ** (bits - 1 if signed else bits)


def act_quant(bits: int, max_abs: float) -> QuantIdentity:
    """A signed power-of-two activation quantizer whose range is set from calibration."""
    max_abs = max(float(max_abs), 1e-8)
    return QuantIdentity(act_quant=Int8ActPerTensorFixedPointMinMaxInit, bit_width=bits,
                         min_val=-max_abs, max_val=max_abs, return_quant_tensor=True)


def to_int(qt) -> tuple[np.ndarray, float]:
    """A Brevitas QuantTensor -> (int64 numpy array, scale)."""
    scale = float(qt.scale.detach().reshape(-1)[0])
    q = torch.round(qt.value.detach() / scale).to(torch.int64).numpy()
    return q, scale


def _from_int(q: np.ndarray, scale: float, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(q).to(like.dtype) * scale


class IntGroupNorm(nn.Module):
    """Integer GroupNorm (docs/numerics.md): quantized input, exact statistics, fixed-point affine."""

    FT, FG = 12, 10  # fraction bits of the normalized value z and of gamma

    def __init__(self, gn: nn.GroupNorm, bits: int, in_max: float, out_max: float, spatial: int,
                 in_bits: int | None = None):
        """``in_bits`` (default ``bits``): a wider input, as after a split-quantized concatenation."""
        super().__init__()
        self.groups, self.bits, self.in_bits = gn.num_groups, bits, in_bits or bits
        self.in_quant = act_quant(self.in_bits, in_max)
        self.out_scale = po2_scale(out_max, bits)
        check_group_size(gn.num_channels // gn.num_groups * spatial, self.in_bits, "GroupNorm")
        g, b = fixed_point_affine(gn.weight.detach().double().numpy(), gn.bias.detach().double().numpy(),
                                  self.out_scale, self.FT, self.FG)
        self.register_buffer("g_c", torch.from_numpy(g))
        self.register_buffer("b_c", torch.from_numpy(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, _ = to_int(self.in_quant(x))
        lo, hi = int_range(self.bits, True)
        out = groupnorm_ref(q, self.groups, self.g_c.numpy(), self.b_c.numpy(), self.FT, self.FG, lo, hi)
        return _from_int(out, self.out_scale, x)


class IntModulation(nn.Module):
    """DiT's adaLN: integer LayerNorm, then (1 + scale) and shift from per-timestep tables."""

    FT = 12  # fraction bits of the normalized value

    def __init__(self, dim: int, bits: int, in_max: float, out_max: float, e_scale: int, e_shift: int):
        super().__init__()
        if e_scale > 0:
            raise ValueError(f"adaLN scale table exponent {e_scale} > 0: '1 + scale' would not be an integer")
        self.bits, self.e_scale, self.e_shift = bits, e_scale, e_shift
        self.in_quant = act_quant(bits, in_max)
        self.out_scale = po2_scale(out_max, bits)
        check_group_size(dim, bits, "LayerNorm")

    def forward(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        q, _ = to_int(self.in_quant(x))
        s = torch.round(scale.double() * 2.0**-self.e_scale).to(torch.int64).numpy()
        b = torch.round(shift.double() * 2.0**-self.e_shift).to(torch.int64).numpy()
        lo, hi = int_range(self.bits, True)
        e_out = int(round(math.log2(self.out_scale)))
        out = modulate_ref(q, s[:, None], b[:, None], self.FT, self.e_scale, self.e_shift, e_out, lo, hi)
        return _from_int(out, self.out_scale, x)


class LUTActivation(nn.Module):
    """SiLU/GELU as a table indexed by the quantized input."""

    def __init__(self, function: str, bits: int, in_max: float, out_max: float):
        super().__init__()
        self.function, self.bits = function, bits
        self.in_quant = act_quant(bits, in_max)
        self.in_scale = po2_scale(in_max, bits)
        self.out_scale = po2_scale(out_max, bits)
        table = build_table(function, bits, True, self.in_scale, bits, True, self.out_scale)
        self.register_buffer("table", torch.from_numpy(table))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, scale = to_int(self.in_quant(x))
        if scale != self.in_scale:
            raise RuntimeError(f"LUT input scale {scale} differs from the table's {self.in_scale}")
        lo, _ = int_range(self.bits, True)
        return _from_int(self.table.numpy()[q - lo], self.out_scale, x)


class IntSoftmax(nn.Module):
    """Integer softmax over the last axis; output UINT(bits) at scale 2^-(bits-1)."""

    FE = 16  # fraction bits of the exp table

    def __init__(self, bits: int, in_max: float):
        super().__init__()
        self.bits = bits
        self.in_quant = act_quant(bits, in_max)
        in_scale = po2_scale(in_max, bits)
        self.register_buffer("table", torch.from_numpy(build_exp_table(in_scale, self.FE, 2**bits)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, _ = to_int(self.in_quant(x))
        fo = self.bits - 1
        shape = q.shape
        out = softmax_ref(q.reshape(-1, shape[-1]), self.table.numpy(), fo).reshape(shape)
        return _from_int(out, 2.0**-fo, x)


class SplitConcat(nn.Module):
    """Q-Diffusion's split shortcut: the two inputs of a skip concatenation quantized each with its
    own power-of-two scale, then concatenated. Consumers read the result at the finer scale with
    ``shift_bits`` more bits, which holds both halves exactly (a left shift of the coarser one)."""

    def __init__(self, bits: int, max_a: float, max_b: float):
        super().__init__()
        self.quant_a, self.quant_b = act_quant(bits, max_a), act_quant(bits, max_b)
        scales = [po2_scale(max_a, bits), po2_scale(max_b, bits)]
        self.bits = bits
        self.shift_bits = int(round(abs(math.log2(scales[0] / scales[1]))))
        self.wide_max = max(scales) * 2 ** (bits - 1)  # the range consumers must cover

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.quant_a(a).value, self.quant_b(b).value], dim=1)


class GroupQuantLayer(nn.Module):
    """Q-DiT-style group-wise weights of a Linear or Conv2d: one power-of-two scale per (output
    channel, group of ``group_size`` inputs), ``bits`` wide each. A convolution's groups run along
    its input channels at each kernel tap (the order an MVAU reads its weight row in), so
    ``group_size`` must divide its input channels. Exact as one integer weight per element at the
    row's finest scale: a group with a coarser scale is its integers shifted left, so the integer
    graph carries it as an ordinary IntLinear/IntConv (wider integers = b-bit products plus a
    shift). Exposes ``input_quant`` and ``quant_weight()`` as Brevitas' QuantLinear does."""

    def __init__(self, layer: nn.Linear | nn.Conv2d, bits: int, group_size: int, act_bits: int, in_max: float):
        super().__init__()
        self.is_conv = isinstance(layer, nn.Conv2d)
        if self.is_conv and (layer.groups != 1 or tuple(layer.dilation) != (1, 1) or isinstance(layer.padding, str)):
            raise ValueError("group-wise weights need an ungrouped, undilated convolution with numeric padding")
        w = layer.weight.detach().double()
        out_f, in_f = w.shape[:2]
        if in_f % group_size:
            kind = "input channels of a Conv2d" if self.is_conv else "inputs of a Linear layer"
            raise ValueError(f"group_size {group_size} does not divide the {in_f} {kind}")
        taps = w.permute(0, 2, 3, 1) if self.is_conv else w  # inputs last: [O, kh, kw, C] or [O, K]
        groups = taps.reshape(out_f, -1, group_size)
        peak = groups.abs().amax(dim=2, keepdim=True).clamp_min(1e-12)
        exps = torch.ceil(torch.log2(peak)) - (bits - 1)  # scale 2^exps per group, as po2_scale
        qmax = 2 ** (bits - 1) - 1
        ints = torch.clamp(torch.round(groups / 2.0**exps), -qmax, qmax)
        row_exp = exps.amin(dim=1, keepdim=True)
        w_int = (ints * 2.0 ** (exps - row_exp)).reshape(taps.shape)  # exact integers
        self.register_buffer("w_int", w_int.permute(0, 3, 1, 2) if self.is_conv else w_int)
        self.register_buffer("w_scale", (2.0**row_exp).reshape(out_f, *[1] * (w.ndim - 1)))
        self.bits, self.group_size = bits, group_size
        self.channel_axis = 1 if self.is_conv else -1  # of the output's channels
        if self.is_conv:
            self.stride, self.padding = tuple(layer.stride), tuple(layer.padding)
        self.in_quantizer = act_quant(act_bits, in_max)
        self.input_quant = self.in_quantizer.act_quant
        acc_scale = self.w_scale.reshape(-1) * self.input_quant.scale().detach().double()
        bias = layer.bias.detach().double() if layer.bias is not None else torch.zeros(out_f, dtype=torch.float64)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.register_buffer("b_q", torch.round(bias / acc_scale) * acc_scale)

    def quant_weight(self):
        from types import SimpleNamespace

        return SimpleNamespace(value=self.w_int * self.w_scale, scale=self.w_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, w = self.in_quantizer(x).value, self.w_int * self.w_scale
        if self.is_conv:
            return nn.functional.conv2d(x, w, self.b_q, self.stride, self.padding)
        return nn.functional.linear(x, w, self.b_q)


class IntegerInputLayer(nn.Module):
    """A Conv2d/Linear whose input grid is the integers themselves: the input's scale and zero
    point are explicit integer steps in front of an ordinary power-of-two Brevitas ``layer``, exact
    with integer multipliers and shifts only. It carries two plan options:

    - float scales (``scale: float``): input ``q = clamp(round(x * in_mult * 2^in_exp))``, i.e. scale
      ``2^-in_exp / in_mult`` (the calibrated range over 2^(b-1) - 1, rounded up to
      ``mantissa_bits``); ``layer``'s weights were divided by the input gain and by
      ``out_mult * 2^-mantissa_bits`` per output channel, and its output times that factor restores
      the float layer. Dividing instead of multiplying at the input would round differently from
      any integer op; multiplying keeps it a requantization.
    - zero points (``act_zero_point: true``): the input clamps to the asymmetric ``[qmin, qmax] =
      [-z, 2^b - 1 - z]``, so a range like SiLU's [-0.28, max] spends its 2^b codes where the values
      are instead of on a mirror image of them. Zero padding stays zero, so the convolution is
      unchanged; the integer graph types the input INT(b+1). (Stored as ``q + z`` in UINT(b), with
      ``z`` as the padding value and ``-z * sum(w)`` folded into the bias, the accumulator would be
      the same integer; hwsim's dataflow mapping does not build that form yet: docs/numerics.md.)
      With power-of-two scales ``in_mult = 1`` and the output factor is 1 (``mantissa_bits = 0``).

    Float64 computes every step exactly, and the integer graph holds the same steps: an exact
    multiply, a round-shift with the clamp, the layer, an exact multiply (hwsim.export.intgraph).
    """

    def __init__(self, layer: nn.Module, bits: int, in_mult: int, in_exp: int, out_mult: torch.Tensor,
                 mantissa_bits: int, channel_axis: int, zero_point: int | None = None):
        super().__init__()
        self.layer, self.bits, self.mantissa_bits, self.channel_axis = layer, bits, mantissa_bits, channel_axis
        self.in_mult, self.in_exp = int(in_mult), int(in_exp)
        self.zero_point = None if zero_point is None else int(zero_point)
        if self.zero_point is None:
            self.qmin, self.qmax = int_range(bits, True)
        else:
            if not 0 <= self.zero_point < 2**bits:
                raise ValueError(f"zero point {zero_point} outside the {bits}-bit unsigned range")
            self.qmin, self.qmax = -self.zero_point, 2**bits - 1 - self.zero_point
        self.register_buffer("out_mult", out_mult.to(torch.int64).reshape(-1))

    def out_factor(self, ndim: int) -> torch.Tensor:
        shape = [1] * ndim
        shape[self.channel_axis % ndim] = -1
        return (self.out_mult.double() * 2.0**-self.mantissa_bits).reshape(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.clamp(torch.round(x * (self.in_mult * 2.0**self.in_exp)), self.qmin, self.qmax)
        y = self.layer(q)
        return y * self.out_factor(y.ndim)


class QuantMatMul(nn.Module):
    """Activation x activation product of two quantized operands (exact in float64)."""

    def __init__(self, bits_a: int, max_a: float, bits_b: int, max_b: float):
        super().__init__()
        self.quant_a, self.quant_b = act_quant(bits_a, max_a), act_quant(bits_b, max_b)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.quant_a(a).value, self.quant_b(b).value)


class PassTimestep(nn.Module):
    """Replaces the time-embedding MLP: hands the integer timestep on to the per-block tables."""

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t


class TimestepTable(nn.Module):
    """A per-timestep constant (a ROM): row t holds integers at a fixed scale."""

    def __init__(self, values: torch.Tensor, scale: float):
        super().__init__()
        self.scale = scale
        self.register_buffer("table", torch.round(values.double() / scale).to(torch.int64))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if t.dtype != torch.int64 or t.min() < 0 or t.max() >= len(self.table):
            raise ValueError(f"timestep table covers integer t in [0, {len(self.table) - 1}], got {t.tolist()[:4]}")
        return self.table[t].double() * self.scale
