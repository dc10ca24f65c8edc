"""Trajectory bias (hwsim.quant.methods.trajectory_bias): exact on a synthetic bias, saved with the
quantized directory and applied by its denoiser, and it beats PTQD alone and naive min-max on
unet-digits W4A8, on the fixed float-trajectory inputs and on the quantized sampler's own
trajectories from noise it was not fitted on."""

from pathlib import Path

import pytest
import torch

from hwsim.diffusion.samplers import initial_noise, make_scheduler
from hwsim.evaluate import make_denoiser
from hwsim.modeldir import load_model
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.diagnose import fixed_inputs
from hwsim.quant.methods.ptqd import CorrectedDenoiser
from hwsim.quant.methods.trajectory_bias import PREFIX, BiasedDenoiser, fit
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.qmodel import load_quantized, method_tensors, quantize_dir, save_quantized
from hwsim.quant.quantize import prepared, quantized_denoiser

MODELS = Path(__file__).resolve().parents[2] / "models"
CALIB = CalibrationConfig(samples=8, steps=20)


def test_fit_recovers_a_known_bias_map_and_removes_it():
    model = load_model(MODELS / "unet-digits")
    scheduler = make_scheduler("ddim", model.noise_schedule())
    shape = model.spec.image_shape
    maps = {t: torch.randn(shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64) * 0.01
            for t in range(model.spec.schedule.num_train_timesteps)}

    def float_net(x, t):
        return 0.5 * x

    def biased(x, t):
        return 0.5 * x + torch.stack([maps[int(s)] for s in t])

    fitted = fit(biased, float_net, scheduler, shape, samples=3, steps=10, seed=1)
    assert fitted["t"].tolist() == scheduler.timesteps
    for t, bias in zip(fitted["t"].tolist(), fitted["bias"]):
        torch.testing.assert_close(bias, maps[t], rtol=0, atol=1e-12)
    corrected = BiasedDenoiser(biased, {PREFIX + k: v for k, v in fitted.items()})
    x, t = torch.randn((2, *shape), dtype=torch.float64), torch.tensor([scheduler.timesteps[3]] * 2)
    torch.testing.assert_close(corrected(x, t), float_net(x, t), rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def digits_w4a8(tmp_path_factory):
    model = load_model(MODELS / "unet-digits")
    plan = PrecisionPlan.uniform(4, 8)
    quantized = {name: quantize_dir(model.path, plan, CALIB, methods)
                 for name, methods in {"naive": (), "ptqd": ("ptqd",), "tb": ("trajectory-bias",),
                               "ptqd+tb": ("ptqd", "trajectory-bias")}.items()}
    out = save_quantized(quantized["ptqd+tb"], tmp_path_factory.mktemp("q") / "ptqd-tb")
    return model, quantized, out


def _denoiser(q):
    denoiser = quantized_denoiser(q.net())
    if "ptqd" in q.meta:
        denoiser = CorrectedDenoiser(denoiser, q.meta["ptqd"])
    return BiasedDenoiser(denoiser, q.tensors) if BiasedDenoiser.fitted(q.tensors) else denoiser


def test_saved_and_applied_by_the_directory_denoiser(digits_w4a8):
    _, quantized, out = digits_w4a8
    tensors = method_tensors(out)
    assert set(tensors) == {PREFIX + "t", PREFIX + "bias"}
    assert tensors[PREFIX + "bias"].shape == (CALIB.steps, 1, 8, 8)
    torch.testing.assert_close(load_quantized(out).tensors[PREFIX + "bias"], quantized["ptqd+tb"].tensors[PREFIX + "bias"],
                               rtol=0, atol=0)
    denoiser = make_denoiser(out, "torch")
    assert isinstance(denoiser, BiasedDenoiser) and isinstance(denoiser.inner, CorrectedDenoiser)
    assert load_quantized(out).meta["trajectory_bias"]["steps"] == CALIB.steps


@torch.no_grad()
def _own_trajectory_mse(model, denoiser, seed, steps=CALIB.steps, samples=8):
    """Mean squared error of ``denoiser`` against the float net along its own DDIM trajectories."""
    scheduler = make_scheduler("ddim", model.noise_schedule())
    scheduler.set_timesteps(steps)
    reference = prepared(model.net)
    x, total = initial_noise(samples, model.spec.image_shape, seed).double(), 0.0
    for t in scheduler.timesteps:
        tt = torch.full((samples,), t, dtype=torch.long)
        eps = denoiser(x, tt).double()
        total += float(((eps - reference(x, tt)) ** 2).mean())
        x = scheduler.step(eps, t, x)
    return total / steps


def test_beats_naive_and_improves_ptqd_on_its_own_trajectories(digits_w4a8):
    """From noise it was not fitted on (seed 0; calibration 1234). PTQD alone, fitted on the float
    model's trajectories, is worse than naive here; the trajectory bias recovers part of that."""
    model, quantized, _ = digits_w4a8
    mse = {name: _own_trajectory_mse(model, _denoiser(q), seed=0) for name, q in quantized.items()}
    assert mse["tb"] < 0.85 * mse["naive"] and mse["ptqd+tb"] < 0.85 * mse["ptqd"], mse


def test_beats_naive_on_fixed_inputs(digits_w4a8):
    model, quantized, _ = digits_w4a8
    reference = prepared(model.net)
    inputs = fixed_inputs(model, samples=8)

    def mse(q):
        denoiser = _denoiser(q)
        with torch.no_grad():
            return sum(float(((denoiser(x, t).double() - reference(x.double(), t)) ** 2).mean())
                       for x, t in inputs) / len(inputs)
    assert mse(quantized["tb"]) < mse(quantized["naive"])
