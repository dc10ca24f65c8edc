"""DDPM and DDIM samplers in the diffusers style, and the sampling loop that drives any Denoiser.

A scheduler knows nothing of the network: ``set_timesteps(n)``, then for each t in
``timesteps``: ``x = step(eps, t, x, generator)``. The same loop therefore serves the float,
fake-quant, integer-simulator and RTL denoisers, so FID differences come from the denoiser alone.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from hwsim.diffusion.denoiser import Denoiser
from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.resume import BatchStore


class _StridedScheduler:
    """Shared timestep spacing ("leading", as diffusers): T/n apart, ending at t = 0."""

    def __init__(self, schedule: NoiseSchedule, clip_sample: bool = True):
        self.schedule = schedule
        self.clip_sample = clip_sample
        self.timesteps: list[int] = []
        self.step_ratio = 1

    def set_timesteps(self, num_inference_steps: int) -> None:
        total = self.schedule.num_train_timesteps
        if not 1 <= num_inference_steps <= total:
            raise ValueError(f"num_inference_steps must be in [1, {total}], got {num_inference_steps}")
        self.step_ratio = total // num_inference_steps
        self.timesteps = [i * self.step_ratio for i in reversed(range(num_inference_steps))]

    def _alphas(self, t: int) -> tuple[float, float]:
        """abar at t and at the previous (less noisy) timestep; abar = 1 before t = 0."""
        acp = self.schedule.alphas_cumprod
        prev = t - self.step_ratio
        return float(acp[t]), float(acp[prev]) if prev >= 0 else 1.0

    def predict_x0(self, eps: torch.Tensor, t: int, x: torch.Tensor) -> torch.Tensor:
        a_t, _ = self._alphas(t)
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        return x0.clamp(-1, 1) if self.clip_sample else x0


class DDIMScheduler(_StridedScheduler):
    """DDIM (Song et al. 2021, eq. 12). ``eta=0`` is deterministic; ``eta=1`` is DDPM's variance."""

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0, clip_sample: bool = True):
        super().__init__(schedule, clip_sample)
        self.eta = eta

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, generator: torch.Generator | None = None):
        a_t, a_prev = self._alphas(t)
        x0 = self.predict_x0(eps, t, x)
        if self.clip_sample:  # keep eps consistent with the clipped x0, as diffusers does
            eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
        sigma = self.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
        x_prev = a_prev**0.5 * x0 + max(1 - a_prev - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x_prev = x_prev + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return x_prev


class DDPMScheduler(_StridedScheduler):
    """Ancestral DDPM sampling (Ho et al. 2020, eq. 6-7) on the strided timesteps."""

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, generator: torch.Generator | None = None):
        a_t, a_prev = self._alphas(t)
        beta = 1 - a_t / a_prev  # the effective beta between the two strided timesteps
        x0 = self.predict_x0(eps, t, x)
        mean = (a_prev**0.5 * beta / (1 - a_t)) * x0 + ((1 - beta) ** 0.5 * (1 - a_prev) / (1 - a_t)) * x
        if t - self.step_ratio < 0:
            return mean
        var = (1 - a_prev) / (1 - a_t) * beta
        return mean + var**0.5 * torch.randn(x.shape, generator=generator, dtype=x.dtype)


SAMPLERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}


def make_scheduler(name: str, schedule: NoiseSchedule, **kwargs) -> _StridedScheduler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](schedule, **kwargs)


def initial_noise(num_samples: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """x_T for ``num_samples`` images; the same seed gives the same noise for every config (paired)."""
    return torch.randn((num_samples, *shape), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    scheduler: _StridedScheduler,
    num_samples: int,
    shape: tuple[int, ...],
    num_steps: int,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    resume: BatchStore | None = None,
) -> torch.Tensor:
    """Run the reverse process from seeded noise; returns x_0 [num_samples, *shape] in [-1, 1].

    Sample i starts from the same x_T whatever the batch size. Stochastic samplers draw their
    step noise from one generator per batch, seeded from (seed, batch index). With ``resume``,
    finished batches are stored as they complete and skipped when the run is repeated.
    """
    scheduler.set_timesteps(num_steps)
    x_all = initial_noise(num_samples, shape, seed)
    out = []
    batches = range(0, num_samples, batch_size)
    bar = tqdm(total=len(batches) * num_steps, desc="sampling", unit="step", disable=not progress)
    for index, start in enumerate(batches):
        done = resume.load(index) if resume else None
        if done is not None:
            out.append(torch.from_numpy(done))
            bar.update(num_steps)
            continue
        x = x_all[start : start + batch_size]
        gen = torch.Generator().manual_seed(seed * 1_000_003 + index + 1)
        for t in scheduler.timesteps:
            eps = denoiser(x, torch.full((len(x),), t, dtype=torch.long))
            x = scheduler.step(eps, t, x, generator=gen)
            bar.update(1)
        out.append(x.clamp(-1, 1))
        if resume:
            resume.save(index, out[-1].numpy())
    bar.close()
    return torch.cat(out)
