"""Where quantization hurts: SQNR of every layer's output against the float model, per
timestep group, on fixed inputs from the float model's own trajectories (``hwsim diagnose``).

The quantized net keeps the float net's module names, so forward hooks on both pair every
Conv/Linear output; errors accumulate through the net, as they do in hardware. The same fixed
inputs give :func:`output_mse`, the figure of merit by which every PTQ method is tested against
naive min-max.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwsim.modeldir import LoadedModel
from hwsim.quant.calibrate import calibration_inputs
from hwsim.quant.quantize import prepared
from hwsim.quant.timestep_groups import layer_name

Inputs = list[tuple[torch.Tensor, torch.Tensor]]


def fixed_inputs(model: LoadedModel, samples: int = 8, steps: int = 50, seed: int = 0, stride: int = 5) -> Inputs:
    """(x_t, t) on every ``stride``-th step of DDIM trajectories of the float model (evaluation seed)."""
    return calibration_inputs(model.net, model.noise_schedule(), model.spec.image_shape, samples, steps, seed)[::stride]


@torch.no_grad()
def output_mse(qnet: nn.Module, float_net: nn.Module, inputs: Inputs) -> float:
    """Mean squared error of the predicted noise against the float net, over ``inputs``."""
    reference = prepared(float_net)
    errors = [float(((qnet(x.double(), t) - reference(x.double(), t)) ** 2).mean()) for x, t in inputs]
    return float(np.mean(errors))


def _sqnr_db(signal: float, noise: float) -> float:
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)


@torch.no_grad()
def sqnr_report(qnet: nn.Module, float_net: nn.Module, inputs: Inputs, num_train_timesteps: int, groups: int = 4) -> dict:
    """SQNR (dB) of every quantized Conv/Linear output (the time embedding and adaLN layers become
    exact tables and have none) and of the net's output, per timestep group
    ([0, T/groups), ...), against the float net on the same inputs."""
    reference = prepared(float_net)
    quantized = {layer_name(n) for n, m in qnet.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    names = [n for n, m in reference.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and n in quantized]
    power = {n: np.zeros((groups, 2)) for n in [*names, "output"]}  # [signal, noise] per group
    captured: dict[str, dict[str, torch.Tensor]] = {"float": {}, "quant": {}}

    def hook(store, name):
        def fn(module, args, output):
            store[name] = output.detach().double()
        return fn

    handles = [m.register_forward_hook(hook(captured["float"], n)) for n, m in reference.named_modules() if n in names]
    handles += [m.register_forward_hook(hook(captured["quant"], layer_name(n))) for n, m in qnet.named_modules()
                if layer_name(n) in names]  # of a grouped net, only the running group's layers fire
    try:
        for x, t in inputs:
            group = min(groups - 1, int(t[0]) * groups // num_train_timesteps)
            ref_out, q_out = reference(x.double(), t), qnet(x.double(), t)
            for name in names:
                ref, q = captured["float"][name], captured["quant"][name]
                power[name][group] += [float((ref**2).sum()), float(((ref - q) ** 2).sum())]
            power["output"][group] += [float((ref_out**2).sum()), float(((ref_out - q_out) ** 2).sum())]
    finally:
        for h in handles:
            h.remove()
    bounds = [[g * num_train_timesteps // groups, (g + 1) * num_train_timesteps // groups - 1] for g in range(groups)]
    table = {name: [_sqnr_db(s, n) if s else None for s, n in p] for name, p in power.items()}
    return {"timestep_groups": bounds, "layers": names, "sqnr_db": table}


def plot_sqnr(report: dict, path: Path) -> Path:
    """Heat map: layers (rows, in net order, then the output) x timestep groups (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [*report["layers"], "output"]
    data = np.array([[np.nan if v is None or math.isinf(v) else v for v in report["sqnr_db"][r]] for r in rows])
    fig, ax = plt.subplots(figsize=(4 + len(report["timestep_groups"]), 0.22 * len(rows) + 1.5))
    image = ax.imshow(data, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(rows)), rows, fontsize=6)
    ax.set_xticks(range(len(report["timestep_groups"])), [f"t {a}-{b}" for a, b in report["timestep_groups"]], fontsize=7)
    fig.colorbar(image, ax=ax, label="SQNR (dB)")
    ax.set_title("SQNR against the float model")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
