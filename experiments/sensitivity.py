"""Per-layer sensitivity on unet-digits and the mixed-precision plans derived from it (issue 8).

1. Base plan W8A8 (per-channel power-of-two weights, naive min-max calibration). Every quantized
   Conv/Linear layer is lowered alone, W8->W4 and A8->A4 (``hwsim.sweep.sensitivity.layer_sensitivity``):
   output MSE against the float net on fixed inputs, and the whole net's cost (energy per image,
   cycles) at the fastest folding that fits the ECP5-85F, for 20 DDIM steps per image.
2. Budget = the output-MSE increase of uniform W4A8 over W8A8. Two greedy mixed plans
   (``fit_mixed_plan``: lowered by MSE increase per asic45nm microjoule saved, then measured, and
   the greedy budget shrunk until the measured increase is within the budget): one choosing from
   W4 and A4 per layer, one from W4 only, and one from W4 only within a quarter of the budget.
3. W8A8, W4A8 and the mixed plans through the sweep machinery (``hwsim.sweep.run_sweep``: quantize,
   export checked bit-exact, sample through the integer simulator, classifier-FID with its
   bootstrap interval, cost), same initial noise for all (seed 0); then the FID differences with a
   paired bootstrap (the same resampled indices for every plan).

    nice -n 10 python experiments/sensitivity.py        # resumable: rows and sweep points are kept

Writes ``experiments/results/sensitivity/``: ``rows.json`` (the sensitivity table),
``mixed_plan*.yaml``, ``fid_sweep.yaml`` (the sweep it ran),
``results.json`` (everything, with provenance), ``table.md`` and ``sensitivity.png``. The sweep's
work directory (quantized models, samples) goes to ``out/sensitivity-sweep/``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from hwsim import config as cfgio
from hwsim.dataflow.cost import CostConfig
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.diagnose import fixed_inputs
from hwsim.quant.plan import PrecisionPlan
from hwsim.sweep.sensitivity import fit_mixed_plan, layer_sensitivity, measure_plan, output_power
from hwsim.sweep.store import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
MODEL = "unet-digits"
STEPS = 20  # DDIM steps: of the samples and of the cost per image
SEED = 0
CALIB = dict(samples=16, steps=STEPS, seed=1234)  # min-max over 16 float trajectories of 20 steps
INPUTS = dict(samples=8, steps=STEPS, seed=0, stride=2)  # fixed inputs of the MSE: 10 batches of 8
CHANGES = [{"weight_bits": 4}, {"act_bits": 4}]
ENERGY = "asic45nm"  # what the greedy counts savings in (hwsim.sweep.sensitivity.mixed_plan says why)
COST = CostConfig(device="ecp5-85f", target="device")
FID = {"extractor": "classifier", "bootstrap": 200}
PAIRED_BOOTSTRAP = 200
PAIRS = [("mixed", "W4A8"), ("mixed-w4", "W4A8"), ("W4A8", "W8A8"), ("mixed", "W8A8"), ("mixed-w4", "W8A8"),
         ("mixed", "mixed-w4"), ("mixed-w4-tight", "W8A8"), ("mixed-w4-tight", "W4A8")]
TIGHT = 0.25  # the third mixed plan's budget, as a share of uniform W4A8's MSE increase


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def sweep_yaml(path: Path, plans: dict[str, str], samples: int) -> Path:
    doc = {
        "name": "sensitivity-fid",
        "description": f"{MODEL}: W8A8, W4A8 and the mixed plans of experiments/sensitivity.py, paired (seed {SEED})",
        "models": [MODEL], "methods": ["naive"], "precisions": list(plans.values()), "sparsity": ["none"],
        "devices": [COST.device], "targets": [COST.target], "samples": samples, "steps": STEPS, "seeds": [SEED],
        "weight_granularity": "per_channel", "calibration": CALIB, "fid": FID,
        "export_check": {"samples": 1, "steps": STEPS},
    }
    atomic_write_text(path, "# written by experiments/sensitivity.py\n" + yaml.safe_dump(doc, sort_keys=False))
    return path


def paired_fid(points: dict, work: Path, n_boot: int, seed: int) -> dict:
    """Paired FID differences of PAIRS between the plans' sweep points (hwsim.sweep.analysis.paired_fid)."""
    from hwsim.sweep.analysis import paired_fid as paired

    pairs = [(a, b) for a, b in PAIRS if a in points and b in points]
    return paired(work, {name: p.config for name, p in points.items()}, pairs, n_boot, seed, FID["extractor"])


