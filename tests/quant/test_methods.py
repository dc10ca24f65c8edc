"""Every PTQ method beats naive min-max on a shipped model: lower output MSE against the float
model on fixed inputs (DDIM trajectories of the float model, seed 0, every 5th of 50 steps).
U-Net methods on unet-digits; the DiT's (smoothquant, group-wise weights) on dit-fashion, the
zoo's only DiT."""

import dataclasses
from pathlib import Path

import pytest
import torch

from hwsim.modeldir import load_model
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.diagnose import fixed_inputs, output_mse
from hwsim.quant.methods.ptqd import CorrectedDenoiser
from hwsim.quant import modules as hw
from hwsim.quant.plan import Override, PlanError, PrecisionPlan
from hwsim.quant.qmodel import quantize_dir
from hwsim.quant.quantize import prepared

MODELS = Path(__file__).resolve().parents[2] / "models"
CALIB = CalibrationConfig(samples=8, steps=50)


@pytest.fixture(scope="module")
def digits():
    model = load_model(MODELS / "unet-digits")
    return model, fixed_inputs(model, samples=8)


def _mse(model, inputs, plan, methods=(), calib=CALIB):
    q = quantize_dir(model.path, plan, calib, methods)
    return output_mse(q.net(), model.net, inputs), q


def test_mse_observer_beats_minmax(digits):
    model, inputs = digits
    plan = PrecisionPlan.uniform(8, 8)
    naive, _ = _mse(model, inputs, plan)
    best, _ = _mse(model, inputs, plan, calib=CalibrationConfig(samples=8, steps=50, observer="mse"))
    assert best < 0.8 * naive


def test_float_scales_beat_po2(digits):
    """Float scales (8-bit mantissas) on every layer but the first, whose input is the image x_t:
    with no power-of-two headroom, its calibrated range (the largest of a few thousand Gaussian
    values at t = T) clips on other noise (docs/numerics.md, section 6)."""
    model, inputs = digits
    plan = dataclasses.replace(PrecisionPlan.uniform(8, 8), nonlinear_bits=12)
    naive, _ = _mse(model, inputs, plan)
    flt = PrecisionPlan.uniform(8, 8, scale="float", mantissa_bits=8)
    best, q = _mse(model, inputs, dataclasses.replace(flt, nonlinear_bits=12, first=Override(scale="po2")))
    assert best < 0.7 * naive
    assert sum(isinstance(m, hw.IntegerInputLayer) for m in q.net().modules()) == 24  # the 25 layers but conv_in


def test_split_shortcut_beats_naive(digits):
    model, inputs = digits
    plan = PrecisionPlan.uniform(8, 8)
    naive, _ = _mse(model, inputs, plan)
    split, q = _mse(model, inputs, plan, ("split-shortcut",))
    assert q.meta["split_concat"] is True and split < naive


def test_adaround_beats_naive(digits):
    model, inputs = digits
    plan = PrecisionPlan.uniform(4, 8)
    naive, _ = _mse(model, inputs, plan)
    learned, q = _mse(model, inputs, plan, ("adaround",))
    assert learned < 0.8 * naive
    assert 0 < max(q.meta["adaround"]["changed_from_nearest"].values()) < 0.5


def test_brecq_beats_naive(digits):
    """Block reconstruction at W4A8. (Against layer-wise AdaRound it is not reliably better on the
    tiny models: which of the two wins changes with the calibration seed.)"""
    model, inputs = digits
    plan = PrecisionPlan.uniform(4, 8)
    naive, _ = _mse(model, inputs, plan)
    blockwise, q = _mse(model, inputs, plan, ("brecq",))
    assert blockwise < 0.8 * naive
    meta = q.meta["brecq"]
    assert "mid.blocks.0" in meta["blocks"] and "conv_in" in meta["layer_by_layer"]
    assert set(meta["changed_from_nearest"]) == {n for b in meta["blocks"].values() for n in b} | set(meta["layer_by_layer"])
    assert not any("temb_proj" in n or "time_embed" in n for n in meta["changed_from_nearest"])  # float tables


