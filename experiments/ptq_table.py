"""The PTQ table: FID of every (model, precision, sparsity, recipe) row of ptq_table.yaml,
measured on the hardware-exact model (the integer simulator), paired initial noise.

    python experiments/ptq_table.py [--config experiments/ptq_table.yaml] [--only ROW_ID ...]
    python experiments/ptq_table.py --report     # rebuild table.md and fid.png from results.json
    python experiments/ptq_table.py --fidelity   # add the FP comparisons below (and Inception-FID where a row
                                                 # asks for it) to finished rows that lack them

Besides FID against the data, every quantized row gets the FID of its samples against the FP
model's own samples from the same initial noise (``fid_to_fp``): the damage quantization does,
apart from how far the float model itself is from the data (the DiT's FP row is at 671); and the
gap FID(row) - FID(FP) against the data with a paired bootstrap interval (``fid_gap_to_fp``), which
says whether a gap is inside the sampling noise of 2,000 paired samples.

Resumable at two levels: a finished row is never recomputed (results.json is rewritten after
each row), and sampling keeps its finished batches (out/ptq_table/resume/ROW_ID). Quantized
model directories are kept in out/ptq_table/quantized/ROW_ID, each with its integer graph and
bit-exactness check. A row's ``seconds`` add up every run that worked on it (out/ptq_table/seconds),
so a resumed row reports its whole cost, not only its last run's. Recipes may be added to the
config between runs; changing one that finished rows used is refused. A row's precision is a
shorthand (``W8A8N12F8Z``) or, with ``plan: plans/FILE.yaml``, a label for that plan file (mixed
precision); quantized rows record their resolved plan.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml

from hwsim import config as cfgio
from hwsim.evaluate import generate, score, set_threads
from hwsim.metrics.fid import (evaluate_features, extract_features, frechet_distance, make_extractor, paired_differences,
                               reference_features)
from hwsim.export.pipeline import export_model
from hwsim.modeldir import load_spec
from hwsim.provenance import provenance
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.plan import PrecisionPlan, load_plan, parse_shorthand
from hwsim.quant.qmodel import is_quantized, quantize_dir, save_quantized

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments/results/ptq_table"  # changed by --results / --work
WORK = ROOT / "out/ptq_table"
ROW_KEYS = {"model", "precision", "recipe", "sparsity", "inception", "plan"}


def row_id(row: dict) -> str:
    parts = [row["model"], row["precision"].lower()]
    if row.get("sparsity"):
        parts.append("s" + row["sparsity"].replace(":", ""))
    if row["precision"] != "fp":
        parts.append(row["recipe"])
    return "-".join(parts)


def row_plan(row: dict, cfg: dict) -> PrecisionPlan:
    """The row's plan: the file its ``plan`` names (relative to experiments/; ``precision`` is then
    its label), else its precision (``WxAy[Nz][Fm][Z][Tg]``, hwsim.quant.plan.parse_shorthand) as a
    uniform plan."""
    if row.get("plan"):
        return load_plan(ROOT / "experiments" / row["plan"])
    plan = parse_shorthand(row["precision"], cfg["weight_granularity"])
    if plan is None:
        raise SystemExit(f"precision {row['precision']!r}: expected WxAy[Nz][Fm][Z][Tg], e.g. W4A8, W8A8N12, W8A8N12F8 or W8A8N12F8Z")
    return plan


def quantized_dir(row: dict, cfg: dict) -> tuple[Path, float]:
    """The row's quantized model directory, made (and checked bit-exact) on first use, and the
    seconds that took (kept beside it, so a reused directory reports what it cost)."""
    out = WORK / "quantized" / row_id(row)
    cost = out / "quantize_seconds.json"
    if is_quantized(out) and (out / "export.json").is_file():
        return out, json.loads(cost.read_text())["seconds"] if cost.is_file() else float("nan")
    started = time.time()
    recipe = cfg["recipes"][row["recipe"]]
    calib = CalibrationConfig(**cfg["calibration"], timesteps=recipe["timesteps"], observer=recipe["observer"])
    methods = list(recipe["methods"]) + ([f"sparse-{row['sparsity']}"] if row.get("sparsity") else [])
    plan = row_plan(row, cfg)
    quantized = quantize_dir(ROOT / "models" / row["model"], plan, calib, methods)
    save_quantized(quantized, out)
    export_model(out, None, out, check_samples=2, check_steps=cfg["steps"])  # raises unless bit-exact
    seconds = round(time.time() - started, 1)
    cost.write_text(json.dumps({"seconds": seconds}) + "\n")
    return out, seconds


@contextmanager
def counted_seconds(rid: str):
    """Add this run's wall time to the row's total (also when interrupted); yields a reader."""
    path = WORK / "seconds" / f"{rid}.json"
    before = json.loads(path.read_text())["seconds"] if path.is_file() else 0.0
    started = time.time()

    def total() -> float:
        return round(before + time.time() - started, 1)

    try:
        yield total
    finally:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seconds": total()}) + "\n")


def run_row(row: dict, cfg: dict) -> dict:
    with counted_seconds(row_id(row)) as seconds:
        result = _measure_row(row, cfg)
        result["seconds"] = seconds()
    result["provenance"] = provenance()  # per row: rows of one table may come from several runs
    return result


_FP: dict[str, tuple[np.ndarray, torch.Tensor]] = {}


def _features(images: np.ndarray, dataset: str) -> torch.Tensor:
    return extract_features(make_extractor("classifier", dataset), images)


def fp_samples(model: str, cfg: dict) -> tuple[np.ndarray, torch.Tensor]:
    """The FP row's samples (the same initial noise as every row) and their classifier features,
    sampled once into the FP row's resume directory and kept."""
    if model not in _FP:
        fp_row = {"model": model, "precision": "fp"}
        images = generate(ROOT / "models" / model, cfg["samples"], cfg["steps"], "ddim", cfg["seed"], "torch",
                          progress=False, resume_dir=WORK / "resume" / row_id(fp_row))
        _FP[model] = images, _features(images, load_spec(ROOT / "models" / model).dataset)
    return _FP[model]