def plot(results: dict, rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig, axes = plt.subplots(1, 4, figsize=(21, 5.4), gridspec_kw={"width_ratios": [2.2, 1, 1, 1]})
    ax = axes[0]
    width = 0.4
    for i, (key, label, color) in enumerate((("weight_bits=4", "W8->W4", "tab:blue"), ("act_bits=4", "A8->A4", "tab:orange"))):
        vals = {r["layer"]: r["delta_mse"] for r in rows if r["change_key"] == key}
        ys = [max(vals.get(layer, np.nan), 1e-7) for layer in layers]
        ax.bar(np.arange(len(layers)) + (i - 0.5) * width, ys, width, label=label, color=color)
    ax.axhline(results["budget"], color="k", ls="--", lw=1, label="budget (uniform W4A8 - W8A8)")
    mixed = results["plans"]["mixed"]["overrides"]
    ax.set_xticks(range(len(layers)), [("* " if layer in mixed else "") + layer for layer in layers], rotation=75,
                  fontsize=7, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("output-MSE increase over W8A8 (one layer lowered)")
    ax.set_title(f"{MODEL}: per-layer sensitivity (* = lowered in the W4/A4 mixed plan; <=0 shown at 1e-7)", fontsize=9)
    ax.legend(fontsize=8)
    colors = {"W8A8": "tab:gray", "W4A8": "tab:red", "mixed": "tab:green", "mixed-w4": "tab:purple",
              "mixed-w4-tight": "tab:brown"}
    panels = ((axes[1], "mse", ENERGY, "output MSE vs float", "MSE (x: the greedy's prediction)"),
              (axes[2], "fid", ENERGY, "classifier-FID (95% CI)",
               f"FID, {results['config']['samples']} samples, paired noise"),
              (axes[3], "fid", "fpga", "classifier-FID (95% CI)", "FID vs FPGA energy (fastest folding that fits)"))
    for ax, metric, energy, label, title in panels:
        for name, p in results["plans"].items():
            x = p["energy_uj_per_image"][energy]
            if metric == "fid":
                ax.errorbar(x, p["fid"], yerr=[[p["fid"] - p["fid_ci"][0]], [p["fid_ci"][1] - p["fid"]]], fmt="o",
                            color=colors[name], capsize=3, label=name)
            else:
                ax.plot(x, p["mse"], "o", color=colors[name], label=name)
                if "predicted_mse" in p:
                    ax.plot(x, p["predicted_mse"], "x", color=colors[name])
        ax.set_xlabel(f"energy per image, {energy} model (uJ, {STEPS} steps)")
        ax.set_ylabel(label)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def table(results: dict) -> str:
    lines = ["| plan | layers lowered | output MSE | SQNR dB | energy asic45nm uJ | energy FPGA uJ | cycles/image | "
             "latency ms | FID [95% CI] | data floor |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in results["plans"].items():
        lines.append(f"| {name} | {p['lowered']} | {p['mse']:.4g} | {p['sqnr_db']:.2f} | "
                     f"{p['energy_uj_per_image']['asic45nm']:.2f} | {p['energy_uj_per_image']['fpga']:.0f} | "
                     f"{p['cycles_per_image']:,} | {p['latency_s_per_image'] * 1e3:.1f} | "
                     f"{p['fid']:.3f} [{p['fid_ci'][0]:.3f}, {p['fid_ci'][1]:.3f}] | {p['fid_floor']:.3f} |")
    lines += ["", "| paired FID difference | diff | 95% CI |", "|---|---|---|"]
    for k, d in results["paired_fid"]["differences"].items():
        lines.append(f"| {k} | {d['diff']:+.3f} | [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/sensitivity")
    parser.add_argument("--work", type=Path, default=ROOT / "out/sensitivity-sweep")
    parser.add_argument("--samples", type=int, default=1500, help="FID samples per plan (digits has 1,500 training images for the data floor)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, cpu0 = time.time(), cpu_seconds()
    cpu = {}
    out = args.out
    model = load_model(ROOT / "models" / MODEL)
    calib = CalibrationConfig(**CALIB)
    base_plan = PrecisionPlan.uniform(8, 8, weight_granularity="per_channel")
    inputs = fixed_inputs(model, **INPUTS)
    signal = output_power(model.net, inputs)

    # 1. the sensitivity table (resumable)
    t = cpu_seconds()
    rows = layer_sensitivity(model, base_plan, CHANGES, inputs, calib=calib, cost=COST, steps=STEPS,
                             out=out / "rows.json", log=print)
    cpu["sensitivity_this_run"] = cpu_seconds() - t
    stored = json.loads((out / "rows.json").read_text())
    base = stored["base"]
    cpu["sensitivity_total"] = stored["cpu_seconds"]

    # 2. budget and mixed plans, verified by measurement
    t = cpu_seconds()

    def measure(plan):
        return measure_plan(model, plan, inputs, calib=calib, cost=COST, steps=STEPS, signal=signal)

    uniform4 = measure(PrecisionPlan.uniform(4, 8, weight_granularity="per_channel"))
    budget = uniform4["mse"] - base["mse"]
    print(f"budget: W4A8 MSE {uniform4['mse']:.5g} - W8A8 {base['mse']:.5g} = {budget:.5g}", flush=True)
    mixed = {}
    w4_rows = [r for r in rows if r["override"] == {"weight_bits": 4}]
    for name, candidates, share, file in (("mixed", rows, 1.0, "mixed_plan.yaml"),
                                          ("mixed-w4", w4_rows, 1.0, "mixed_plan_w4.yaml"),
                                          ("mixed-w4-tight", w4_rows, TIGHT, "mixed_plan_w4_tight.yaml")):
        plan, measured, rounds = fit_mixed_plan(candidates, base_plan, budget * share, measure, base["mse"],
                                                energy=ENERGY, out=out / file, model=model)
        mixed[name] = (plan, measured, rounds, file, budget * share)
        print(f"{name}: {len(plan.chosen)} changes, rounds {rounds}", flush=True)
    cpu["mixed_plans"] = cpu_seconds() - t

    # 3. FID and cost of the four plans through the sweep (resumable), then paired differences
    t = cpu_seconds()
    from hwsim.sweep import load_experiment, run_sweep

    labels = {"W8A8": "W8A8", "W4A8": "W4A8", **{name: v[3] for name, v in mixed.items()}}
    exp_path = sweep_yaml(out / "fid_sweep.yaml", labels, args.samples)
    sweep_rows = run_sweep(exp_path, args.work, workers=0, threads=1, progress=False)
    points = {name: p for name, p in zip(labels, load_experiment(exp_path).points)}
    by_key = {r["key"]: r for r in sweep_rows}
    cpu["fid_sweep"] = cpu_seconds() - t
    t = cpu_seconds()
    paired = paired_fid(points, args.work / "work", PAIRED_BOOTSTRAP, SEED)
    cpu["paired_bootstrap"] = cpu_seconds() - t

    measured = {"W8A8": base, "W4A8": uniform4, **{k: v[1] for k, v in mixed.items()}}
    plans = {}
    for name in labels:
        m, row = measured[name], by_key[points[name].key]
        entry = {
            "precision": labels[name], "lowered": 0 if name == "W8A8" else len(m["quantized_layers"]) if name == "W4A8"
            else len(mixed[name][0].overrides),
            "mse": m["mse"], "sqnr_db": m["sqnr_db"], "delta_mse": m["mse"] - base["mse"],
            "energy_uj_per_image": row["energy_uj_per_image"], "cycles_per_image": row["cycles_per_image"],
            "cycles_per_step": row["cycles_per_step"], "latency_s_per_image": row["latency_s_per_image"],
            "fits": row["fits"], "utilization": row["utilization"], "macs_per_step": row["macs_per_step"],
            "bitops_per_step": row["bitops_per_step"],
            "fid": row["fid"], "fid_ci": row["fid_ci"], "fid_floor": row["fid_floor"],
            "fid_precision": row["fid_precision"], "fid_recall": row["fid_recall"], "fid_samples": row["fid_samples"],
            "sweep_key": row["key"],
            # the cheap cost path of the sensitivity table must price the plan as the sweep does
            "cost_matches_sweep": m["energy_uj_per_image"] == row["energy_uj_per_image"]
            and m["cycles_per_image"] == row["cycles_per_image"],
        }
        if name in mixed:
            plan, _, rounds, file, plan_budget = mixed[name]
            entry.update({"plan_file": file, "budget": plan_budget, "predicted_delta_mse": plan.predicted_delta_mse,
                          "predicted_mse": base["mse"] + plan.predicted_delta_mse,
                          "predicted_energy_saved_uj": plan.predicted_energy_saved_uj,
                          "within_budget": rounds[-1]["within_budget"], "greedy_rounds": rounds,
                          "overrides": plan.overrides, "kept_at_base": [n for n in base["quantized_layers"]
                                                                        if n not in plan.overrides]})
        plans[name] = entry

    measured_rows = [r for r in rows if r["status"] == "measured"]
    results = {
        "experiment": "per-layer sensitivity and mixed-precision plans (issue 8)",
        "config": {"model": MODEL, "model_sha256": stored["setup"]["model_sha256"],
                   "base_plan": cfgio.to_dict(base_plan), "changes": CHANGES, "calibration": CALIB,
                   "mse_inputs": {**INPUTS, "batches": len(inputs)}, "cost": cfgio.to_dict(COST), "steps": STEPS,
                   "samples": args.samples, "seed": SEED, "fid": FID, "greedy_energy": ENERGY,
                   "sweep": str(exp_path.relative_to(ROOT) if exp_path.is_relative_to(ROOT) else exp_path)},
        "seeds": {"noise": SEED, "bootstrap": SEED, "calibration": CALIB["seed"], "mse_inputs": INPUTS["seed"]},
        "budget": budget,
        "base": {k: base[k] for k in ("mse", "sqnr_db", "energy_uj_per_image", "cycles_per_image", "macs_per_step")},
        "plans": plans,
        "paired_fid": paired,
        "sensitivity": {
            "rows": len(rows), "measured": len(measured_rows),
            "sum_w4_delta_mse": sum(r["delta_mse"] for r in measured_rows if r["change_key"] == "weight_bits=4"),
            "sum_w4_energy_saved_uj": {k: sum(r["energy_saved_uj"][k] for r in measured_rows
                                              if r["change_key"] == "weight_bits=4") for k in ("asic45nm", "fpga")},
            "most_sensitive": [{"layer": r["layer"], "change": r["change"], "delta_mse": r["delta_mse"],
                                "macs_share": r["macs_share"]}
                               for r in sorted(measured_rows, key=lambda r: -r["delta_mse"])[:8]],
        },
        "cpu_seconds": {**{k: round(v, 1) for k, v in cpu.items()}, "this_run": round(cpu_seconds() - cpu0, 1),
                        # all runs together: the rows file's CPU time, the sweep points' own (one thread each) and
                        # this run's mixed plans and bootstrap
                        "all_runs_approx": round(cpu["sensitivity_total"] + cpu["mixed_plans"] + cpu["paired_bootstrap"]
                                                 + sum(r["seconds"]["total"] for r in sweep_rows), 1)},
        "wall_seconds_this_run": round(time.time() - started, 1),
        "provenance": provenance(),
    }
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "table.md", table(results))
    plot(results, rows, out / "sensitivity.png")
    print(table(results))


if __name__ == "__main__":
    main()
