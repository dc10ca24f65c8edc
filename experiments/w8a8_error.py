"""Where the W8A8 error of a hardware-exact net comes from: output MSE against the float model
of W8A8 and of variants that each remove one source, on fixed inputs (4 DDIM trajectories of the
float model, seed 0, every 10th of 50 steps), with the output SQNR per timestep quarter.

The PTQ table's W8A8 row on unet-fashion is far from its FP row; float fake-quant papers' W8A8
quantizes only the conv/linear inputs, while the integer path also quantizes every nonlinear
op's output (GroupNorm, SiLU table, softmax, attention matmuls). The variants separate these.

    python experiments/w8a8_error.py [--model unet-fashion] [--out experiments/results/ptq_table/w8a8_error.json]
    python experiments/w8a8_error.py --per-layer W8A8N12F8Z   # -> w8a8_layers.json

``--per-layer PRECISION``: which layer input carries the error of that plan: every Conv/Linear
input at 15 bits but one, at the plan's own width, one layer after the other.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from hwsim.evaluate import set_threads
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.diagnose import fixed_inputs, output_mse, sqnr_report
from hwsim.quant.plan import LayerPrecision, PrecisionPlan, Rule, compute_layers, in_timestep_table, parse_shorthand
from hwsim.quant.qmodel import quantize_dir
from hwsim.quant.quantize import quantize_layers_only

ROOT = Path(__file__).resolve().parent.parent
CALIB = CalibrationConfig(samples=16, steps=50, seed=1234)


def plan(w: int, a: int, **fields) -> PrecisionPlan:
    return dataclasses.replace(PrecisionPlan.uniform(w, a, weight_granularity="per_channel"), **fields)


VARIANTS = {  # name: (plan, what it changes against W8A8)
    "W8A8": (plan(8, 8), "the hardware-exact net, naive min-max (the PTQ table's row)"),
    "W16A8": (plan(16, 8), "weights exact: what is left is activation error"),
    "W8A16": (plan(8, 16), "all activations at 16 bits: what is left is weight error"),
    "W8A8N12": (plan(8, 8, nonlinear_bits=12), "nonlinear ops (GroupNorm, SiLU, softmax, attention) at 12 bits"),
    "W8A8T4": (plan(8, 8, timestep_groups=4), "activation ranges per timestep quarter (TDQ-style)"),
    "W8A8N12T4": (plan(8, 8, nonlinear_bits=12, timestep_groups=4), "both"),
    "W8A8N12F8": (dataclasses.replace(plan(8, 8, nonlinear_bits=12), default=LayerPrecision(
        8, 8, "per_channel", scale="float", mantissa_bits=8)), "12-bit nonlinear ops and float scales (8-bit mantissas) on every Conv/Linear"),
    "W8A8N12Z": (plan(8, 8, nonlinear_bits=12, default=LayerPrecision(8, 8, "per_channel", act_zero_point=True)),
                 "12-bit nonlinear ops and a zero point on every Conv/Linear input (asymmetric grid)"),
    "W8A8N12F8Z": (plan(8, 8, nonlinear_bits=12, default=LayerPrecision(8, 8, "per_channel", scale="float", mantissa_bits=8,
                                                                         act_zero_point=True)),
                   "12-bit nonlinear ops, float scales and zero points on every Conv/Linear"),
}


WIDE_BITS = 15  # the other layers' inputs in --per-layer (zero points allow at most 15)


def per_layer(model, inputs, precision: str) -> dict:
    """Output MSE with one layer input at ``precision``'s width and every other at WIDE_BITS."""
    plan = parse_shorthand(precision)
    bits = plan.default.act_bits
    wide = dataclasses.replace(plan, default=dataclasses.replace(plan.default, act_bits=WIDE_BITS))
    layers = [n for n in compute_layers(model.net) if not in_timestep_table(n)]
    rows = {"all at full width": output_mse(quantize_dir(model.path, plan, CALIB).net(), model.net, inputs),
            f"all at {WIDE_BITS} bits": output_mse(quantize_dir(model.path, wide, CALIB).net(), model.net, inputs)}
    for name in layers:
        q = quantize_dir(model.path, dataclasses.replace(wide, rules=(Rule(match=name, act_bits=bits),)), CALIB)
        rows[name] = output_mse(q.net(), model.net, inputs)
        print(name, f"{rows[name]:.3e}", flush=True)
    return {"precision": precision, "plan": plan.describe(), "wide_bits": WIDE_BITS, "output_mse": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet-fashion")
    parser.add_argument("--out", type=Path, default=None, help="default: w8a8_error.json (w8a8_layers.json with --per-layer)")
    parser.add_argument("--per-layer", metavar="PRECISION", help="e.g. W8A8N12F8Z: which layer input carries its error")
    args = parser.parse_args()
    set_threads(1)
    model = load_model(ROOT / "models" / args.model)
    inputs = fixed_inputs(model, samples=4, stride=10)
    results = ROOT / "experiments/results/ptq_table"
    if args.per_layer:
        out = args.out or results / "w8a8_layers.json"
        report = per_layer(model, inputs, args.per_layer)
        out.write_text(json.dumps({"model": args.model, "calibration": dataclasses.asdict(CALIB),
                                   "inputs": {"trajectories": 4, "seed": 0, "every": 10, "steps": 50},
                                   **report, "provenance": provenance()}, indent=2) + "\n")
        return
    args.out = args.out or results / "w8a8_error.json"
    T = model.spec.schedule.num_train_timesteps
    rows = []
    for name, (p, what) in VARIANTS.items():
        started = time.time()
        q = quantize_dir(model.path, p, CALIB)
        nets = {name: q.net()}
        if name == "W8A8":  # the same ranges as a Brevitas user's fake-quant net: layers only, the rest float
            nets["W8A8 layers only (Brevitas fake-quant)"] = quantize_layers_only(q.model.net, p, q.ranges).double()
        for label, net in nets.items():
            sqnr = sqnr_report(net, model.net, inputs, T, groups=4)["sqnr_db"]["output"]
            rows.append({"variant": label, "what": what if label == name else "conv/linear inputs and weights quantized, "
                         "GroupNorm, SiLU, softmax and attention in float (float fake-quant papers' W8A8)",
                         "plan": p.describe(), "output_mse": output_mse(net, model.net, inputs),
                         "output_sqnr_db_by_timestep_quarter": sqnr, "seconds": round(time.time() - started, 1)})
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["output_mse"]
    for r in rows:
        r["mse_vs_w8a8"] = r["output_mse"] / base
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "calibration": dataclasses.asdict(CALIB),
                                    "inputs": {"trajectories": 4, "seed": 0, "every": 10, "steps": 50},
                                    "rows": rows, "provenance": provenance()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
