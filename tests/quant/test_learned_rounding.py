"""Learned rounding (AdaRound, BRECQ) on every weight grid the quantized twin can have: the grid is
read off the twin correctly, and learned integers written back survive re-quantization. The gain
on a shipped model is in tests/quant/test_methods.py."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from hwsim.quant.methods.adaround import LayerGrid, Rounding, commit, float_grid_weights, layer_grid, twin_integers
from hwsim.quant.plan import LayerPrecision
from hwsim.quant.quantize import layer_for

RANGE = {"in0": 2.0, "in0_lo": -0.3, "in0_hi": 2.0}  # a post-SiLU-like input: what zero points are for
GRIDS = [  # (scale, zero point, weight granularity, weight clip)
    ("po2", False, "per_channel", "max"),
    ("po2", True, "per_channel", "max"),
    ("float", False, "per_channel", "max"),
    ("float", False, "per_channel", "mse"),
    ("float", True, "per_channel", "mse"),
    ("float", True, "per_tensor", "max"),
    ("float", False, "per_tensor", "mse"),
]


def _layer(seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    layer = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    with torch.no_grad():
        layer.weight[0, 0, 0, 0] = -0.95  # channel 0's power-of-two scale 1/8: this weight is -7.6 steps
    return layer


def _precision(scale, zero_point, granularity, clip, weight_bits=4) -> LayerPrecision:
    return LayerPrecision(weight_bits, 8, granularity, scale=scale, act_zero_point=zero_point, weight_clip=clip)


@pytest.mark.parametrize("grid_kind", GRIDS, ids=["-".join(map(str, g)) for g in GRIDS])
def test_grid_is_the_twins(grid_kind):
    """The twin's output equals the float layer run on the grid's input and the twin's integers
    times the grid's weight scale (float64; the twin differs only by float rounding)."""
    layer, prec = _layer(), _precision(*grid_kind)
    grid = layer_grid(layer, prec, RANGE)
    x = torch.rand(3, 4, 5, 5, dtype=torch.float64) * 2.6 - 0.4  # beyond the range on both sides: the clamp counts
    twin = layer_for(layer, prec, RANGE).double()
    with torch.no_grad():
        expect = F.conv2d(torch.clamp(torch.round(x * grid.in_gain), grid.in_low, grid.in_high) / grid.in_gain,
                          twin_integers(layer, prec, RANGE).double() * grid.scale.double(), padding=1)
        assert torch.allclose(twin(x), expect, rtol=1e-9, atol=1e-12)
    assert grid.float_scale == (prec.scale == "float")
    assert twin_integers(layer, prec, RANGE).abs().max() <= grid.qmax


@pytest.mark.parametrize("grid_kind", GRIDS, ids=["-".join(map(str, g)) for g in GRIDS])
def test_learned_integers_survive_requantization(grid_kind):
    """Integers moved by one from nearest (as learned rounding moves them), written back with
    ``commit``: the twin computes with exactly them, except that a float grid keeps, in a scale
    group none of whose integers reaches the grid's end any more, the one at its end to nearest
    (the float scale is re-derived from that peak)."""
    layer, prec = _layer(1), _precision(*grid_kind)
    grid = layer_grid(layer, prec, RANGE)
    nearest = twin_integers(layer, prec, RANGE)
    moves = torch.randint(-1, 2, nearest.shape, generator=torch.Generator().manual_seed(2))
    learned = torch.clamp(nearest + moves, -grid.qmax, grid.qmax)
    learned[0] = torch.clamp(nearest[0], -grid.qmax + 1, grid.qmax - 1)  # channel 0 no longer reaches the end
    changed, kept = commit("conv", layer, learned, prec, RANGE)
    assert kept == 0  # every group reaches the grid's end to nearest
    got = twin_integers(layer, prec, RANGE)
    differ = got != learned
    if grid.float_scale:  # channel 0's peak pinned at nearest; per tensor, only if it held the tensor's peak
        pinned = 1 if prec.weight_granularity == "per_channel" or nearest[0].abs().max() > nearest[1:].abs().max() else 0
        assert int(differ[0].sum()) == pinned and not differ[1:].any()
    else:  # a power-of-two scale re-derives from the nudged peak
        assert not differ.any()
    assert changed == pytest.approx(float((got != nearest).double().mean()))
    assert 0 < changed < 1


@pytest.mark.parametrize("grid_kind", GRIDS, ids=["-".join(map(str, g)) for g in GRIDS])
@pytest.mark.parametrize("direction", ["down", "up"])
def test_every_weight_rounded_one_way(grid_kind, direction):
    """A Rounding whose every h went to 0 (or 1) commits cleanly: its integers stay in the twin's
    narrow range (-7.6 steps rounded down is -7, not -8, which Brevitas would clamp and whose
    nudged peak would double the channel's power-of-two scale)."""
    layer, prec = _layer(), _precision(*grid_kind)
    rounding = Rounding(layer, layer_grid(layer, prec, RANGE))
    with torch.no_grad():
        rounding.v.fill_(-1e4 if direction == "down" else 1e4)
    learned = rounding.integers()
    assert learned.abs().max() <= rounding.qmax
    assert commit("conv", layer, learned, prec, RANGE)[0] > 0  # raises if the twin computes with other integers


def test_a_float_grid_group_that_never_reaches_its_end_keeps_its_float_weights():
    """Row 0's learned integers fall short of qmax, so its nearest peak is pinned back; row 1 does
    not reach qmax even to nearest (its float scale came from elsewhere), so it keeps its float
    weights and nearest integers, and is counted."""
    grid = LayerGrid(scale=torch.tensor([[0.1], [0.1]]), qmax=7, in_gain=1.0, in_low=-128, in_high=127,
                     float_scale=True)
    weight = torch.tensor([[0.7, 0.2], [0.31, 0.12]])
    nearest, learned = torch.tensor([[7, 2], [3, 1]]), torch.tensor([[6, 2], [3, 2]])
    w, ints, kept = float_grid_weights(learned, nearest, weight, grid, per_tensor=False)
    assert kept == 1
    assert ints.tolist() == [[7, 2], [3, 1]]
    assert torch.equal(w[1], weight[1].double())
