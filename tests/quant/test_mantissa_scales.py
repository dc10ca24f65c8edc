"""Float scales (plan ``scale: float``): exact integer multipliers around an ordinary po2 layer."""

import dataclasses

import pytest
import torch
from torch import nn

from hwsim.quant import modules as hw
from hwsim.quant.plan import LayerPrecision, PlanError, parse_shorthand
from hwsim.quant.quantize import _quant_layer, output_grid


def test_shorthand_and_bad_mantissa():
    plan = parse_shorthand("W8A8N12F6T2")
    assert plan.default.scale == "float" and plan.default.mantissa_bits == 6
    assert plan.nonlinear_bits == 12 and plan.timestep_groups == 2
    assert "float scales (6-bit mantissa)" in plan.describe()
    assert parse_shorthand("W8A8").default.scale == "po2"
    with pytest.raises(PlanError, match="mantissa_bits must be an integer in 2..16, got 1"):
        LayerPrecision(scale="float", mantissa_bits=1)


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_float_scales_quantize_closer_than_po2(kind):
    """The reason for float scales: a po2 grid wastes up to a bit of every range, a k-bit
    mantissa at most 2^(1-k) of it. Random layers, inputs at a range just above a power of two
    (the po2 grid's worst case)."""
    torch.manual_seed(0)
    layer = (nn.Conv2d(8, 16, 3, padding=1) if kind == "conv" else nn.Linear(32, 16)).double()
    x = torch.randn(64, 8, 6, 6) if kind == "conv" else torch.randn(64, 32)
    x = (x / x.abs().max() * 1.1).double()
    prec = LayerPrecision(6, 6, "per_channel")
    errors = {}
    for scale in ("po2", "float"):
        q = _quant_layer(layer, dataclasses.replace(prec, scale=scale), 1.1).double()
        with torch.no_grad():
            errors[scale] = float(((q(x) - layer(x)) ** 2).mean())
    assert isinstance(_quant_layer(layer, dataclasses.replace(prec, scale="float"), 1.1), hw.IntegerInputLayer)
    assert errors["float"] < 0.5 * errors["po2"]


def test_output_is_on_a_power_of_two_grid():
    """The multiplied output is exact integers at output_grid's scale, which the timestep tables
    and the integer graph rely on."""
    torch.manual_seed(1)
    layer = nn.Conv2d(4, 8, 3, padding=1).double()
    q = _quant_layer(layer, LayerPrecision(8, 8, "per_channel", scale="float", mantissa_bits=5), 2.0).double()
    with torch.no_grad():
        y = q(torch.randn(2, 4, 5, 5).double())
    ints = y / output_grid(q).reshape(1, -1, 1, 1)
    assert torch.equal(ints, torch.round(ints))
    assert int(q.out_mult.min()) >= 16 and int(q.out_mult.max()) < 32  # 5-bit mantissas


def test_group_wise_weights_under_float_scales():
    """A row's float mantissa, then power-of-two scales per group of inputs within it: still exact."""
    torch.manual_seed(2)
    layer = nn.Conv2d(8, 6, 3, padding=1).double()
    layer.weight.data[:, :4] *= 8  # half the input channels much larger: their group takes a coarser scale
    q = _quant_layer(layer, LayerPrecision(4, 8, "per_group", scale="float", group_size=4, mantissa_bits=6), 2.0).double()
    assert isinstance(q, hw.IntegerInputLayer) and isinstance(q.layer, hw.GroupQuantLayer) and q.layer.is_conv
    assert (q.layer.w_int.abs() > 7).any()  # the coarse group's 4-bit integers shifted left
    with torch.no_grad():
        x = 4 * torch.rand(2, 8, 5, 5).double() - 2  # within the calibrated range: the weights' error only
        y, ref = q(x), layer(x)
        per_channel = _quant_layer(layer, LayerPrecision(4, 8, "per_channel", scale="float", mantissa_bits=6), 2.0).double()(x)
    ints = y / output_grid(q).reshape(1, -1, 1, 1)
    assert torch.equal(ints, torch.round(ints))
    assert float(((y - ref) ** 2).mean()) < 0.75 * float(((per_channel - ref) ** 2).mean())


def test_weight_clip():
    from hwsim.quant.quantize import weight_peaks

    with pytest.raises(PlanError, match="weight_clip: mse needs scale: float"):
        LayerPrecision(weight_clip="mse")
    with pytest.raises(PlanError, match="per_group weights take each group's largest"):
        LayerPrecision(scale="float", weight_clip="mse", weight_granularity="per_group")
    with pytest.raises(PlanError, match="weight_clip must be one of"):
        LayerPrecision(scale="float", weight_clip="percentile")
    torch.manual_seed(0)
    w = torch.distributions.Laplace(0.0, 1.0).sample((8, 256)).double()  # heavy tails, as trained weights have
    peaks = weight_peaks(w, 4, "per_channel", "mse")
    assert torch.all(peaks < w.abs().amax(dim=1))
    assert torch.equal(weight_peaks(w, 4, "per_channel"), w.abs().amax(dim=1))
    assert torch.all(weight_peaks(w, 4, "per_tensor", "mse") == weight_peaks(w, 4, "per_tensor", "mse")[0])

    def error(p):
        s = (p / 7)[:, None]
        return float(((torch.clamp(torch.round(w / s), -7, 7) * s - w) ** 2).sum())

    assert error(peaks) < 0.85 * error(w.abs().amax(dim=1))  # measured: 0.76
