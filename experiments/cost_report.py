"""Cost reports of the zoo's denoisers (issue 5): each model at W8A8 and W4A8, folded to three
targets on the ECP5-85F (the fastest design that fits, 10^6 and 10^5 cycles per step) and to the
fastest that fits a Xilinx Zynq-7020, with FPGA toggle activity measured by the integer simulator
along real sampler trajectories.

    python experiments/cost_report.py            # writes experiments/results/cost/

Integer graphs: the bit-exact unet-fashion and dit-fashion exports of experiments/results/intsim
(naive min-max, per-tensor); unet-digits is exported here (same recipe) into out/cost/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hwsim.dataflow.cost import CostConfig, activity_from_stats, cost_report, plot_report
from hwsim.dataflow.mapping import map_integer_graph
from hwsim.diffusion.samplers import make_scheduler, sample
from hwsim.evaluate import set_threads
from hwsim.export.pipeline import export_model
from hwsim.intsim.denoiser import IntsimDenoiser
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.plan import PrecisionPlan

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments/results/cost"
STEPS = 50
ACTIVITY_SAMPLES, SEED = 4, 0
MODELS = ("unet-digits", "unet-fashion", "dit-fashion")
PRECISIONS = ("w8a8", "w4a8")
TARGETS = (("ecp5-85f", "device"), ("ecp5-85f", "1000000"), ("ecp5-85f", "100000"), ("xc7z020", "device"))


def integer_graph(model: str, precision: str, work: Path) -> Path:
    committed = ROOT / "experiments/results/intsim" / f"{model}-{precision}" / "integer.onnx"
    if committed.is_file():
        return committed
    out = work / f"{model}-{precision}"
    if not (out / "integer.onnx").is_file():
        w, a = (int(v) for v in precision[1:].split("a"))
        export_model(ROOT / "models" / model, PrecisionPlan.uniform(w, a), out, check_samples=2, check_steps=STEPS)
    return out / "integer.onnx"


def measured_activity(model: str, graph: Path) -> dict[str, dict]:
    """Per integer node: toggle statistics over ACTIVITY_SAMPLES images x STEPS DDIM steps."""
    loaded = load_model(ROOT / "models" / model)
    denoiser = IntsimDenoiser(graph)
    denoiser.simulator.enable_stats()
    sample(denoiser, make_scheduler("ddim", loaded.noise_schedule()), ACTIVITY_SAMPLES, loaded.spec.image_shape, STEPS,
           seed=SEED)
    return denoiser.simulator.stats()


def summary(rows: list[dict]) -> str:
    lines = ["| model | W/A | device | target | fits | II [cycles/step] | latency [cycles/step] | ms/image | "
             "FPGA mJ/image | ASIC 45 nm uJ/image | LUT | FF | MULT | BRAM | on-chip kbit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        res, e = r["resources"], r["energy_per_image_uj"]
        lines.append(f"| {r['model']} | {r['precision'].upper()} | {r['device']} | {r['config']['target']} | "
                     f"{'yes' if r['fits'] else 'no'} | {r['cycles_per_step']['ii']:,} | {r['cycles_per_step']['latency']:,} | "
                     f"{r['seconds_per_image'] * 1e3:.1f} | {e['fpga'] / 1e3:.2f} | {e['asic45nm']:.0f} | {res['lut']:,} | "
                     f"{res['ff']:,} | {res['mult']} | {res['bram']} | {r['onchip_bits']['total'] / 1e3:.0f} |")
    return "\n".join(lines) + "\n"


def fit_findings(out: Path) -> list[str]:
    """Which denoiser fits the ECP5-85F, at which precision and folding (from the reports)."""
    lines = []
    for model in MODELS:
        for precision in PRECISIONS:
            reports = {t: json.loads((out / f"{model}-{precision}-ecp5-85f-{t}.json").read_text())
                       for d, t in TARGETS if d == "ecp5-85f"}
            best = reports["device"]
            budget = best["budget"]
            if best["fits"]:
                lines.append(f"- **{model} {precision.upper()} fits** the ECP5-85F: fastest folding II "
                             f"{best['cycles_per_step']['ii']:,} cycles per step, latency {best['cycles_per_step']['latency']:,}, "
                             f"{best['seconds_per_image'] * 1e3:.1f} ms per 50-step image at 100 MHz, using "
                             f"{best['resources']['lut']:,} LUT, {best['resources']['mult']} MULT18, "
                             f"{best['resources']['bram']} of {budget['bram']} DP16KD with "
                             f"{best['onchip_bits']['buffers'] / 1e3:.0f} kbit of buffers and {best['onchip_bits']['fifos'] / 1e3:.0f} kbit of FIFOs counted.")
                continue
            # the folding whose scarcest resource is least over budget (not the fewest block RAMs: a
            # faster folding can save a few DP16KD by moving buffers into logic, at 10x the LUTs)
            least = min(reports.values(), key=lambda r: max(r["resources"][k] / budget[k] for k in budget))
            over = {k: f"{least['resources'][k]:,} of {budget[k]:,}" for k in budget if least["resources"][k] > budget[k]}
            off = least.get("offchip_weights") or {}
            lines.append(f"- **{model} {precision.upper()} does not fit** at any of the foldings tried: the least "
                         f"demanding needs {', '.join(f'{k} {v}' for k, v in over.items())} (on-chip: weights "
                         f"{least['onchip_bits']['weights'] / 1e3:.0f} kbit, buffers {least['onchip_bits']['buffers'] / 1e3:.0f} kbit, "
                         f"FIFOs {least['onchip_bits']['fifos'] / 1e3:.0f} kbit). With every weight streamed from DRAM it "
                         f"{'would fit' if off.get('fits') else 'still would not fit'}"
                         + (f", at {off['dram_gbit_per_s_at_step_latency']:.1f} Gbit/s of weight traffic." if off else "."))
    return lines


def write_readme(out: Path) -> None:
    rows = json.loads((out / "summary.json").read_text())["rows"]
    text = ["# Cost reports of the zoo (issue 5)", "",
            "    python experiments/cost_report.py    # about 10 minutes on 2 cores", "",
            "One JSON (cycles, FIFOs, on-chip bits, resources, energy, every node, config, provenance) and one",
            "PNG (per-node cycles, LUTs, block RAMs, energy) per model, precision, device and folding target.",
            "Integer graphs: naive min-max, per-tensor W8A8 and W4A8 (bit-exact with the quantized models).",
            "FPGA activity: toggle rates measured by the integer simulator over 4 images x 50 DDIM steps.",
            "How each number is computed, and which constants are assumptions: `docs/dataflow.md`.", "",
            "## Which denoiser fits an ECP5-85F", "", *fit_findings(out), "",
            "## All reports", "", summary(rows)]
    (out / "README.md").write_text("\n".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--work", type=Path, default=ROOT / "out/cost")
    parser.add_argument("--readme", action="store_true", help="only rebuild README.md from the reports")
    args = parser.parse_args()
    if args.readme:
        write_readme(args.out)
        return
    set_threads(None)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in MODELS:
        for precision in PRECISIONS:
            graph_path = integer_graph(model, precision, args.work)
            stats = measured_activity(model, graph_path)
            for device, target in TARGETS:
                graph = map_integer_graph(graph_path, STEPS)
                report = cost_report(graph, CostConfig(device=device, target=target), activity_from_stats(graph, stats))
                report.update(model=model, precision=precision,
                              activity={"samples": ACTIVITY_SAMPLES, "steps": STEPS, "seed": SEED, "sampler": "ddim"},
                              graph=str(graph_path.relative_to(ROOT)) if graph_path.is_relative_to(ROOT) else str(graph_path))
                name = f"{model}-{precision}-{device}-{target}"
                (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
                plot_report(report, args.out / f"{name}.png")
                rows.append({k: report[k] for k in ("model", "precision", "device", "config", "fits", "cycles_per_step",
                                                    "seconds_per_image", "energy_per_image_uj", "resources", "onchip_bits")})
                print(name, report["fits"], report["cycles_per_step"]["ii"], flush=True)
    (args.out / "summary.json").write_text(json.dumps({"rows": rows, "provenance": provenance()}, indent=2) + "\n")
    write_readme(args.out)


if __name__ == "__main__":
    main()
