import math

import numpy as np
import pytest
import torch

from hwsim.quant.calibrate import CalibrationConfig, _mse_range, _quant_mse, collect_stats, observe, select_timesteps


def _trajectory(samples=8, steps=50, T=1000):
    ts = np.linspace(T - 1, 0, steps).round().astype(int)
    return [(torch.full((samples, 1, 2, 2), float(t)), torch.full((samples,), int(t))) for t in ts]


def test_all_keeps_the_trajectory():
    traj = _trajectory()
    assert select_timesteps(traj, CalibrationConfig(), 1000) is traj


def test_uniform_spreads_points_evenly_over_steps():
    chosen = select_timesteps(_trajectory(), CalibrationConfig(timesteps="uniform", points=32), 1000)
    assert sum(len(x) for x, _ in chosen) == 32
    steps = sorted(int(t[0]) for _, t in chosen)
    assert len(steps) == 4 and steps[0] == 0 and steps[-1] == 999  # 32 points / 8 samples: 4 steps, both ends


def test_normal_centres_on_its_mean_and_snaps_to_sampler_steps():
    traj = _trajectory()
    chosen = select_timesteps(traj, CalibrationConfig(timesteps="normal", points=2000, normal_mean=0.3, normal_std=0.1), 1000)
    t = np.concatenate([t.numpy() for _, t in chosen])
    assert len(t) == 2000 and set(t) <= {int(s[1][0]) for s in traj}
    assert abs(t.mean() - 300) < 15 and abs(t.std() - 100) < 15
    for x, tt in chosen:  # every input is the trajectory's x at its own step
        assert torch.equal(x[:, 0, 0, 0], tt.double().float())


class _Probe(torch.nn.Module):
    """A denoiser-shaped net whose one submodule sees the input unchanged."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Identity()
        self.unused = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x, t):
        return self.layer(x)


def test_observers_order_and_power_of_two_mse():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 16, 16, generator=gen, dtype=torch.float64)
    x[0, 0, 0, 0] = 40.0  # one outlier
    stats = collect_stats(_Probe(), [(x, torch.zeros(64))])
    ranges = {o: observe(stats, CalibrationConfig(observer=o), lambda m, k: 4)["layer"]["in0"] for o in ("minmax", "percentile", "mse")}
    assert ranges["minmax"] == 40.0
    assert ranges["percentile"] < 40.0
    assert ranges["mse"] < 40.0 and math.log2(ranges["mse"]).is_integer()


def test_mse_observer_for_float_scales_searches_between_powers_of_two():
    """For a layer input with a float scale the range need not be a power of two, and the one
    chosen quantizes no worse than the best power of two."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 16, 16, generator=gen, dtype=torch.float64)
    x[0, 0, 0, 0] = 40.0
    stats = collect_stats(_Probe(), [(x, torch.zeros(64))])
    mse = CalibrationConfig(observer="mse")
    po2 = observe(stats, mse, lambda m, k: 4)["layer"]
    flt = observe(stats, mse, lambda m, k: 4, float_of=lambda m, k: k == "in0")["layer"]
    assert not math.log2(flt["in0"]).is_integer() and flt["out"] == po2["out"]
    values = x.numpy().reshape(-1)
    best = _mse_range(values, 40.0, 4, po2=False)
    assert _quant_mse(values, best / 7, 4) <= _quant_mse(values, _mse_range(values, 40.0, 4) / 8, 4)


def test_mse_range_keeps_the_peak_without_outliers():
    values = np.linspace(0, 1.0, 1000)
    assert _mse_range(values, 1.0, 8) == 1.0


def test_bad_configs_name_the_choices():
    with pytest.raises(ValueError, match="calibration timesteps 'cosine' unknown; known: all, uniform, normal"):
        CalibrationConfig(timesteps="cosine")
    with pytest.raises(ValueError, match="observer 'kl' unknown; known: minmax, percentile, mse"):
        CalibrationConfig(observer="kl")
