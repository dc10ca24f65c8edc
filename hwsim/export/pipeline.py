"""``hwsim export``: float model directory + precision plan -> calibrated quantized net -> integer graph."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hwsim import config as cfgio
from hwsim.diffusion.samplers import initial_noise, make_scheduler
from hwsim.export.intgraph import to_integer_graph
from hwsim.intsim.executor import Simulator
from hwsim.modeldir import LoadedModel, load_model
from hwsim.provenance import provenance
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.quantize import calibration_inputs, quantize_net

GRAPH_FILE = "integer.onnx"


@dataclass(frozen=True)
class CalibrationConfig:
    samples: int = 32  # DDIM trajectories of the float model
    steps: int = 50  # DDIM steps per trajectory (every step's input is a calibration point)
    seed: int = 1234  # distinct from evaluation seeds, so calibration never sees the test noise


def quantize_model(model: LoadedModel, plan: PrecisionPlan, calib: CalibrationConfig):
    """(quantized net, calibration inputs) of a model directory's float net."""
    inputs = calibration_inputs(model.net, model.noise_schedule(), model.spec.image_shape, calib.samples, calib.steps, calib.seed)
    return quantize_net(model.net, plan, inputs, model.spec.schedule.num_train_timesteps), inputs


@torch.no_grad()
def check_trajectory(qnet, sim: Simulator, model: LoadedModel, samples: int, steps: int, seed: int) -> list[dict]:
    """Simulator vs quantized net at every timestep of one DDIM trajectory (driven by the net)."""
    scheduler = make_scheduler("ddim", model.noise_schedule())
    scheduler.set_timesteps(steps)
    x = initial_noise(samples, model.spec.image_shape, seed)
    checks = []
    for step in scheduler.timesteps:
        t = torch.full((samples,), step, dtype=torch.long)
        expect = qnet(x.double(), t).numpy()
        got = sim.run(x.numpy(), t.numpy())
        checks.append({"t": int(step), "equal": bool(np.array_equal(got, expect)),
                       "max_abs_diff": float(np.abs(got - expect).max())})
        x = scheduler.step(torch.from_numpy(expect).float(), step, x)
    return checks


def export_model(model_dir: str | Path, plan: PrecisionPlan, out_dir: str | Path,
                 calib: CalibrationConfig = CalibrationConfig(), check_samples: int = 4, check_steps: int = 50,
                 check_seed: int = 0) -> Path:
    """Write ``out_dir/integer.onnx`` and ``out_dir/export.json`` (plan, calibration, and the
    bit-exactness check against the quantized net at every timestep of a DDIM trajectory)."""
    started = time.time()
    model = load_model(model_dir)
    qnet, inputs = quantize_model(model, plan, calib)
    out = Path(out_dir)
    graph = to_integer_graph(qnet, inputs[0], out / GRAPH_FILE)
    sim = Simulator(graph)
    checks = check_trajectory(qnet, sim, model, check_samples, check_steps, check_seed)
    report = {
        "model": str(model_dir), "plan": cfgio.to_dict(plan), "calibration": cfgio.to_dict(calib),
        "graph": GRAPH_FILE, "nodes": len(sim.nodes),
        "check": {"samples": check_samples, "steps": check_steps, "seed": check_seed,
                  "all_equal": all(c["equal"] for c in checks)},
        "bit_exact_checks": checks,
        "seconds": round(time.time() - started, 1), "provenance": provenance(),
    }
    (out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    if not all(c["equal"] for c in checks):
        raise RuntimeError(f"{graph}: simulator differs from the quantized model: {checks}")
    return graph
