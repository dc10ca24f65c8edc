"""How classifier-FID responds to two things quantization does to the samples, measured on the FP
model alone, so that a quantized row's gap to FP can be read against them:

1. brightness: the FP row's 2,000 samples shifted by a few uint8 grey levels (clipped);
2. noise: the FP sampler with zero-mean white noise added to every step's predicted noise, its
   standard deviation per step that of a quantized row's error (eps_q - eps, its mean removed,
   measured on the quantized sampler's own trajectories from the calibration noise), times 1, 1/2
   and 1/4. The noise has the error's size but none of its structure.

Each scored as the PTQ table's rows are (same initial noise, 50 DDIM steps): classifier-FID with its
bootstrap interval, the paired gap to the FP row, the mean pixel.

    python experiments/fid_sensitivity.py   # about 15 CPU-minutes; needs the PTQ table's work directory

Reads the FP samples and the quantized rows' directories from the PTQ table's work directory
(out/ptq_table; ``python experiments/ptq_table.py`` makes them) and writes
experiments/results/ptq_table/fid_sensitivity.json after each quantized row; rows already there are
kept and not measured again (resumable).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from hwsim.data import to_uint8
from hwsim.diffusion.denoiser import TorchDenoiser
from hwsim.diffusion.samplers import initial_noise, make_scheduler, sample
from hwsim.evaluate import generate, make_denoiser, set_threads
from hwsim.metrics.fid import (evaluate_features, extract_features, make_extractor, paired_differences,
                               reference_features)
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.qmodel import read_meta

ROOT = Path(__file__).resolve().parent.parent
SHIFTS = (-4, -2, -1, 1, 2, 4)
NOISE_SCALES = (1.0, 0.5, 0.25)
ERROR_TRAJECTORIES = 64
ROWS = ("unet-fashion-w8a8n12-unet-noada", "dit-fashion-w8a8n12-dit-noada")  # the best W8A8 row of each net


def shifted(images: np.ndarray, levels: int) -> np.ndarray:
    """``images`` (uint8) with ``levels`` added to every pixel, clipped to [0, 255]."""
    return np.clip(images.astype(np.int16) + levels, 0, 255).astype(np.uint8)


@torch.no_grad()
def error_std(quantized, float_denoiser, scheduler, shape, steps: int, samples: int, seed: int) -> dict[int, float]:
    """Per sampler step, the standard deviation of eps_q - eps (its mean over samples and pixels
    removed) on the quantized sampler's own trajectories from ``samples`` seeded noises."""
    scheduler.set_timesteps(steps)
    x, std = initial_noise(samples, shape, seed), {}
    for t in scheduler.timesteps:
        tt = torch.full((samples,), t, dtype=torch.long)
        eps = quantized(x, tt).to(x.dtype)
        std[t] = float((eps - float_denoiser(x, tt)).std())
        x = scheduler.step(eps, t, x)
    return std


class NoisyDenoiser:
    """A denoiser plus zero-mean white noise of a given standard deviation per timestep."""

    def __init__(self, inner, std: dict[int, float], seed: int):
        self.inner, self.std = inner, std
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.inner(x_t, t)
        return eps + self.std[int(t[0])] * torch.randn(eps.shape, generator=self.generator, dtype=eps.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "experiments/ptq_table.yaml")
    parser.add_argument("--work", type=Path, default=ROOT / "out/ptq_table")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="quantized rows whose error size the noise takes")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/ptq_table/fid_sensitivity.json")
    args = parser.parse_args()
    set_threads(2)
    cfg = yaml.safe_load(args.config.read_text())
    samples, steps, seed = cfg["samples"], cfg["steps"], cfg["seed"]
    settings = {"config": str(args.config.relative_to(ROOT)), "samples": samples, "steps": steps, "seed": seed,
                "shifts": list(SHIFTS), "noise_scales": list(NOISE_SCALES), "error_trajectories": ERROR_TRAJECTORIES,
                "error_seed": cfg["calibration"]["seed"]}
    done = json.loads(args.out.read_text()) if args.out.is_file() else {}
    rows = done.get("rows", []) if all(done.get(k) == v for k, v in settings.items()) else []
    for rid in args.rows:
        if any(r.get("error_of") == rid for r in rows):
            continue
        started = time.time()
        qdir = args.work / "quantized" / rid
        if not qdir.is_dir():
            raise SystemExit(f"{qdir}: no such quantized row; run experiments/ptq_table.py first")
        model = load_model(ROOT / "models" / Path(read_meta(qdir)["source"]).name)
        dataset, shape = model.spec.dataset, model.spec.image_shape
        extractor, real = make_extractor("classifier", dataset), reference_features(dataset, "classifier")
        fp_images = generate(model.path, samples, steps, "ddim", seed, "torch", progress=False,
                             resume_dir=args.work / "resume" / f"{model.path.name}-fp")
        fp_feats = extract_features(extractor, fp_images)

        def scored(images: np.ndarray, **what) -> dict:
            feats = extract_features(extractor, images)
            fid = evaluate_features(real, feats, "classifier", seed=seed)
            gap = paired_differences(real, {"a": feats, "fp": fp_feats}, [("a", "fp")], seed=seed)["a - fp"]
            row = {"model": model.path.name, **what, "fid_classifier": fid.fid, "fid_classifier_ci": [fid.ci_low, fid.ci_high],
                   "fid_gap_to_fp": gap["diff"], "fid_gap_to_fp_ci": [gap["ci_low"], gap["ci_high"]],
                   "mean_pixel": float(images.mean()), "fp_mean_pixel": float(fp_images.mean())}
            print(json.dumps(row), flush=True)
            return row

        if not any(r["model"] == model.path.name and r["kind"] == "shift" for r in rows):
            rows += [scored(shifted(fp_images, levels), kind="shift", shift_levels=levels) for levels in SHIFTS]
        scheduler = make_scheduler("ddim", model.noise_schedule())
        float_denoiser = TorchDenoiser(model.net)
        std = error_std(make_denoiser(qdir, "intsim"), float_denoiser, scheduler, shape, steps, ERROR_TRAJECTORIES,
                        cfg["calibration"]["seed"])
        for scale in NOISE_SCALES:
            noisy = NoisyDenoiser(float_denoiser, {t: scale * s for t, s in std.items()}, seed=seed + 1)
            x = sample(noisy, scheduler, samples, shape, steps, seed=seed, batch_size=250, progress=False)
            rows.append(scored(to_uint8(x.numpy()), kind="noise", error_of=rid, noise_scale=scale,
                               noise_std_first_last=[std[scheduler.timesteps[0]] * scale, std[0] * scale]))
        print(f"{rid}: {time.time() - started:.0f} s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**settings, "rows": rows, "provenance": provenance()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
