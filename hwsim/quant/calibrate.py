"""Data-free calibration: the float model's own DDIM trajectories give the activation ranges.

The float net samples a few trajectories (seeded apart from every evaluation seed); every
denoiser call along them is a calibration point (x_t, t). Forward hooks on the prepared float64
net record, per module, the largest |value| at each input and at the output: the min-max
observer. The ranges are a plain ``{module: {"in0": max, "out": max, "spatial": HW}}`` dict, so a
quantized model directory stores them (safetensors) and rebuilds its net without recalibrating.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn

from hwsim.diffusion.samplers import make_scheduler, sample
from hwsim.diffusion.schedule import NoiseSchedule

Ranges = dict[str, dict[str, float]]


@dataclass(frozen=True)
class CalibrationConfig:
    samples: int = 32  # DDIM trajectories of the float model
    steps: int = 50  # DDIM steps per trajectory (every step's input is a calibration point)
    seed: int = 1234  # distinct from evaluation seeds, so calibration never sees the test noise


@torch.no_grad()
def calibration_inputs(net: nn.Module, schedule: NoiseSchedule, shape: tuple[int, ...], num_samples: int = 32,
                       steps: int = 50, seed: int = 1234) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x_t, t) pairs met along DDIM trajectories of the float model (data-free calibration)."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recorder(x, t):
        seen.append((x.clone(), t.clone()))
        return net(x, t)

    sample(recorder, make_scheduler("ddim", schedule), num_samples, shape, steps, seed=seed, progress=False)
    return seen


@torch.no_grad()
def collect_ranges(net: nn.Module, inputs: list[tuple[torch.Tensor, torch.Tensor]]) -> Ranges:
    """max |input| (and |output|, and the spatial size) of every module, over the calibration set."""
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    dtype = next(net.parameters()).dtype

    def hook(name):
        def fn(module, args, output):
            s = stats[name]
            for i, a in enumerate(args):
                if torch.is_tensor(a) and a.is_floating_point():
                    s[f"in{i}"] = max(s[f"in{i}"], float(a.abs().max()))
                    if a.ndim == 4:
                        s["spatial"] = a.shape[2] * a.shape[3]
            if torch.is_tensor(output) and output.is_floating_point():
                s["out"] = max(s["out"], float(output.abs().max()))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if n]
    try:
        for x, t in inputs:
            net(x.to(dtype), t)
    finally:
        for h in handles:
            h.remove()
    return {k: dict(v) for k, v in stats.items()}


def ranges_to_tensors(ranges: Ranges) -> dict[str, torch.Tensor]:
    """Flatten for safetensors: ``"module/key"`` -> 0-d float64 tensor."""
    return {f"{module}/{key}": torch.tensor(float(v), dtype=torch.float64)
            for module, values in ranges.items() for key, v in values.items()}


def ranges_from_tensors(tensors: dict[str, torch.Tensor]) -> Ranges:
    ranges: Ranges = defaultdict(dict)
    for flat, value in tensors.items():
        module, _, key = flat.rpartition("/")
        ranges[module][key] = float(value)
    return dict(ranges)