def test_brecq_on_float_scales_and_zero_points(digits):
    """Learned rounding on the grids the twin computes with (float weight scales, inputs with zero
    points), layer by layer outside the blocks and block-wise inside: W4A8 output MSE."""
    model, inputs = digits
    base = PrecisionPlan.uniform(4, 8, scale="float")
    plan = dataclasses.replace(base, default=dataclasses.replace(base.default, act_zero_point=True), first=Override(scale="po2"))
    naive, _ = _mse(model, inputs, plan)
    blockwise, q = _mse(model, inputs, plan, ("brecq",))
    assert blockwise < 0.7 * naive  # measured: 0.40 of it (AdaRound alone: 0.49)
    assert 0 < max(q.meta["brecq"]["changed_from_nearest"].values()) < 0.5
    kept = q.meta["brecq"]["groups_kept_float"]  # float rows left at float weights, by layer (none expected)
    assert set(kept) <= set(q.meta["brecq"]["changed_from_nearest"]) and all(n > 0 for n in kept.values())


def test_bias_correction_beats_naive(digits):
    """Every quantized layer's bias corrected, in execution order: lower output MSE and a smaller
    mean error of the output (the offset that adds up over the sampling steps). A quarter of the
    calibration set (each layer's correction rebuilds the net: 25 builds); measured 0.90 and 0.09 of
    naive's, against 0.90 and 0.09 with all of it."""
    model, inputs = digits
    plan, calib = PrecisionPlan.uniform(8, 8), CalibrationConfig(samples=4, steps=25)
    naive, q0 = _mse(model, inputs, plan, calib=calib)
    corrected, q = _mse(model, inputs, plan, ("bias-correction",), calib=calib)
    assert corrected < 0.95 * naive
    meta = q.meta["bias_correction"]
    assert meta["order"][0] == "conv_in" and meta["order"][-1] == "conv_out"
    assert not any("temb_proj" in n or "time_embed" in n for n in meta["order"])  # float tables
    reference = prepared(model.net)

    def offset(qnet):
        with torch.no_grad():
            return abs(sum(float((qnet(x.double(), t) - reference(x.double(), t)).mean()) for x, t in inputs))
    assert offset(q.net()) < 0.5 * offset(q0.net())


def test_ptqd_correction_beats_naive(digits):
    model, inputs = digits
    plan = PrecisionPlan.uniform(4, 8)
    naive, q = _mse(model, inputs, plan, ("ptqd",))
    qnet, reference = q.net(), prepared(model.net)
    corrected = CorrectedDenoiser(lambda x, t: qnet(x.double(), t), q.meta["ptqd"])
    with torch.no_grad():
        fixed = sum(float(((corrected(x, t) - reference(x.double(), t)) ** 2).mean()) for x, t in inputs) / len(inputs)
    assert fixed < naive


def test_smoothquant_beats_naive_on_the_dit():
    model = load_model(MODELS / "dit-fashion")
    inputs = fixed_inputs(model, samples=4, stride=10)
    plan, calib = PrecisionPlan.uniform(4, 8), CalibrationConfig(samples=8, steps=20)
    naive, _ = _mse(model, inputs, plan, calib=calib)
    smooth, _ = _mse(model, inputs, plan, ("smoothquant",), calib)
    assert smooth < 0.8 * naive


def test_groupwise_weights_beat_per_channel_on_the_dit():
    """Q-DiT-style group-wise weight scales (32 inputs per scale) against per-channel scales."""
    model = load_model(MODELS / "dit-fashion")
    inputs = fixed_inputs(model, samples=4, stride=10)
    calib = CalibrationConfig(samples=8, steps=20)
    per_channel, _ = _mse(model, inputs, PrecisionPlan.uniform(4, 8, weight_granularity="per_channel"), calib=calib)
    plan = dataclasses.replace(PrecisionPlan.uniform(4, 8, weight_granularity="per_group", group_size=32),
                               first=Override(weight_granularity="per_channel"))
    grouped, q = _mse(model, inputs, plan, calib=calib)
    assert grouped < per_channel
    assert any(isinstance(m, hw.GroupQuantLayer) for m in q.net().modules())


