"""Output MSE against the float model for every calibration choice and PTQ method, next to naive
min-max: the cheap screen that precedes the FID table (and the figure of merit of
tests/quant/test_methods.py), on fixed inputs (8 DDIM trajectories of the float model, seed 0,
every 5th of 50 steps).

    python experiments/method_mse.py [--out experiments/results/ptq_table/method_mse.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from hwsim.evaluate import set_threads
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.diagnose import fixed_inputs, output_mse
from hwsim.quant.methods.ptqd import CorrectedDenoiser
from hwsim.quant.plan import Override, PrecisionPlan
from hwsim.quant.qmodel import quantize_dir
from hwsim.quant.quantize import prepared

ROOT = Path(__file__).resolve().parent.parent
CALIB = dict(samples=16, steps=50, seed=1234)
VARIANTS = {  # name: (calibration overrides, methods, plan granularity)
    "naive": ({}, [], "per_tensor"),
    "per-channel": ({}, [], "per_channel"),
    "timesteps-uniform": ({"timesteps": "uniform"}, [], "per_tensor"),
    "timesteps-normal": ({"timesteps": "normal"}, [], "per_tensor"),
    "observer-percentile": ({"observer": "percentile"}, [], "per_tensor"),
    "observer-mse": ({"observer": "mse"}, [], "per_tensor"),
    "split-shortcut": ({}, ["split-shortcut"], "per_tensor"),
    "adaround": ({}, ["adaround"], "per_tensor"),
    "brecq": ({}, ["brecq"], "per_tensor"),
    "ptqd": ({}, ["ptqd"], "per_tensor"),
    "smoothquant": ({}, ["smoothquant"], "per_tensor"),
    "per-group-32": ({}, [], "per_group"),
}
MODELS = {"unet-digits": ["smoothquant", "per-group-32"], "dit-fashion": ["split-shortcut"]}  # variants that do not apply


@torch.no_grad()
def corrected_mse(quantized, float_net, inputs) -> float:
    """Output MSE after the host-side PTQD correction."""
    qnet, reference = quantized.net(), prepared(float_net)
    denoiser = CorrectedDenoiser(lambda x, t: qnet(x.double(), t), quantized.meta["ptqd"])
    return sum(float(((denoiser(x, t) - reference(x.double(), t)) ** 2).mean()) for x, t in inputs) / len(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/ptq_table/method_mse.json")
    args = parser.parse_args()
    set_threads(None)
    rows = []
    for name, skip in MODELS.items():
        model = load_model(ROOT / "models" / name)
        inputs = fixed_inputs(model, samples=8)
        for w, a in ((8, 8), (4, 8), (4, 4)):
            for variant, (calib_changes, methods, granularity) in VARIANTS.items():
                if variant in skip:
                    continue
                plan = PrecisionPlan.uniform(w, a, weight_granularity=granularity)
                if granularity == "per_group" and name.startswith("dit"):
                    plan = dataclasses.replace(plan, first=Override(weight_granularity="per_channel"))
                started = time.time()
                q = quantize_dir(model.path, plan, CalibrationConfig(**CALIB, **calib_changes), methods)
                mse = corrected_mse(q, model.net, inputs) if "ptqd" in methods else output_mse(q.net(), model.net, inputs)
                rows.append({"model": name, "w_bits": w, "a_bits": a, "variant": variant, "output_mse": mse,
                             "seconds": round(time.time() - started, 1)})
                print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        naive = next(r["output_mse"] for r in rows if (r["model"], r["w_bits"], r["a_bits"], r["variant"]) ==
                     (row["model"], row["w_bits"], row["a_bits"], "naive"))
        row["vs_naive"] = row["output_mse"] / naive
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {"calibration": CALIB, "inputs": "8 trajectories, seed 0, every 5th step"},
                                    "rows": rows, "provenance": provenance()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
