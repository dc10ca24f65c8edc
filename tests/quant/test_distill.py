"""EfficientDM-style distillation of the quantized net's weights (hwsim.quant.methods.distill)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from hwsim.modeldir import load_model
from hwsim.quant import modules as hw
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.diagnose import fixed_inputs, output_mse
from hwsim.quant.methods import distill
from hwsim.quant.plan import Override, PrecisionPlan
from hwsim.quant.qmodel import quantize_dir

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture
def short(monkeypatch):
    monkeypatch.setattr(distill, "DEFAULT", distill.DistillConfig(iterations=120, batch=16))


def test_distill_beats_naive_on_the_unet(short):
    """unet-digits W4A8 with the split shortcut: output MSE on held-out trajectories (another seed)."""
    model = load_model(MODELS / "unet-digits")
    inputs = fixed_inputs(model, samples=8)
    calib = CalibrationConfig(samples=8, steps=20)
    plan = PrecisionPlan.uniform(4, 8, weight_granularity="per_channel")
    naive = quantize_dir(model.path, plan, calib, ["split-shortcut"])
    trained = quantize_dir(model.path, plan, calib, ["split-shortcut", "distill"])
    assert output_mse(trained.net(), model.net, inputs) < 0.8 * output_mse(naive.net(), model.net, inputs)
    meta = trained.meta["distill"]
    assert meta["loss_last"] < meta["loss_first"] and "up.0.blocks.0.shortcut" in meta["changed_from_nearest"]
    assert max(meta["changed_from_nearest"].values()) > 0.01 and max(meta["requantized_differs"].values()) == 0
    assert not any("temb_proj" in n or "time_embed" in n for n in meta["changed_from_nearest"])  # float tables stay float


def test_distill_behind_integer_input_grids_requantizes_to_the_trained_integers(monkeypatch):
    """Float scales and zero-point inputs: the grid's rounding trains straight through, and the
    written-back weights re-quantize to exactly the integers the training ended with."""
    monkeypatch.setattr(distill, "DEFAULT", distill.DistillConfig(iterations=30, batch=8))
    model = load_model(MODELS / "unet-digits")
    base = PrecisionPlan.uniform(4, 8, scale="float")
    plan = dataclasses.replace(base, default=dataclasses.replace(base.default, act_zero_point=True), first=Override(scale="po2"))
    trained = quantize_dir(model.path, plan, CalibrationConfig(samples=4, steps=10), ["distill"])
    meta = trained.meta["distill"]
    assert max(meta["changed_from_nearest"].values()) > 0 and max(meta["requantized_differs"].values()) == 0
    assert any(isinstance(m, hw.IntegerInputLayer) for m in trained.net().modules())


def test_distill_trains_through_the_dits_exact_nonlinear_ops(monkeypatch):
    """Modulation, integer softmax and the GELU table pass the float ops' gradients: the DiT's
    weights before the last block move, and its output error falls (30 steps: 0.014 against naive's 0.024)."""
    monkeypatch.setattr(distill, "DEFAULT", distill.DistillConfig(iterations=30, batch=8))
    model = load_model(MODELS / "dit-fashion")
    inputs = fixed_inputs(model, samples=2, stride=10)
    calib = CalibrationConfig(samples=4, steps=10)
    naive = quantize_dir(model.path, PrecisionPlan.uniform(4, 8, weight_granularity="per_channel"), calib, [])
    trained = quantize_dir(model.path, PrecisionPlan.uniform(4, 8, weight_granularity="per_channel"), calib, ["distill"])
    first = "blocks.0.attn.qkv"
    assert not torch.equal(trained.model.net.get_submodule(first).weight, naive.model.net.get_submodule(first).weight)
    assert output_mse(trained.net(), model.net, inputs) < output_mse(naive.net(), model.net, inputs)


def test_distill_refusals():
    with pytest.raises(ValueError, match=r"PTQ methods \['brecq', 'distill'\] all choose the integer weights"):
        quantize_dir(MODELS / "unet-digits", PrecisionPlan.uniform(8, 8), CalibrationConfig(samples=2, steps=4),
                     ["distill", "brecq"])
