import math

import pytest
import torch

from hwsim.diffusion.schedule import NoiseSchedule, ScheduleConfig


def test_linear_betas_and_cumprod():
    s = NoiseSchedule(ScheduleConfig(num_train_timesteps=1000))
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert s.alphas_cumprod[10].item() == pytest.approx(math.prod(1 - b for b in s.betas[:11].tolist()), rel=1e-12)
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])


def test_cosine_matches_closed_form():
    s = NoiseSchedule(ScheduleConfig(num_train_timesteps=1000, beta_schedule="cosine"))
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert s.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)


def test_add_noise_closed_form():
    s = NoiseSchedule()
    x0, eps = torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    t = torch.tensor([0, 999])
    out = s.add_noise(x0, eps, t)
    for i in range(2):
        a = s.alphas_cumprod[t[i]].item()
        assert torch.allclose(out[i], torch.full((1, 2, 2), math.sqrt(a) + 2 * math.sqrt(1 - a)))


def test_marginal_variance_is_one_for_unit_data():
    s = NoiseSchedule()
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(20000, generator=gen), torch.randn(20000, generator=gen)
    xt = s.add_noise(x0, eps, torch.full((20000,), 500))
    assert xt.var().item() == pytest.approx(1.0, abs=0.05)
