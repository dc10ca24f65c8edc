"""What float scales cost in exactness: integer requantization by a fixed-point multiplier
against Brevitas' float64 ``round(acc * s_acc / s_out)``.

With power-of-two scales the integer graph is exact (a shift). With float scales, hardware
multiplies the accumulator by ``m`` (an ``mbits``-bit integer) and shifts right by ``n``, with
``m * 2^-n ~= s_acc / s_out``; the result differs from the float quantizer wherever the
approximation error moves a product across a rounding boundary. This module measures how often
and by how much, on the accumulators a model really produces (docs/numerics.md, section 6).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from hwsim.intsim.ops.requant import requant_ref
from hwsim.quant.calibrate import Ranges
from hwsim.quant.hooks import run_hooked


def fixed_point_multiplier(ratio: float, mbits: int, rounding: str = "nearest") -> tuple[int, int]:
    """(m, n) with 2^(mbits-1) <= m < 2^mbits and m * 2^-n the nearest such value to ``ratio`` > 0
    (``rounding``: nearest, up (>= ratio) or down (<= ratio))."""
    if not ratio > 0:
        raise ValueError(f"requantization ratio must be positive, got {ratio}")
    mantissa, exp = math.frexp(ratio)  # ratio = mantissa * 2^exp, 0.5 <= mantissa < 1; exact
    m = {"nearest": round, "up": math.ceil, "down": math.floor}[rounding](mantissa * 2**mbits)
    n = mbits - exp
    if m == 2**mbits:  # rounding carried into the next binade
        m, n = m >> 1, n - 1
    return m, n


def requant_fixed_point(acc: np.ndarray, m: int, n: int, qmin: int, qmax: int) -> np.ndarray:
    """clamp(round_half_even(acc * m / 2^n)): the integer requantizer (int64, exact)."""
    return requant_ref(np.asarray(acc, dtype=np.int64) * np.int64(m), n, qmin, qmax)


def requant_float(acc: np.ndarray, ratio: float, qmin: int, qmax: int) -> np.ndarray:
    """Brevitas' float64 quantizer applied to an accumulator at scale ratio ``ratio``."""
    return np.clip(np.round(np.asarray(acc, dtype=np.float64) * ratio), qmin, qmax).astype(np.int64)


def _float_scale(peak: float, bits: int) -> float:
    return max(peak, 1e-12) / (2 ** (bits - 1) - 1)


def _quantize(x: torch.Tensor, scale: float, bits: int) -> torch.Tensor:
    q = 2 ** (bits - 1)
    return torch.clamp(torch.round(x / scale), -q, q - 1)


@torch.no_grad()
def measure(net: nn.Module, ranges: Ranges, inputs: list[tuple[torch.Tensor, torch.Tensor]], weight_bits: int,
            act_bits: int, mbits: tuple[int, ...] = (8, 16, 24, 32)) -> dict:
    """Per Conv/Linear layer of ``net`` (float64), with per-tensor float scales from ``ranges``
    (input and output max |value|): the accumulators over ``inputs``, requantized to the output
    scale both ways. Returns per layer and overall: values compared, rate of differing values
    and the largest difference in output LSBs, for every multiplier width."""
    qmin, qmax = -(2 ** (act_bits - 1)), 2 ** (act_bits - 1) - 1
    layers = {n: m for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and n in ranges}
    tallies = {n: {b: [0, 0, 0] for b in mbits} for n in layers}  # values, differing, max diff
    ratios = {}

    def hook(name, module):
        s_in = _float_scale(ranges[name]["in0"], act_bits)
        w = module.weight.double()
        s_w = _float_scale(float(w.abs().max()), weight_bits)
        s_out = _float_scale(ranges[name]["out"], act_bits)
        ratio = s_in * s_w / s_out
        ratios[name] = ratio
        w_int = _quantize(w, s_w, weight_bits)

        def fn(mod, args, output):
            x_int = _quantize(args[0].double(), s_in, act_bits)
            if isinstance(mod, nn.Conv2d):
                acc = nn.functional.conv2d(x_int, w_int, None, mod.stride, mod.padding)
            else:
                acc = nn.functional.linear(x_int, w_int)
            acc = acc.numpy().astype(np.int64)  # exact: |acc| < 2^53 for these widths
            expect = requant_float(acc, ratio, qmin, qmax)
            for b in mbits:
                m, n = fixed_point_multiplier(ratio, b)
                diff = np.abs(requant_fixed_point(acc, m, n, qmin, qmax) - expect)
                t = tallies[name][b]
                t[0] += diff.size
                t[1] += int(np.count_nonzero(diff))
                t[2] = max(t[2], int(diff.max()) if diff.size else 0)
        return module, fn

    run_hooked(net, [hook(n, m) for n, m in layers.items()], inputs)
    per_layer = {n: {"ratio": ratios[n], **{f"m{b}": {"values": v, "differing": d, "rate": d / max(v, 1), "max_lsb": mx}
                                             for b, (v, d, mx) in tallies[n].items()}} for n in layers}
    overall = {}
    for b in mbits:
        v = sum(tallies[n][b][0] for n in layers)
        d = sum(tallies[n][b][1] for n in layers)
        overall[f"m{b}"] = {"values": v, "differing": d, "rate": d / max(v, 1),
                            "max_lsb": max(tallies[n][b][2] for n in layers)}
    return {"overall": overall, "layers": per_layer}
