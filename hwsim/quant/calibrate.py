"""Data-free calibration: the float model's own DDIM trajectories give the activation ranges.

The float net samples a few trajectories (seeded apart from every evaluation seed). Which of
the (x_t, t) met along them calibrate is the timestep strategy:

- ``all``: every step of every trajectory;
- ``uniform``: ``points`` inputs on evenly spaced steps (Q-Diffusion's uniform timestep sampling);
- ``normal``: ``points`` inputs whose t is drawn from N(mean*T, std*T), clipped to [0, T-1] and
  snapped to the nearest sampler step (PTQ4DM's normally distributed time-step calibration;
  mean = std = 0.4 are the defaults of the PTQ4DM reference code, github.com/42shawn/PTQ4DM).

Forward hooks on the prepared float64 net record per module the largest |value| of each input
and of the output, the signed extremes, and a bounded random subsample of the values. The
observer turns them into a clipping range: ``minmax`` (the largest |value|), ``percentile`` (of
|value|), or ``mse`` (the
range with the least quantization error on the subsample: among the four powers of two below the
min-max one for power-of-two scales, which leave only those choices; on a fine geometric grid for
the inputs of layers with float scales); inputs with a zero point get a signed range
``in0_lo``/``in0_hi`` the same way. The result is a plain
``{module: {"in0": max, "out": max, "spatial": HW}}`` dict, so a quantized model directory
stores it (safetensors) and rebuilds its net without recalibrating.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from hwsim.diffusion.samplers import make_scheduler, sample
from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.quant.hooks import run_hooked

Ranges = dict[str, dict[str, float]]
TIMESTEP_STRATEGIES = ("all", "uniform", "normal")
OBSERVERS = ("minmax", "percentile", "mse")
SUBSAMPLE_PER_CALL, SUBSAMPLE_CAP = 2048, 2**17  # values kept per module input for the observers


@dataclass(frozen=True)
class CalibrationConfig:
    samples: int = 32  # DDIM trajectories of the float model
    steps: int = 50  # DDIM steps per trajectory
    seed: int = 1234  # distinct from evaluation seeds, so calibration never sees the test noise
    timesteps: str = "all"  # which (x_t, t) calibrate: all | uniform | normal (module docstring)
    points: int = 256  # calibration inputs drawn by the uniform and normal strategies
    normal_mean: float = 0.4  # of the normal strategy, as fractions of the training timesteps T
    normal_std: float = 0.4
    observer: str = "minmax"  # minmax | percentile | mse
    percentile: float = 99.99  # of |value|, for the percentile observer

    def __post_init__(self):
        if self.timesteps not in TIMESTEP_STRATEGIES:
            raise ValueError(f"calibration timesteps {self.timesteps!r} unknown; known: {', '.join(TIMESTEP_STRATEGIES)}")
        if self.observer not in OBSERVERS:
            raise ValueError(f"calibration observer {self.observer!r} unknown; known: {', '.join(OBSERVERS)}")
        if min(self.samples, self.steps, self.points) < 1 or not 0 < self.percentile <= 100 or self.normal_std <= 0:
            raise ValueError(f"calibration config out of range: {self}")


@torch.no_grad()
def calibration_inputs(net: nn.Module, schedule: NoiseSchedule, shape: tuple[int, ...], num_samples: int = 32,
                       steps: int = 50, seed: int = 1234) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x_t, t) batches met along DDIM trajectories of the float model, one per step."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    dtype = next(net.parameters()).dtype

    def recorder(x, t):
        seen.append((x.clone(), t.clone()))
        return net(x.to(dtype), t).float()

    sample(recorder, make_scheduler("ddim", schedule), num_samples, shape, steps, seed=seed, progress=False)
    return seen


def select_timesteps(trajectory: list[tuple[torch.Tensor, torch.Tensor]], cfg: CalibrationConfig,
                     num_train_timesteps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The calibration inputs of ``cfg.timesteps`` out of a trajectory (one batch per step)."""
    if cfg.timesteps == "all":
        return trajectory
    n = len(trajectory[0][0])
    step_t = np.array([int(t[0]) for _, t in trajectory])
    rng = np.random.default_rng(cfg.seed)
    if cfg.timesteps == "uniform":
        chosen = np.round(np.linspace(0, len(trajectory) - 1, max(1, -(-cfg.points // n)))).astype(int)
        picks = [(i, j) for i in chosen for j in range(n)][: cfg.points]
    else:
        t = np.clip(rng.normal(cfg.normal_mean, cfg.normal_std, cfg.points) * num_train_timesteps, 0, num_train_timesteps - 1)
        steps = np.abs(step_t[None, :] - t[:, None]).argmin(axis=1)
        picks = list(zip(steps.tolist(), rng.integers(0, n, cfg.points).tolist()))
    by_step: dict[int, list[int]] = defaultdict(list)
    for i, j in picks:
        by_step[i].append(j)
    return [(trajectory[i][0][js], trajectory[i][1][js]) for i, js in sorted(by_step.items())]


class _Stats:
    """Per module and key: max |value|, the signed extremes, and a bounded random subsample."""

    def __init__(self, seed: int):
        self.peak: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.low: dict[tuple[str, str], float] = defaultdict(float)  # min(0, smallest value)
        self.high: dict[tuple[str, str], float] = defaultdict(float)  # max(0, largest value)
        self.spatial: dict[str, int] = {}
        self.values: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        self.kept: dict[tuple[str, str], int] = defaultdict(int)
        self.gen = torch.Generator().manual_seed(seed)

    def add(self, name: str, key: str, a: torch.Tensor) -> None:
        flat = a.detach().reshape(-1)
        self.peak[name][key] = max(self.peak[name][key], float(flat.abs().max()))
        self.low[(name, key)] = min(self.low[(name, key)], float(flat.min()))
        self.high[(name, key)] = max(self.high[(name, key)], float(flat.max()))
        if self.kept[(name, key)] < SUBSAMPLE_CAP:
            idx = torch.randint(0, flat.numel(), (min(SUBSAMPLE_PER_CALL, flat.numel()),), generator=self.gen)
            self.values[(name, key)].append(flat[idx].double().numpy())
            self.kept[(name, key)] += len(idx)


@torch.no_grad()
def collect_stats(net: nn.Module, inputs: list[tuple[torch.Tensor, torch.Tensor]], seed: int = 0) -> _Stats:
    stats = _Stats(seed)

    def hook(name):
        def fn(module, args, output):
            for i, a in enumerate(args):
                if torch.is_tensor(a) and a.is_floating_point():
                    stats.add(name, f"in{i}", a)
                    if a.ndim == 4:
                        stats.spatial[name] = a.shape[2] * a.shape[3]
            if torch.is_tensor(output) and output.is_floating_point():
                stats.add(name, "out", output)
        return fn

    run_hooked(net, [(m, hook(n)) for n, m in net.named_modules() if n], inputs)
    return stats


def _grid_mse(values: np.ndarray, scale: float, qmin: int, qmax: int) -> float:
    """Mean squared error of rounding ``values`` to the codes [qmin, qmax] times ``scale``."""
    q = np.clip(np.round(values / scale), qmin, qmax)
    return float(np.mean((q * scale - values) ** 2))


def _quant_mse(values: np.ndarray, scale: float, bits: int) -> float:
    return _grid_mse(values, scale, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _mse_range(values: np.ndarray, peak: float, bits: int, po2: bool = True) -> float:
    """The clipping range (<= the min-max one) with the least quantization MSE: among the four
    power-of-two ones below it (``po2``), or, for a float scale (range / (2^(b-1) - 1)), on a
    geometric grid of 2^(1/8) steps down to a sixteenth of it plus the ranges whose scales are the
    power-of-two candidates' (so it is never worse on the subsample)."""
    top = math.ceil(math.log2(max(peak, 1e-8)))
    powers = [2.0**e for e in range(top, top - 4, -1)]
    if not po2:  # the grid, and the float ranges whose scales are the power-of-two candidates'
        qmax = 2 ** (bits - 1) - 1
        candidates = [peak * 2.0 ** (-i / 8) for i in range(33)] + [p * qmax / (qmax + 1) for p in powers if p * qmax / (qmax + 1) <= peak]
        return min(candidates, key=lambda r: _quant_mse(values, r / qmax, bits))
    best = min(powers, key=lambda r: _quant_mse(values, r / 2 ** (bits - 1), bits))
    return min(best, peak)


def zero_point_grid(lo: float, hi: float, bits: int, po2: bool = True) -> tuple[float, int]:
    """(scale, zero point) of an asymmetric ``bits``-wide grid over [lo, hi] (lo <= 0 <= hi): the
    codes ``[-z, 2^b - 1 - z]`` times the scale. A power-of-two scale is the smallest one whose 2^b
    steps span the range (as a symmetric grid's 2^(b-1) steps span its max |x|); a float scale is
    (hi - lo) / (2^b - 1). The observers' model of :class:`hwsim.quant.modules.IntegerInputLayer`."""
    span = max(hi - lo, 1e-8)
    scale = 2.0 ** math.ceil(math.log2(span / 2**bits)) if po2 else span / (2**bits - 1)
    return scale, min(max(round(-lo / scale), 0), 2**bits - 1)


def _zero_point_mse(values: np.ndarray, lo: float, hi: float, bits: int, po2: bool) -> float:
    scale, z = zero_point_grid(lo, hi, bits, po2)
    return _grid_mse(values, scale, -z, 2**bits - 1 - z)


def _observe_zero_point(stats: _Stats, name: str, key: str, cfg: CalibrationConfig, bits: int,
                        po2: bool) -> tuple[float, float]:
    """The clipped signed range [lo, hi] of an input with a zero point, by ``cfg.observer``: min-max;
    percentiles of the values; or the least-MSE shrink of [min, max] toward zero. The MSE
    candidates are those of :func:`_mse_range`: for power-of-two scales the four scales from the
    min-max one down (each the range shrunk to just fit it: a shrink between two of them would
    only clip more on the same scale), for float ones 2^(1/8) steps down to a sixteenth."""
    lo, hi = stats.low[(name, key)], stats.high[(name, key)]
    kept = stats.values.get((name, key))
    if cfg.observer == "minmax" or not kept:
        return lo, hi
    values = np.concatenate(kept)
    if cfg.observer == "percentile":
        return max(lo, min(0.0, float(np.percentile(values, 100 - cfg.percentile)))), \
            min(hi, max(0.0, float(np.percentile(values, cfg.percentile))))
    if po2:
        full = zero_point_grid(lo, hi, bits)[0] * 2**bits
        shrinks = [min(1.0, full * 2.0**-i / max(hi - lo, 1e-8)) for i in range(4)]
    else:
        shrinks = [2.0 ** (-i / 8) for i in range(33)]
    best = min(shrinks, key=lambda a: _zero_point_mse(values, a * lo, a * hi, bits, po2))
    return best * lo, best * hi


def observe(stats: _Stats, cfg: CalibrationConfig, bits_of: Callable[[str, str], int],
            float_of: Callable[[str, str], bool] = lambda module, key: False,
            zero_point_of: Callable[[str, str], bool] = lambda module, key: False) -> Ranges:
    """Clipping ranges from the statistics by ``cfg.observer``; ``bits_of(module, key)`` gives
    the quantizer's width, ``float_of(module, key)`` whether its scale is a float one (plan
    ``scale: float``), which the MSE observer needs, and ``zero_point_of(module, key)`` whether it
    has a zero point (plan ``act_zero_point``): those keys also get the signed range as
    ``<key>_lo`` and ``<key>_hi``."""
    ranges: Ranges = {}
    for name, peaks in stats.peak.items():
        r = ranges.setdefault(name, {})
        for key, peak in peaks.items():
            if zero_point_of(name, key):
                r[f"{key}_lo"], r[f"{key}_hi"] = _observe_zero_point(stats, name, key, cfg, bits_of(name, key),
                                                                     not float_of(name, key))
            if cfg.observer == "minmax" or not stats.values.get((name, key)):
                r[key] = peak
                continue
            values = np.abs(np.concatenate(stats.values[(name, key)]))
            if cfg.observer == "percentile":
                r[key] = min(peak, float(np.percentile(values, cfg.percentile)))
            else:
                r[key] = _mse_range(values, peak, bits_of(name, key), po2=not float_of(name, key))
        if name in stats.spatial:
            r["spatial"] = stats.spatial[name]
    return ranges


def collect_ranges(net: nn.Module, inputs: list[tuple[torch.Tensor, torch.Tensor]],
                   zero_points: bool = False) -> Ranges:
    """Min-max ranges (largest |input|, |output|, and the spatial size) of every module; with
    ``zero_points``, every first input's signed range too (``in0_lo``, ``in0_hi``)."""
    return observe(collect_stats(net, inputs), CalibrationConfig(), lambda name, key: 8,
                   zero_point_of=lambda name, key: zero_points and key == "in0")


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