def fidelity(images: np.ndarray, model: str, cfg: dict) -> dict:
    """FID (classifier features, bootstrap interval) of a quantized row's samples against the FP
    samples; the gap FID(row) - FID(FP) against the data with a paired bootstrap interval (sample i
    of both from the same noise: whether the gap is inside the noise of 2,000 samples); and the
    samples' mean pixel (uint8) beside the FP samples'."""
    fp_images, fp_feats = fp_samples(model, cfg)
    dataset = load_spec(ROOT / "models" / model).dataset
    feats = _features(images, dataset)
    fid = evaluate_features(fp_feats, feats, "classifier", seed=cfg["seed"])
    gap = paired_differences(reference_features(dataset, "classifier"), {"row": feats, "fp": fp_feats}, [("row", "fp")],
                             seed=cfg["seed"])["row - fp"]
    return {"fid_to_fp": fid.fid, "fid_to_fp_ci": [fid.ci_low, fid.ci_high], "mean_pixel": float(images.mean()),
            "fp_mean_pixel": float(fp_images.mean()), "fid_gap_to_fp": gap["diff"],
            "fid_gap_to_fp_ci": [gap["ci_low"], gap["ci_high"]]}


def inception_fid(images: np.ndarray, dataset: str, cfg: dict) -> dict:
    """Inception-FID of the first ``inception_samples`` samples, with its interval and data floor."""
    inception = score(images[: cfg["inception_samples"]], dataset, "inception", seed=cfg["seed"])
    fid = inception["fid"]
    return {"fid_inception": fid["fid"], "fid_inception_ci": [fid["ci_low"], fid["ci_high"]],
            "fid_inception_floor": inception["floor"]["fid"]}


