"""``hwsim export``: a quantized model directory (or a float one + a plan, calibrated min-max on
the fly) -> its hardware-exact net -> the integer graph, checked bit-exact along a trajectory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from hwsim import config as cfgio
from hwsim.diffusion.samplers import initial_noise, make_scheduler
from hwsim.export.intgraph import to_integer_graph
from hwsim.intsim.executor import Simulator
from hwsim.modeldir import LoadedModel
from hwsim.provenance import provenance
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.qmodel import QuantizedModel, is_quantized, load_quantized, quantize_dir

GRAPH_FILE = "integer.onnx"


def resolve_quantized(model_dir: str | Path, plan: PrecisionPlan | None,
                      calib: CalibrationConfig = CalibrationConfig()) -> QuantizedModel:
    """A quantized model directory as it is, or a float one quantized by ``plan`` (min-max)."""
    if is_quantized(model_dir):
        if plan is not None:
            raise ValueError(f"{model_dir} is already quantized (its plan is in quant.json); drop --plan")
        return load_quantized(model_dir)
    if plan is None:
        raise ValueError(f"{model_dir} is a float model: give --plan, or quantize it first with 'hwsim quantize'")
    return quantize_dir(model_dir, plan, calib)


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


def export_model(model_dir: str | Path, plan: PrecisionPlan | None, out_dir: str | Path,
                 calib: CalibrationConfig = CalibrationConfig(), check_samples: int = 4, check_steps: int = 50,
                 check_seed: int = 0) -> Path:
    """Write ``out_dir/integer.onnx`` and ``out_dir/export.json`` (plan, calibration, and the
    bit-exactness check against the quantized net at every timestep of a DDIM trajectory)."""
    started = time.time()
    quantized = resolve_quantized(model_dir, plan, calib)
    qnet = quantized.net()
    out = Path(out_dir)
    graph = to_integer_graph(qnet, quantized.example_input(), out / GRAPH_FILE)
    sim = Simulator(graph)
    checks = check_trajectory(qnet, sim, quantized.model, check_samples, check_steps, check_seed)
    report = {
        "model": str(model_dir), "plan": cfgio.to_dict(quantized.plan),
        "quantization": {k: v for k, v in quantized.meta.items() if k not in ("plan", "provenance")},
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
