"""PTQD (He et al., NeurIPS 2023): the quantization noise of the predicted noise,
``eps_q - eps = k * eps + r``, has a part correlated with eps and a residual r with a bias.
Fitted per sampler timestep on the calibration inputs, it is undone at sampling time:
``eps_corrected = (eps_q - mean(r)) / (1 + k)``.

Where it runs: on the host, in float, on the dequantized output of the accelerator (both the
``torch`` and ``intsim`` backends), because it is a per-timestep affine map of the output that
the sampler update applies anyway; the accelerator is unchanged. PTQD's variance calibration of
the residual only applies to stochastic samplers; hwsim's evaluations use DDIM with eta = 0,
so it is not implemented.
"""

from __future__ import annotations

import numpy as np
import torch

from hwsim.diffusion.denoiser import Denoiser


@torch.no_grad()
def fit(qnet, float_net, inputs) -> dict:
    """Per calibration timestep: k (correlation coefficient) and the residual bias, as lists."""
    by_t: dict[int, list[np.ndarray]] = {}
    for x, t in inputs:
        eps = float_net(x.double(), t).numpy()
        delta = qnet(x.double(), t).numpy() - eps
        for i, step in enumerate(t.tolist()):
            by_t.setdefault(step, []).append(np.stack([eps[i].ravel(), delta[i].ravel()]))
    ts, ks, biases = [], [], []
    for step in sorted(by_t):
        eps, delta = np.concatenate(by_t[step], axis=1)
        k = float(np.dot(eps, delta) / max(np.dot(eps, eps), 1e-30))
        ts.append(step)
        ks.append(k)
        biases.append(float(np.mean(delta - k * eps)))
    return {"t": ts, "k": ks, "bias": biases}


def apply(ctx) -> None:
    qnet = ctx.quantized_net()  # the net as every earlier stage left it
    ctx.meta["ptqd"] = fit(qnet, ctx.model.net, ctx.inputs)


class CorrectedDenoiser:
    """Wraps a denoiser with the PTQD correction of the nearest calibrated timestep."""

    def __init__(self, inner: Denoiser, correction: dict):
        self.inner = inner
        self.t = np.asarray(correction["t"])
        self.k = torch.tensor(correction["k"], dtype=torch.float64)
        self.bias = torch.tensor(correction["bias"], dtype=torch.float64)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.inner(x_t, t)
        idx = torch.from_numpy(np.abs(self.t[None, :] - t.numpy()[:, None]).argmin(axis=1))
        shape = (-1,) + (1,) * (eps.ndim - 1)
        return ((eps.double() - self.bias[idx].reshape(shape)) / (1 + self.k[idx].reshape(shape))).to(eps.dtype)
