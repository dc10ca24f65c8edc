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
from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.export.pipeline import GRAPH_FILE
from hwsim.modeldir import CONFIG_FILE, WEIGHTS_FILE, load_model, load_spec
from hwsim.provenance import file_sha256
from hwsim.quant.methods.ptqd import CorrectedDenoiser
from hwsim.quant.methods.trajectory_bias import BiasedDenoiser
from hwsim.quant.qmodel import RANGES_FILE, is_quantized, load_quantized, method_tensors, read_meta
from hwsim.quant.quantize import quantized_denoiser
from hwsim.resume import BatchStore

BACKENDS = ("torch", "intsim")


def denoiser_graph(model_dir: str | Path, backend: str, graph: str | Path | None) -> Path | None:
    """The integer graph the intsim backend runs: the given one, else a quantized directory's own."""
    if backend != "intsim":
        return None
    if graph is not None:
        return Path(graph)
    return Path(model_dir) / GRAPH_FILE if is_quantized(model_dir) else None


def make_denoiser(model_dir: str | Path, backend: str = "torch", graph: str | Path | None = None) -> Denoiser:
    """The denoiser of a model directory on ``backend``.

    torch runs the float net, or for a quantized directory (``hwsim quantize``) its hardware-exact
    net in float64; intsim runs the integer simulator on ``graph``, which defaults to a quantized
    directory's own ``integer.onnx``. A quantized directory's host-side corrections, if it has
    them, wrap either: PTQD's, then the trajectory bias.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    if not is_quantized(model_dir):
        if backend == "torch":
            return TorchDenoiser(load_model(model_dir).net)
        if graph is None:
            raise ValueError("backend 'intsim' needs --graph (an integer graph written by 'hwsim export'), "
                             "or a quantized model directory (from 'hwsim quantize')")
    if backend == "torch":
        denoiser = quantized_denoiser(load_quantized(model_dir).net())
    else:
        from hwsim.intsim.denoiser import IntsimDenoiser

        denoiser = IntsimDenoiser(denoiser_graph(model_dir, backend, graph))
    correction = ptqd_correction(model_dir)
    if correction:
        denoiser = CorrectedDenoiser(denoiser, correction)
    tensors = method_tensors(model_dir)
    return BiasedDenoiser(denoiser, tensors) if BiasedDenoiser.fitted(tensors) else denoiser


def ptqd_correction(model_dir: str | Path) -> dict | None:
    """The PTQD correction a quantized model directory carries (applied by the host sampler), if any."""
    return read_meta(model_dir).get("ptqd") if is_quantized(model_dir) else None


def generate(model_dir: str | Path, num_samples: int, steps: int = 50, sampler: str = "ddim", seed: int = 0,
             backend: str = "torch", batch_size: int = 250, progress: bool = True,
             graph: str | Path | None = None, resume_dir: str | Path | None = None) -> np.ndarray:
    """Generate ``num_samples`` images as uint8 [N, H, W] (DDIM uses eta = 0).

    ``resume_dir`` keeps every finished batch, so an interrupted run continues where it stopped.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    spec = load_spec(model_dir)
    denoiser = make_denoiser(model_dir, backend, graph)
    scheduler = make_scheduler(sampler, NoiseSchedule(spec.schedule))
    resume = None
    if resume_dir is not None:
        # what the samples depend on, by content rather than by where the model lies, so that a work
        # directory copied or moved elsewhere keeps its batches: the model's config, weights, ranges
        # and integer graph, and its PTQD correction if any
        key = {"num_samples": num_samples, "steps": steps, "sampler": sampler, "seed": seed, "backend": backend,
               "batch_size": batch_size}
        files = [Path(model_dir) / CONFIG_FILE, Path(model_dir) / WEIGHTS_FILE, Path(model_dir) / RANGES_FILE,
                 denoiser_graph(model_dir, backend, graph)]
        key.update({f"sha256:{f.name}": file_sha256(f) for f in files if f is not None and f.is_file()})
        correction = ptqd_correction(model_dir)
        if correction:
            key["ptqd"] = correction
        resume = BatchStore(resume_dir, key)
    x = sample(denoiser, scheduler, num_samples, spec.image_shape, steps, seed=seed, batch_size=batch_size,
               progress=progress, resume=resume)
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
