"""Float scales vs the integer requantizer, measured on the zoo models' own accumulators.

    python experiments/float_scales.py [--out experiments/results/intsim/float_scales.json]

For each model and precision: min-max ranges from 32 DDIM trajectories of the float model
(seed 1234), per-tensor float scales (max |value| / (2^(b-1) - 1)), and every Conv/Linear
accumulator met along 2 further trajectories (seed 0, 50 steps) requantized to the layer's
output scale twice: Brevitas' float64 round(acc * ratio) and the integer m * 2^-n multiplier of
8, 16, 24 and 32 bits. See hwsim/quant/float_scales.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hwsim.evaluate import set_threads
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.calibrate import CalibrationConfig, calibration_inputs
from hwsim.quant.float_scales import measure
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.qmodel import calibrate
from hwsim.quant.quantize import prepared

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("unet-fashion", "dit-fashion")
PRECISIONS = ((8, 8), (4, 8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/intsim/float_scales.json")
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()
    set_threads(None)
    calib = CalibrationConfig()
    rows = []
    for name in MODELS:
        model = load_model(ROOT / "models" / name)
        ranges = calibrate(model, PrecisionPlan.uniform(8, 8), calib)  # min-max: the plan's widths do not matter
        inputs = calibration_inputs(model.net, model.noise_schedule(), model.spec.image_shape, args.samples, 50, seed=0)
        net = prepared(model.net)
        for w, a in PRECISIONS:
            report = measure(net, ranges, inputs, w, a)
            rows.append({"model": name, "w_bits": w, "a_bits": a, **report})
            print(name, f"W{w}A{a}", {k: (v["rate"], v["max_lsb"]) for k, v in report["overall"].items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {"calibration": vars(calib), "measure_samples": args.samples,
                                               "measure_seed": 0, "steps": 50},
                                    "rows": rows, "provenance": provenance()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
