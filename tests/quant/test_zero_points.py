"""Zero points on the layer inputs (plan ``act_zero_point``): the grid, the plan, and the refusals.
Bit-exactness against the integer graph is in tests/intsim/test_executor.py; the gain on a
shipped model in tests/quant/test_methods.py::test_zero_points_beat_symmetric."""

import dataclasses

import pytest
import torch
from torch import nn

from hwsim.quant import modules as hw
from hwsim.quant.calibrate import zero_point_grid
from hwsim.quant.plan import LayerPrecision, PlanError, parse_shorthand
from hwsim.quant.quantize import _quant_layer


def test_shorthand_and_bad_values():
    plan = parse_shorthand("W8A8N12F8ZT4")
    assert plan.default.act_zero_point and plan.default.scale == "float" and plan.timestep_groups == 4
    assert "zero points" in plan.describe()
    assert not parse_shorthand("W8A8").default.act_zero_point and parse_shorthand("W4A8Z").default.act_zero_point
    with pytest.raises(PlanError, match="act_zero_point must be true or false, got 'yes'"):
        LayerPrecision(act_zero_point="yes")
    with pytest.raises(PlanError, match="act_zero_point needs act_bits <= 15"):
        LayerPrecision(act_bits=16, act_zero_point=True)


def test_grid():
    # SiLU's range: the 256 codes start just below zero instead of at -max
    assert zero_point_grid(-0.28, 6.23, 8) == (2.0**-5, 9)
    # a symmetric range gets the symmetric grid's power-of-two scale
    assert zero_point_grid(-4.0, 4.0, 8)[0] == hw.po2_scale(4.0, 8)
    scale, z = zero_point_grid(-0.28, 6.23, 8, po2=False)
    assert scale == pytest.approx(6.51 / 255) and z == 11


@pytest.mark.parametrize("scale", ["po2", "float"])
def test_post_silu_input_quantizes_closer(scale):
    torch.manual_seed(0)
    layer = nn.Conv2d(8, 16, 3, padding=1).double()
    x = nn.functional.silu(3 * torch.randn(32, 8, 6, 6, dtype=torch.float64))
    lo, hi = float(x.min()), float(x.max())
    prec = LayerPrecision(8, 6, "per_channel", scale=scale)
    errors = {}
    for zp in (False, True):
        q = _quant_layer(layer, dataclasses.replace(prec, act_zero_point=zp), max(-lo, hi), (lo, hi)).double()
        with torch.no_grad():
            errors[zp] = float(((q(x) - layer(x)) ** 2).mean())
    assert isinstance(q, hw.IntegerInputLayer) and q.zero_point < 2**6 // 8
    assert errors[True] < 0.6 * errors[False]


def test_refusals():
    prec = LayerPrecision(8, 8, "per_channel", act_zero_point=True)
    with pytest.raises(ValueError, match="act_zero_point needs the calibrated signed input range"):
        _quant_layer(nn.Linear(4, 4), prec, 1.0)
    with pytest.raises(ValueError, match="group_size 8 does not divide the 12 inputs of a Linear layer"):
        _quant_layer(nn.Linear(12, 4), dataclasses.replace(prec, weight_granularity="per_group", group_size=8), 1.0, (-1, 1))
    with pytest.raises(ValueError, match="group_size 8 does not divide the 12 input channels of a Conv2d"):
        _quant_layer(nn.Conv2d(12, 4, 3), dataclasses.replace(prec, weight_granularity="per_group", group_size=8), 1.0, (-1, 1))
    with pytest.raises(ValueError, match="zero point 256 outside the 8-bit unsigned range"):
        hw.IntegerInputLayer(nn.Identity(), 8, 1, 0, torch.ones(1), 0, 1, zero_point=256)


def test_saved_model_keeps_its_zero_points(tmp_path):
    """The signed ranges travel in calibration.safetensors: the reloaded net is the same net."""
    from pathlib import Path

    from hwsim.quant.calibrate import CalibrationConfig
    from hwsim.quant.qmodel import load_quantized, quantize_dir, save_quantized

    models = Path(__file__).resolve().parents[2] / "models"
    q = quantize_dir(models / "unet-digits", parse_shorthand("W8A8Z"), CalibrationConfig(samples=2, steps=10))
    again = load_quantized(save_quantized(q, tmp_path / "q"))
    x, t = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.tensor([10, 900])
    zero_points = [m.zero_point for m in again.net().modules() if isinstance(m, hw.IntegerInputLayer)]
    assert zero_points == [m.zero_point for m in q.net().modules() if isinstance(m, hw.IntegerInputLayer)]
    assert any(z is not None and z < 32 for z in zero_points)
    with torch.no_grad():
        assert torch.equal(again.net()(x, t), q.net()(x, t))
