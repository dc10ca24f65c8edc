import pytest
import torch

from hwsim.diffusion.samplers import DDIMScheduler, DDPMScheduler, initial_noise, make_scheduler, sample
from hwsim.diffusion.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule()


def test_leading_timesteps():
    sch = DDIMScheduler(SCHEDULE)
    sch.set_timesteps(50)
    assert sch.timesteps[0] == 980 and sch.timesteps[-1] == 0 and len(sch.timesteps) == 50
    with pytest.raises(ValueError, match="num_inference_steps"):
        sch.set_timesteps(0)


@pytest.mark.parametrize("t", [980, 500, 20])
def test_ddim_with_true_noise_lands_on_the_forward_marginal(t):
    """eta=0 and the exact eps: x_{t-k} must equal sqrt(abar') x0 + sqrt(1-abar') eps."""
    sch = DDIMScheduler(SCHEDULE, clip_sample=False)
    sch.set_timesteps(50)
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.rand(4, 1, 4, 4, generator=gen) * 2 - 1, torch.randn(4, 1, 4, 4, generator=gen)
    xt = SCHEDULE.add_noise(x0.double(), eps.double(), torch.full((4,), t)).float()
    expect = SCHEDULE.add_noise(x0.double(), eps.double(), torch.full((4,), t - 20)).float()
    assert torch.allclose(sch.step(eps, t, xt), expect, atol=1e-5)


def test_ddim_final_step_returns_x0():
    sch = DDIMScheduler(SCHEDULE)
    sch.set_timesteps(10)
    x0, eps = torch.rand(2, 1, 3, 3) * 2 - 1, torch.randn(2, 1, 3, 3)
    xt = SCHEDULE.add_noise(x0, eps, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(sch.step(eps, 0, xt), x0, atol=1e-5)


def test_ddpm_step_is_the_posterior_sample():
    """Ho et al. eq. 6-7: x_{t-1} = mu~(x_t, x_0) + sqrt(beta~) z, with the same z the generator draws."""
    sch = DDPMScheduler(SCHEDULE, clip_sample=False)
    sch.set_timesteps(1000)
    t = 400
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(3, 1, 4, 4, generator=gen) * 2 - 1, torch.randn(3, 1, 4, 4, generator=gen)
    xt = SCHEDULE.add_noise(x0, eps, torch.full((3,), t))
    out = sch.step(eps, t, xt, generator=torch.Generator().manual_seed(5))
    z = torch.randn(xt.shape, generator=torch.Generator().manual_seed(5))
    abar, abar_prev, beta = (SCHEDULE.alphas_cumprod[t].item(), SCHEDULE.alphas_cumprod[t - 1].item(), SCHEDULE.betas[t].item())
    mean = abar_prev**0.5 * beta / (1 - abar) * x0 + (1 - beta) ** 0.5 * (1 - abar_prev) / (1 - abar) * xt
    var = (1 - abar_prev) / (1 - abar) * beta
    assert torch.allclose(out, mean + var**0.5 * z, atol=1e-5)


def test_ddim_eta_one_has_ddpm_variance():
    ddim, ddpm = DDIMScheduler(SCHEDULE, eta=1.0, clip_sample=False), DDPMScheduler(SCHEDULE, clip_sample=False)
    for s in (ddim, ddpm):
        s.set_timesteps(20)
    x, eps = torch.zeros(100000), torch.zeros(100000)
    a = ddim.step(eps, 500, x, generator=torch.Generator().manual_seed(0)).var().item()
    b = ddpm.step(eps, 500, x, generator=torch.Generator().manual_seed(1)).var().item()
    assert a == pytest.approx(b, rel=0.02)


class _LinearDenoiser:
    def __call__(self, x, t):
        return 0.5 * x + t[:, None, None, None].float() / 2000


def test_ddim_eta0_is_deterministic_and_batch_size_independent():
    sch = make_scheduler("ddim", SCHEDULE)
    a = sample(_LinearDenoiser(), sch, 10, (1, 4, 4), 20, seed=3, batch_size=4, progress=False)
    b = sample(_LinearDenoiser(), sch, 10, (1, 4, 4), 20, seed=3, batch_size=10, progress=False)
    c = sample(_LinearDenoiser(), sch, 10, (1, 4, 4), 20, seed=4, batch_size=10, progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1


def test_ddpm_sampling_is_seeded():
    sch = make_scheduler("ddpm", SCHEDULE)
    a = sample(_LinearDenoiser(), sch, 4, (1, 2, 2), 10, seed=1, progress=False)
    b = sample(_LinearDenoiser(), sch, 4, (1, 2, 2), 10, seed=1, progress=False)
    assert torch.equal(a, b)


def test_initial_noise_is_paired_across_counts():
    assert torch.equal(initial_noise(8, (1, 2, 2), 0)[:4], initial_noise(4, (1, 2, 2), 0))


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_scheduler("euler", SCHEDULE)