def _measure_row(row: dict, cfg: dict) -> dict:
    if row["precision"] == "fp":
        model_dir, backend, quantize_seconds = ROOT / "models" / row["model"], "torch", 0.0
    else:
        (model_dir, quantize_seconds), backend = quantized_dir(row, cfg), "intsim"
    images = generate(model_dir, cfg["samples"], cfg["steps"], "ddim", cfg["seed"], backend, progress=False,
                      resume_dir=WORK / "resume" / row_id(row))
    dataset = load_spec(model_dir).dataset
    classifier = score(images, dataset, "classifier", seed=cfg["seed"])
    plan = None if row["precision"] == "fp" else row_plan(row, cfg)
    w, a = (None, None) if plan is None else (plan.default.weight_bits, plan.default.act_bits)
    result = {
        "id": row_id(row), "model": row["model"], "w_bits": w, "a_bits": a, "sparsity": row.get("sparsity"),
        "method": row.get("recipe", "fp"), "methods": cfg["recipes"][row["recipe"]] if "recipe" in row else None,
        "backend": backend,
        "bits": row["precision"], "nonlinear_bits": plan and plan.nonlinear_act_bits,
        "timestep_groups": plan and plan.timestep_groups,
        "plan": plan and cfgio.to_dict(plan),
        "fid_classifier": classifier["fid"]["fid"],
        "fid_classifier_ci": [classifier["fid"]["ci_low"], classifier["fid"]["ci_high"]],
        "fid_classifier_floor": classifier["floor"]["fid"],
        "precision": classifier["fid"]["precision"], "recall": classifier["fid"]["recall"],
        "fid_inception": None, "fid_inception_ci": None,
        "quantize_seconds": quantize_seconds,
    }
    if row.get("inception"):
        result.update(inception_fid(images, dataset, cfg))
    if model_dir != ROOT / "models" / row["model"]:
        result.update(fidelity(images, row["model"], cfg))
        meta = json.loads((model_dir / "quant.json").read_text())
        result["mean_activation_sparsity"] = float(np.mean(list(meta["activation_sparsity"].values())))
    return result


LEARNED = {"adaround", "brecq"}  # recipes whose quantized directory takes hours to remake


def _rescored(features: torch.Tensor, dataset: str, recorded: float) -> tuple[bool, float]:
    """Whether samples sampled again score a row's recorded FID against the data (feature sums may
    differ in the last bits, other samples differ by far more), and the score."""
    again = frechet_distance(reference_features(dataset, "classifier"), features)
    return bool(np.isclose(again, recorded, rtol=1e-4)), again


def _row_samples(r: dict, row: dict, cfg: dict, kept: Path) -> np.ndarray | None:
    """A finished row's samples from its kept batches (sampled again into them where missing), or
    None, said, when they do not score the row's recorded FID against the data (not its samples)."""
    fp = r["method"] == "fp"
    model_dir = ROOT / "models" / r["model"] if fp else quantized_dir(row, cfg)[0]
    images = generate(model_dir, cfg["samples"], cfg["steps"], "ddim", cfg["seed"], "torch" if fp else "intsim",
                      progress=False, resume_dir=kept)
    dataset = load_spec(model_dir).dataset
    same, again = _rescored(_features(images, dataset), dataset, r["fid_classifier"])
    if not same:
        print(f"{r['id']}: the samples score FID {again:.4f} against the data, the row says "
              f"{r['fid_classifier']:.4f}: not the row's samples, left", flush=True)
        return None
    return images


