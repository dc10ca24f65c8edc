"""FID through the integer simulator vs through the quantized model it simulates, same seeds.

    python experiments/intsim_fid.py [--samples 500] [--out experiments/results/intsim]

For each (model, plan): ``hwsim quantize`` (min-max) into out/quantized/, then DDIM-50 samples
from seed 0 on ``--backend torch`` (the hardware-exact net in float64) and ``--backend intsim``,
and the classifier-FID of each. Rows are written as they finish and skipped when the script is
rerun; sampling resumes by batch (out/resume/). The acceptance is that the images are identical,
hence every metric on them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hwsim.evaluate import generate, score, set_threads
from hwsim.export.pipeline import export_model
from hwsim.modeldir import load_spec
from hwsim.provenance import provenance
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.plan import load_plan
from hwsim.quant.qmodel import is_quantized, quantize_dir, save_quantized

ROOT = Path(__file__).resolve().parent.parent
RUNS = [("unet-fashion", "w8a8"), ("unet-fashion", "w4a8"), ("dit-fashion", "w8a8"), ("dit-fashion", "w4a8")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/intsim")
    parser.add_argument("--work", type=Path, default=ROOT / "out/intsim_fid", help="quantized models and resume state")
    parser.add_argument("--runs", nargs="*", default=[f"{m}-{p}" for m, p in RUNS], help="MODEL-PLAN pairs to run")
    args = parser.parse_args()
    runs = [tuple(r.rsplit("-", 1)) for r in args.runs]
    set_threads(None)
    result_path = args.out / "fid_equality.json"
    report = json.loads(result_path.read_text()) if result_path.is_file() else {"rows": []}
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("out", "work", "runs")}
    if report.get("config", config) != config:
        raise SystemExit(f"{result_path} was made with {report['config']}, not {config}; move it away first")
    report["config"] = config
    done = {(r["model"], r["plan"]) for r in report["rows"]}
    for model, plan in runs:
        if (model, plan) in done:
            continue
        qdir = args.work / "quantized" / f"{model}-{plan}"
        if not is_quantized(qdir):
            q = quantize_dir(ROOT / "models" / model, load_plan(ROOT / f"experiments/plans/{plan}.yaml"), CalibrationConfig())
            save_quantized(q, qdir)
            export_model(qdir, None, qdir, check_samples=2, check_steps=args.steps)
        row = {"model": model, "plan": plan, "samples": args.samples}
        images = {}
        for backend in ("torch", "intsim"):
            started = time.time()
            images[backend] = generate(qdir, args.samples, args.steps, "ddim", args.seed, backend, progress=False,
                                       resume_dir=args.work / "resume" / f"{model}-{plan}-{backend}")
            row[f"{backend}_seconds"] = round(time.time() - started, 1)
            fid = score(images[backend], load_spec(qdir).dataset, "classifier", seed=args.seed)["fid"]
            row[f"fid_{backend}"], row[f"fid_{backend}_ci"] = fid["fid"], [fid["ci_low"], fid["ci_high"]]
        differ = np.any(images["torch"] != images["intsim"], axis=(1, 2))
        row["images_differing"] = int(differ.sum())
        row["fid_equal"] = row["fid_torch"] == row["fid_intsim"]
        report["rows"].append(row)
        report["provenance"] = provenance()
        args.out.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
