"""Trajectory bias: the mean error of the predicted noise, per sampler step and per output element,
measured where the quantized sampler actually goes, and subtracted there at sampling time.

PTQD's residual bias (:mod:`hwsim.quant.methods.ptqd`) is one number per timestep, fitted on the
calibration inputs: x_t of the *float* model's trajectories. The quantized sampler leaves those
trajectories, and its error has a spatial pattern (a bright rim where the float model draws edges,
say) that one number cannot undo. Here the quantized sampler, with every correction fitted before
(PTQD), runs from the calibration noise; at each step the float model is evaluated on the same
x_t, the mean of (eps_q - eps) over the trajectories is that step's bias map, and it is subtracted
before the step is taken, so later steps are measured on the corrected trajectory (closed loop).

Where it runs: on the host, on the dequantized output, as PTQD (the accelerator is unchanged).
The maps belong to the sampler and timesteps they were fitted on (DDIM with the calibration's step
count); another step count uses the nearest fitted timestep's map. Stored in the quantized
directory's calibration.safetensors (``trajectory-bias|bias`` [steps, *image], ``trajectory-bias|t``).
"""

from __future__ import annotations

import numpy as np
import torch

from hwsim.diffusion.denoiser import Denoiser
from hwsim.diffusion.samplers import initial_noise, make_scheduler

PREFIX = "trajectory-bias|"


@torch.no_grad()
def fit(denoiser: Denoiser, float_net, scheduler, shape: tuple[int, ...], samples: int, steps: int,
        seed: int) -> dict[str, torch.Tensor]:
    """Bias maps of ``denoiser`` against ``float_net`` along ``denoiser``'s own corrected trajectories
    from ``samples`` seeded initial noises: {"t": [steps] int64, "bias": [steps, *shape] float64}."""
    scheduler.set_timesteps(steps)
    x = initial_noise(samples, shape, seed).double()
    ts, maps = [], []
    for t in scheduler.timesteps:
        tt = torch.full((samples,), t, dtype=torch.long)
        eps = denoiser(x, tt).double()
        bias = (eps - float_net(x, tt).double()).mean(0)
        ts.append(t)
        maps.append(bias)
        x = scheduler.step(eps - bias, t, x)
    return {"t": torch.tensor(ts, dtype=torch.long), "bias": torch.stack(maps)}


def apply(ctx) -> None:
    from hwsim.quant.methods.ptqd import CorrectedDenoiser
    from hwsim.quant.quantize import quantized_denoiser

    qnet = ctx.quantized_net()
    denoiser = quantized_denoiser(qnet)
    if "ptqd" in ctx.meta:  # measured with what the sampler will apply before it
        denoiser = CorrectedDenoiser(denoiser, ctx.meta["ptqd"])
    scheduler = make_scheduler("ddim", ctx.model.noise_schedule())
    fitted = fit(denoiser, ctx.model.net, scheduler, ctx.model.spec.image_shape, ctx.calib.samples, ctx.calib.steps,
                 ctx.calib.seed)
    ctx.tensors.update({PREFIX + k: v for k, v in fitted.items()})
    ctx.meta["trajectory_bias"] = {"sampler": "ddim", "steps": ctx.calib.steps, "samples": ctx.calib.samples,
                                   "seed": ctx.calib.seed, "rms": float(fitted["bias"].pow(2).mean().sqrt())}


class BiasedDenoiser:
    """Wraps a denoiser: its output minus the bias map of the nearest fitted timestep."""

    def __init__(self, inner: Denoiser, tensors: dict[str, torch.Tensor]):
        self.inner = inner
        self.t = tensors[PREFIX + "t"].numpy()
        self.bias = tensors[PREFIX + "bias"].double()

    @staticmethod
    def fitted(tensors: dict[str, torch.Tensor]) -> bool:
        return PREFIX + "bias" in tensors

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.inner(x_t, t)
        idx = torch.from_numpy(np.abs(self.t[None, :] - t.numpy()[:, None]).argmin(axis=1))
        return (eps.double() - self.bias[idx]).to(eps.dtype)
