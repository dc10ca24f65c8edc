"""What group-wise weights cost in hardware, per plan of the PTQ table.

GroupQuantLayer (hwsim.quant.modules) carries a coarser group's b-bit integers shifted left to the
row's finest scale, so the integer graph holds wider integers. The mapping finds each layer's
group-shifted form (hwsim.dataflow.mapping.group_pattern: q bits and a shift per group, rtl/mvau's
WGROUP): the multipliers take q and the memory q plus the shifts. This script reports

- per plan, the integer graph's weight widths and what the MVAUs store and multiply of them;
- the cost model's report of each model at one folding target, for the per-channel W4A8 plan, the
  group-wise plan on group-shifted MVAUs, and the same graph with its weights taken as the wide
  integers (the MVAUs without group shifts: what the hardware paid before rtl/mvau had WGROUP).

    python experiments/group_weight_widths.py   # about 10 minutes; writes
                                                # experiments/results/ptq_table/group_weight_widths.{json,md}
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

from hwsim.dataflow.cost import CostConfig, cost_report
from hwsim.dataflow.mapping import group_pattern, map_integer_graph, mvau_rows
from hwsim.dataflow.nodes.finn_types import group_attrs
from hwsim.evaluate import set_threads
from hwsim.export.pipeline import export_model
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant import modules as hw
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.plan import load_plan
from hwsim.quant.qmodel import quantize_dir
from hwsim.rtlgen.memfiles import signed_bits

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments/results/ptq_table"
WORK = ROOT / "out/group_weights"
PLANS = [("unet-fashion", "w4a8f8z-g16-fl8"), ("unet-fashion", "w4a8f8z-g8-fl8"), ("dit-fashion", "w4a8-g32"),
         ("dit-fashion", "w4a8-g16"), ("dit-fashion", "w4a8-g8")]
# (model, per-channel plan, group-wise plan) priced side by side; the U-Net's per-channel counterpart of
# its G8 row is the clipped per-channel plan the PTQ table compares it with
COSTED = [("dit-fashion", "w4a8", "w4a8-g8"), ("unet-fashion", "w4a8f8z-wclip-fl8", "w4a8f8z-g8-fl8")]
CALIB = dict(samples=4, steps=10, seed=1234)  # the weights' integers do not depend on the activation ranges
COST = CostConfig(device="ecp5-85f", target="1000000")  # 10^6 cycles per step: both models fold to it


def widths(model_name: str, plan_name: str) -> dict:
    model = load_model(ROOT / "models" / model_name)
    q = quantize_dir(model.path, load_plan(ROOT / f"experiments/plans/{plan_name}.yaml"), CalibrationConfig(**CALIB), [])
    weights_by_width: collections.Counter = collections.Counter()
    stored = multiplied = 0.0
    for m in q.net().modules():
        if isinstance(m, hw.GroupQuantLayer):
            w_int = m.w_int.numpy().astype(np.int64)
            width = signed_bits(w_int)  # per layer, as the integer graph types it
            weights_by_width[width] += w_int.size
            form = group_pattern(mvau_rows(w_int), width, w_int.shape[1])
            g, q_bits, shift_bits = ((form["weightGroupSize"], form["groupWeightBits"], form["groupShiftBits"])
                                     if form else (1, width, 0))
            stored += w_int.size * (q_bits + shift_bits / g)
            multiplied += w_int.size * q_bits
    total = sum(weights_by_width.values())
    return {"model": model_name, "plan": plan_name, "weights_by_width": dict(sorted(weights_by_width.items())),
            "mean_width": sum(w * n for w, n in weights_by_width.items()) / total,
            "mvau_stored_bits": stored / total, "mvau_multiplier_bits": multiplied / total}


def cost_row(model_name: str, plan_name: str, variant: str) -> dict:
    """The cost report's totals for one plan's integer graph; ``variant`` "wide" strips the group shifts."""
    out = WORK / f"{model_name}-{plan_name}"
    graph_path = out / "integer.onnx"
    if not graph_path.is_file():
        export_model(ROOT / "models" / model_name, load_plan(ROOT / f"experiments/plans/{plan_name}.yaml"), out,
                     CalibrationConfig(**CALIB), check_samples=1, check_steps=4)
    graph = map_integer_graph(graph_path, 50)
    mvaus = [n for n in graph.nodes if n.op_type == "MVAU" and not n.dynamic()]
    grouped = sum(bool(n.group_shift()) for n in mvaus)
    if variant == "wide":
        for n in mvaus:
            for key in group_attrs(1, 1, 1):
                n.attrs.pop(key, None)
    r = cost_report(graph, COST)
    return {"model": model_name, "plan": plan_name, "variant": variant, "grouped_mvaus": grouped if variant != "wide" else 0,
            "mvaus": len(mvaus), "ii": r["cycles_per_step"]["ii"], "resources": r["resources"],
            "weight_kbit": r["onchip_bits"]["weights"] / 1e3, "asic_uj_per_image": r["energy_per_image_uj"]["asic45nm"],
            "fpga_mj_per_image": r["energy_per_image_uj"]["fpga"] / 1e3, "fits": r["fits"]}


def table(costs: list[dict]) -> str:
    lines = ["| model | plan | MVAUs | II [cycles/step] | LUT | FF | MULT18 | DP16KD | weights [kbit] | "
             "ASIC 45 nm uJ/image | FPGA mJ/image |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in costs:
        res = c["resources"]
        kind = {"per-channel": "per-channel", "grouped": "group-shifted", "wide": "wide integers"}[c["variant"]]
        lines.append(f"| {c['model']} | {c['plan']} | {kind} ({c['grouped_mvaus']} of {c['mvaus']} grouped) | {c['ii']:,} | "
                     f"{res['lut']:,.0f} | {res['ff']:,.0f} | {res['mult']:,.0f} | {res['bram']:,.0f} | {c['weight_kbit']:,.1f} | "
                     f"{c['asic_uj_per_image']:,.0f} | {c['fpga_mj_per_image']:,.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    set_threads(1)
    rows = []
    for model_name, plan_name in PLANS:
        rows.append(widths(model_name, plan_name))
        print(json.dumps(rows[-1]), flush=True)
    costs = []
    for model_name, channel_plan, group_plan in COSTED:
        for plan, variant in ((channel_plan, "per-channel"), (group_plan, "grouped"), (group_plan, "wide")):
            costs.append(cost_row(model_name, plan, variant))
            print(json.dumps(costs[-1]), flush=True)
    config = {"calibration": CALIB, "cost": COST.__dict__}
    (OUT / "group_weight_widths.json").write_text(json.dumps({"config": config, "rows": rows, "costs": costs,
                                                              "provenance": provenance()}, indent=2) + "\n")
    (OUT / "group_weight_widths.md").write_text(
        "# Group-wise weights in hardware\n\n    python experiments/group_weight_widths.py\n\n"
        f"Cost model at {COST.device}, {COST.target} cycles per step (rows from `group_weight_widths.json`).\n\n"
        + table(costs))


if __name__ == "__main__":
    main()