def test_groupwise_conv_weights_beat_per_channel_on_the_unet(digits):
    """The same granularity on convolutions (16 input channels per scale at each tap), W4A8."""
    model, inputs = digits
    per_channel, _ = _mse(model, inputs, PrecisionPlan.uniform(4, 8, weight_granularity="per_channel"))
    plan = dataclasses.replace(PrecisionPlan.uniform(4, 8, weight_granularity="per_group", group_size=16),
                               first=Override(weight_granularity="per_channel"))
    grouped, q = _mse(model, inputs, plan)
    assert grouped < 0.8 * per_channel
    assert sum(isinstance(m, hw.GroupQuantLayer) and m.is_conv for m in q.net().modules()) >= 10


def test_sparsity_patterns_survive_quantization(digits):
    model, _ = digits
    q = quantize_dir(model.path, PrecisionPlan.uniform(8, 8), CalibrationConfig(samples=4, steps=10), ("sparse-2:4",))
    w = q.net().get_submodule("down.0.blocks.0.conv1").quant_weight()
    ints = torch.round(w.value / w.scale).reshape(w.value.shape[0], -1, 4)
    assert int((ints != 0).sum(-1).max()) <= 2
    assert set(q.meta["weight_sparsity"]) and all(v >= 0.5 for v in q.meta["weight_sparsity"].values())
    assert "conv_in" not in q.meta["weight_sparsity"] and "time_embed.linear1" not in q.meta["weight_sparsity"]
    assert all(0 <= v <= 1 for v in q.meta["activation_sparsity"].values())


def test_bad_methods_and_bit_widths_fail_clearly(digits):
    model, _ = digits
    with pytest.raises(ValueError, match=r"unknown PTQ method\(s\) \['brecq2'\]; known: adaround"):
        quantize_dir(model.path, PrecisionPlan.uniform(8, 8), CALIB, ("brecq2",))
    with pytest.raises(ValueError, match=r"PTQ methods \['adaround', 'brecq'\] all choose the integer weights"):
        quantize_dir(model.path, PrecisionPlan.uniform(8, 8), CALIB, ("brecq", "adaround"))
    for bits in (0, 33):
        with pytest.raises(PlanError, match=f"weight_bits must be an integer in 2..16, got {bits}"):
            PrecisionPlan.uniform(bits, 8)
    with pytest.raises(ValueError, match="split-shortcut: a DiT has no skip concatenations"):
        quantize_dir(MODELS / "dit-fashion", PrecisionPlan.uniform(8, 8), CalibrationConfig(samples=2, steps=2),
                     ("split-shortcut",))


@pytest.mark.parametrize("scale", ["po2", "float"])
def test_zero_points_beat_symmetric(digits, scale):
    """A zero point on every layer input (plan ``act_zero_point``): the post-SiLU inputs of the
    residual blocks' convolutions ([-0.28, max]) no longer waste half of a symmetric grid."""
    model, inputs = digits
    plan = dataclasses.replace(PrecisionPlan.uniform(8, 8, scale=scale), nonlinear_bits=12, first=Override(scale="po2"))
    naive, _ = _mse(model, inputs, plan)
    shifted = dataclasses.replace(plan, default=dataclasses.replace(plan.default, act_zero_point=True))
    best, q = _mse(model, inputs, shifted)
    zero_points = [m.zero_point for m in q.net().modules() if isinstance(m, hw.IntegerInputLayer)]
    assert len(zero_points) == 25 and sum(z is not None and z < 32 for z in zero_points) >= 10  # the post-SiLU inputs
    assert best < 0.9 * naive  # measured: 0.72 of it (po2), 0.81 (float)


def test_mse_weight_clipping_beats_max(digits):
    """weight_clip: mse (BRECQ's and Q-Diffusion's weight-range search) at 4-bit weights."""
    model, inputs = digits
    plan = dataclasses.replace(PrecisionPlan.uniform(4, 8, scale="float"), first=Override(scale="po2", weight_clip="max"))
    naive, _ = _mse(model, inputs, plan)
    best, _ = _mse(model, inputs, dataclasses.replace(plan, default=dataclasses.replace(plan.default, weight_clip="mse")))
    assert best < 0.9 * naive  # measured: 0.76 of it
