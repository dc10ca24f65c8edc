"""Width of the integers that group-wise weights take in the integer graph (hwsim.quant.modules.
GroupQuantLayer stores a coarser group's b-bit integers shifted left to the row's finest scale), per
plan of the PTQ table, and what the MVAU stores of them: the mapping finds each layer's group-shifted
form (hwsim.dataflow.mapping.group_pattern: q bits and a shift per group, rtl/mvau's WGROUP), so the
multipliers take q and the memory q plus the shifts.

    python experiments/group_weight_widths.py   # writes experiments/results/ptq_table/group_weight_widths.json
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

from hwsim.dataflow.mapping import group_pattern, mvau_rows
from hwsim.evaluate import set_threads
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant import modules as hw
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.plan import load_plan
from hwsim.quant.qmodel import quantize_dir
from hwsim.rtlgen.memfiles import signed_bits

ROOT = Path(__file__).resolve().parent.parent
PLANS = [("unet-fashion", "w4a8f8z-g16-fl8"), ("unet-fashion", "w4a8f8z-g8-fl8"), ("dit-fashion", "w4a8-g32"),
         ("dit-fashion", "w4a8-g16"), ("dit-fashion", "w4a8-g8")]
CALIB = dict(samples=4, steps=10, seed=1234)  # the weights' integers do not depend on the activation ranges


def main() -> None:
    set_threads(1)
    rows = []
    for model_name, plan_name in PLANS:
        model = load_model(ROOT / "models" / model_name)
        q = quantize_dir(model.path, load_plan(ROOT / f"experiments/plans/{plan_name}.yaml"), CalibrationConfig(**CALIB), [])
        weights_by_width: collections.Counter = collections.Counter()
        stored = multiplied = 0.0
        for m in q.net().modules():
            if isinstance(m, hw.GroupQuantLayer):
                w_int = m.w_int.numpy().astype(np.int64)
                width = signed_bits(w_int)  # per layer, as the integer graph types it
                weights_by_width[width] += w_int.size
                rows_ = mvau_rows(w_int)
                form = group_pattern(rows_, width, w_int.shape[1])
                g, q_bits, shift_bits = ((form["weightGroupSize"], form["groupWeightBits"], form["groupShiftBits"])
                                         if form else (1, width, 0))
                stored += w_int.size * (q_bits + shift_bits / g)
                multiplied += w_int.size * q_bits
        total = sum(weights_by_width.values())
        rows.append({"model": model_name, "plan": plan_name, "weights_by_width": dict(sorted(weights_by_width.items())),
                     "mean_width": sum(w * n for w, n in weights_by_width.items()) / total,
                     "mvau_stored_bits": stored / total, "mvau_multiplier_bits": multiplied / total})
        print(json.dumps(rows[-1]), flush=True)
    out = ROOT / "experiments/results/ptq_table/group_weight_widths.json"
    out.write_text(json.dumps({"config": {"calibration": CALIB}, "rows": rows, "provenance": provenance()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