def fill_fidelity(results: dict, cfg: dict, path: Path, only: list[str] | None = None) -> None:
    """``fid_to_fp`` for finished quantized rows without it (of ``only``, if given), from their kept samples; rows whose
    samples are gone are sampled again (resumably) from their quantized directory, remade if
    needed unless that means a learned rounding (hours): those are left and named. Samples made
    again must score the row's recorded FID against the data, or the row is left and named."""
    rows = {row_id(r): r for r in cfg["rows"]}
    for r in results["rows"]:
        if r["method"] == "fp" and "mean_pixel" not in r:  # FP samples sampled again must be the FP row's
            images, features = fp_samples(r["model"], cfg)
            same, again = _rescored(features, load_spec(ROOT / "models" / r["model"]).dataset, r["fid_classifier"])
            if not same:
                raise SystemExit(f"{r['id']}: its samples score FID {again:.4f} against the data, the row says "
                                 f"{r['fid_classifier']:.4f}; fid_to_fp would compare against other samples")
            r["mean_pixel"] = float(images.mean())
    for r in results["rows"]:
        if r["method"] == "fp" or "fid_gap_to_fp" in r or (only and r["id"] not in only):
            continue
        row = rows[r["id"]]
        kept = WORK / "resume" / r["id"]
        learned = LEARNED & set(cfg["recipes"][row["recipe"]]["methods"])
        if not kept.is_dir() and not is_quantized(WORK / "quantized" / r["id"]) and learned:
            print(f"{r['id']}: samples and quantized model gone, remaking needs {sorted(learned)}: left", flush=True)
            continue
        images = _row_samples(r, row, cfg, kept)
        if images is None:
            continue
        r.update(fidelity(images, r["model"], cfg), fidelity_provenance=provenance())
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(r["id"], "fid_to_fp", round(r["fid_to_fp"], 2), flush=True)
    for r in results["rows"]:  # Inception-FID asked for after the row was made: from its kept samples
        kept = WORK / "resume" / r["id"]
        if (not rows[r["id"]].get("inception") or r.get("fid_inception") is not None or not kept.is_dir()
                or (only and r["id"] not in only)):
            continue
        images = _row_samples(r, rows[r["id"]], cfg, kept)
        if images is None:
            continue
        r.update(inception_fid(images, load_spec(ROOT / "models" / r["model"]).dataset, cfg),
                 inception_provenance=provenance())
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(r["id"], "fid_inception", round(r["fid_inception"], 2), flush=True)
    write_report(results)


NARROW_RANGE_FIX = "450c51d"  # from this commit on, learned rounding keeps Brevitas' narrow weight range


def learned_before_fix(r: dict) -> bool:
    """A row whose AdaRound/BRECQ ran before NARROW_RANGE_FIX: a learned -2^(w-1) doubled its
    channel's power-of-two scale (on unet-digits W4A8, 32 of 849 channels). Still a measurement of
    the hardware-exact model it made, but not of AdaRound as meant."""
    if not LEARNED & set((r.get("methods") or {}).get("methods", [])):
        return False
    made = r["provenance"]["git_commit"].removesuffix("+dirty")
    return subprocess.run(["git", "merge-base", "--is-ancestor", NARROW_RANGE_FIX, made], cwd=ROOT).returncode != 0


def _fmt(v, digits=1):
    return "" if v is None else f"{v:.{digits}f}"


