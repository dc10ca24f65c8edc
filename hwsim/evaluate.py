"""Sample a model directory with a chosen backend and score the samples: the spine's one path.

``hwsim sample``, ``hwsim fid``, the demo and the model cards all go through these functions,
so every FID in the project is produced the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from hwsim.data import to_uint8
from hwsim.diffusion.denoiser import Denoiser, TorchDenoiser
from hwsim.diffusion.samplers import make_scheduler, sample
from hwsim.metrics import fid as fidlib
from hwsim.modeldir import LoadedModel, load_model

BACKENDS = ("torch", "intsim")


def make_denoiser(model: LoadedModel, backend: str = "torch", graph: str | Path | None = None) -> Denoiser:
    """The denoiser of ``model`` on ``backend``: torch (the float net) or intsim (the integer
    simulator running ``graph``, written by ``hwsim export``)."""
    if backend == "torch":
        return TorchDenoiser(model.net)
    if backend == "intsim":
        if graph is None:
            raise ValueError("backend 'intsim' needs --graph (an integer graph written by 'hwsim export')")
        from hwsim.intsim.denoiser import IntsimDenoiser

        return IntsimDenoiser(graph)
    raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")


def generate(model_dir: str | Path, num_samples: int, steps: int = 50, sampler: str = "ddim", seed: int = 0,
             backend: str = "torch", batch_size: int = 250, progress: bool = True,
             graph: str | Path | None = None) -> np.ndarray:
    """Generate ``num_samples`` images as uint8 [N, H, W] (DDIM uses eta = 0)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    model = load_model(model_dir)
    scheduler = make_scheduler(sampler, model.noise_schedule())
    x = sample(make_denoiser(model, backend, graph), scheduler, num_samples, model.spec.image_shape, steps,
               seed=seed, batch_size=batch_size, progress=progress)
    return to_uint8(x.numpy())


def score(images: np.ndarray, dataset: str, extractor: str = "classifier", n_bootstrap: int = 100,
          seed: int = 0) -> dict:
    """FID of ``images`` and the data floor at the same count, as one JSON-ready dict."""
    started = time.time()
    result = fidlib.evaluate(images, dataset, extractor, n_bootstrap=n_bootstrap, seed=seed)
    floor = fidlib.data_floor(dataset, len(images), extractor, n_bootstrap=n_bootstrap, seed=seed)
    return {"fid": result.as_dict(), "floor": floor.as_dict(), "seconds": round(time.time() - started, 1)}


def tile(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """uint8 [N, H, W] -> one grid image [rows*H, cols*W] with a 1-pixel gap."""
    n, h, w = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * (h + 1) - 1, cols * (w + 1) - 1), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = img
    return grid


def save_grid(images: np.ndarray, path: Path, max_images: int = 64, scale: int = 3) -> Path:
    """A PNG of the first ``max_images`` samples, upscaled ``scale`` times for viewing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = tile(images[:max_images])
    grid = np.kron(grid, np.ones((scale, scale), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, grid, cmap="gray", vmin=0, vmax=255)
    return path


def set_threads(threads: int | None) -> None:
    """Use all cores unless told otherwise (torch defaults to physical cores only)."""
    import os

    torch.set_num_threads(threads or os.cpu_count() or 1)