def write_report(results: dict) -> None:
    """table.md and fid.png from results.json (the numbers only ever come from there)."""
    rows = results["rows"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    fp = {r["model"]: r["fid_classifier"] for r in rows if r["method"] == "fp"}
    lines = ["| model | W/A | sparsity | method | classifier-FID [95% CI] | vs FP | gap to FP [paired 95% CI] | "
             "to FP samples [95% CI] | mean pixel (FP's) | Inception-FID | precision | recall |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    stale = False  # a row with AdaRound/BRECQ from before the narrow-range fix
    for r in rows:
        bits = "fp32" if r["w_bits"] is None else r.get("bits", f"W{r['w_bits']}A{r['a_bits']}")
        rel = f"{100 * (r['fid_classifier'] / fp[r['model']] - 1):+.1f}%" if r["model"] in fp and r["method"] != "fp" else ""
        lo, hi = r["fid_classifier_ci"]
        to_fp = f"{_fmt(r['fid_to_fp'])} [{_fmt(r['fid_to_fp_ci'][0])}, {_fmt(r['fid_to_fp_ci'][1])}]" if "fid_to_fp" in r else ""
        gap = (f"{r['fid_gap_to_fp']:+.1f} [{r['fid_gap_to_fp_ci'][0]:+.1f}, {r['fid_gap_to_fp_ci'][1]:+.1f}]"
               if "fid_gap_to_fp" in r else "")
        pixel = f"{_fmt(r['mean_pixel'])}" + (f" ({_fmt(r['fp_mean_pixel'])})" if "fp_mean_pixel" in r else "") \
            if "mean_pixel" in r else ""
        dagger = learned_before_fix(r)
        stale |= dagger
        method = r["method"] + (" †" if dagger else "")
        lines.append(f"| {r['model']} | {bits} | {r['sparsity'] or ''} | {method} | {_fmt(r['fid_classifier'])} "
                     f"[{_fmt(lo)}, {_fmt(hi)}] | {rel} | {gap} | {to_fp} | {pixel} | {_fmt(r['fid_inception'])} | {_fmt(r['precision'], 3)} | "
                     f"{_fmt(r['recall'], 3)} |")
    if stale:
        lines += ["", f"† AdaRound/BRECQ made before {NARROW_RANGE_FIX}: a learned -2^(w-1) (outside Brevitas' narrow weight "
                  "range) doubled its channel's power-of-two scale; the row measures the model that was made, not AdaRound as meant."]
    (RESULTS / "table.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.5))
    labels = [r["id"] for r in rows]
    values = [r["fid_classifier"] for r in rows]
    err = np.array([[v - r["fid_classifier_ci"][0], r["fid_classifier_ci"][1] - v] for v, r in zip(values, rows)]).T
    ax.barh(range(len(rows)), values, xerr=err, color=["tab:gray" if r["method"] == "fp" else "tab:blue" for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("classifier-FID (95% bootstrap interval)")
    fig.tight_layout()
    fig.savefig(RESULTS / "fid.png", dpi=120)
    plt.close(fig)


def check_config(results: dict, settings: dict, path: Path) -> None:
    """Refuse a config that would make the finished rows incomparable: any change but new recipes."""
    old = results.get("config")
    if old is None:
        return
    changed = [k for k in settings if k != "recipes" and old.get(k) != settings[k]]
    used = {r["method"] for r in results["rows"]}
    changed += [f"recipes.{name}" for name in sorted(used & set(old["recipes"]))
                if settings["recipes"].get(name) != old["recipes"][name]]
    if changed:
        raise SystemExit(f"{path} was made with another config ({', '.join(changed)} differ); move it away to start over")


def main() -> None:
    global RESULTS, WORK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "experiments/ptq_table.yaml")
    parser.add_argument("--only", nargs="*", help="row ids to run or, with --fidelity, to fill (default: all, in file order)")
    parser.add_argument("--report", action="store_true", help="only rebuild table.md and fid.png")
    parser.add_argument("--fidelity", action="store_true", help="add FID to the FP samples, the paired gap to FP and asked-for Inception-FID to finished rows lacking them")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args()
    RESULTS, WORK = args.results, args.work
    cfg = yaml.safe_load(args.config.read_text())
    for i, row in enumerate(cfg["rows"]):
        unknown = set(row) - ROW_KEYS
        if unknown or (row["precision"] != "fp" and row.get("recipe") not in cfg["recipes"]):
            raise SystemExit(f"{args.config}: rows[{i}] has unknown keys {sorted(unknown)} or recipe {row.get('recipe')!r}")
    path = RESULTS / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    if args.report:
        write_report(results)
        return
    settings = {k: cfg[k] for k in ("samples", "inception_samples", "steps", "seed", "weight_granularity", "calibration",
                                    "recipes")}
    check_config(results, settings, path)
    results["config"] = settings
    set_threads(None)
    if args.fidelity:
        fill_fidelity(results, cfg, path, args.only)
        return
    for r in results["rows"]:  # rows from before per-row provenance carry the file's (they were all made at it)
        r.setdefault("provenance", results.get("provenance"))
    done = {r["id"] for r in results["rows"]}
    for row in cfg["rows"]:
        if row_id(row) in done or (args.only and row_id(row) not in args.only):
            continue
        results["rows"].append(run_row(row, cfg))
        results["provenance"] = provenance()
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        write_report(results)
        print(json.dumps(results["rows"][-1]), flush=True)


if __name__ == "__main__":
    main()
