"""One sweep point, end to end, with the project's own functions: quantize (PTQ methods and a
precision plan), export the integer graph and check it bit-exact, sample through the integer
simulator and score FID with its bootstrap interval, map to dataflow nodes, fold to the target
and price it. Returns the point's result row.

Intermediate results live under the sweep's ``work/`` directory, keyed by hashes of the part of
the config that determines them, so points that differ only in what comes later share them (two
folding targets share one quantized model and one FID) and a killed point resumes from its last
finished stage:

    work/quantized/<quant key>/   the quantized model directory with integer.onnx, export.json
    work/samples/<eval key>/      finished sampling batches (hwsim.resume.BatchStore)
    work/fid/<eval key>.json      the FID and its data floor
    work/cost/<point key>.json    the full cost report (per node)
    work/locks/                   one flock per stage being made: workers never make one twice

Directories appear by one rename when complete and files by ``os.replace``, so a stage is either
done or absent, whatever moment a kill comes at.

Test hook: ``HWSIM_SWEEP_TRACE=SECONDS`` prints ``sweep: stage STAGE KEY`` on stdout as a stage that
is not cached starts (quantize, sample, cost), then waits SECONDS, so that a test's kill lands inside
the given stage however fast the machine runs it (sampling through the simulator takes a fraction of a
second on the smoke sweep's tiny model).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from hwsim.sweep.experiment import config_hash, eval_config, quant_config
from hwsim.sweep.store import atomic_write_json, key_lock, publish_dir, temp_dir

TRACE_ENV = "HWSIM_SWEEP_TRACE"


def _trace(stage: str, key: str) -> None:
    seconds = os.environ.get(TRACE_ENV)
    if seconds:
        print(f"sweep: stage {stage} {key}", flush=True)
        time.sleep(float(seconds))


@contextlib.contextmanager
def pinned_threads(threads: int):
    """Pin torch's, the BLAS pools' and Numba's (the simulator's kernels) threads while a point
    runs, so it computes the same bits in every process (this one, a pool worker, a Ray worker) and
    uses the cores it was given; restored afterwards."""
    import torch

    from hwsim.bench import pinned_threads as pinned_pools  # Numba's and the BLAS pools

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with pinned_pools(threads):
            yield
    finally:
        torch.set_num_threads(before)


def quantized_model(config: dict, model_dir: Path, work: Path) -> tuple[Path, bool]:
    """The point's quantized model directory (made and checked bit-exact on first use); and
    whether it already existed."""
    from hwsim import config as cfgio
    from hwsim.export.pipeline import export_model
    from hwsim.quant.calibrate import CalibrationConfig
    from hwsim.quant.plan import PrecisionPlan
    from hwsim.quant.qmodel import quantize_dir, save_quantized

    final = work / "quantized" / config_hash(quant_config(config))
    if final.is_dir():
        return final, True
    with key_lock(work / "locks" / f"quantized-{final.name}.lock"):
        if final.is_dir():  # another worker made it while this one waited
            return final, True
        _trace("quantize", final.name)
        tmp = temp_dir(final)
        try:
            plan = cfgio.from_dict(PrecisionPlan, config["plan"], "plan")
            calib = CalibrationConfig(**config["calibration"])
            save_quantized(quantize_dir(model_dir, plan, calib, config["methods"]), tmp)
            check = config["export_check"]
            # raises unless the simulator equals the quantized net at every checked step
            export_model(tmp, None, tmp, check_samples=check["samples"], check_steps=check["steps"])
            (tmp / "sweep_point.json").write_text(json.dumps(quant_config(config), indent=1) + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return publish_dir(tmp, final), False


def fid_of(config: dict, qdir: Path, work: Path) -> tuple[dict, bool]:
    """FID of the point's samples through the integer simulator, and whether it was cached."""
    from hwsim.evaluate import generate, score
    from hwsim.modeldir import load_spec

    key = config_hash(eval_config(config))
    path = work / "fid" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text()), True
    with key_lock(work / "locks" / f"fid-{key}.lock"):
        if path.is_file():
            return json.loads(path.read_text()), True
        resume = work / "samples" / key
        _trace("sample", key)

        def sample():
            return generate(qdir, config["samples"], config["steps"], "ddim", config["seed"], "intsim",
                            progress=False, resume_dir=resume)

        try:
            images = sample()
        except ValueError:  # a resume directory whose job.json a kill cut short: start its batches over
            shutil.rmtree(resume, ignore_errors=True)
            images = sample()
        fid = config["fid"]
        scored = score(images, load_spec(qdir).dataset, fid["extractor"], n_bootstrap=fid["bootstrap"],
                       seed=config["seed"])
        atomic_write_json(path, {"eval": eval_config(config), "fid": scored["fid"], "floor": scored["floor"]})
    return json.loads(path.read_text()), False


def cost_of(config: dict, qdir: Path, work: Path, key: str) -> dict:
    from hwsim.dataflow.cost import CostConfig, cost_report
    from hwsim.dataflow.mapping import map_integer_graph
    from hwsim.export.pipeline import GRAPH_FILE

    _trace("cost", key)
    graph = map_integer_graph(qdir / GRAPH_FILE, config["steps"])
    graph.steps = config["steps"]
    report = cost_report(graph, CostConfig(device=config["device"], target=config["target"], **config["cost"]))
    atomic_write_json(work / "cost" / f"{key}.json", report)
    return report


def run_point(config: dict, model_dir: str | Path, work_dir: str | Path, threads: int = 1) -> dict:
    """Run one point (module docstring) with ``threads`` threads and return its result row."""
    with pinned_threads(threads):
        return _run_point(config, Path(model_dir), Path(work_dir), threads)


def _run_point(config: dict, model_dir: Path, work: Path, threads: int) -> dict:
    import numpy as np

    from hwsim.provenance import provenance
    from hwsim.quant.qmodel import read_meta

    started = time.time()
    key = config_hash(config)
    reused = []
    qdir, cached = quantized_model(config, model_dir, work)
    reused += ["quantized"] if cached else []
    t_quant = time.time()
    fid, cached = fid_of(config, qdir, work)
    reused += ["fid"] if cached else []
    t_fid = time.time()
    cost = cost_of(config, qdir, work, key)
    t_cost = time.time()

    meta = read_meta(qdir)
    weight_sparsity = meta.get("weight_sparsity") or {}
    f, floor = fid["fid"], fid["floor"]
    return {
        "key": key,
        "config": config,
        "fid": f["fid"], "fid_ci": [f["ci_low"], f["ci_high"]], "fid_floor": floor["fid"],
        "fid_precision": f["precision"], "fid_recall": f["recall"], "fid_samples": f["num_samples"],
        "fits": cost["fits"],
        "cycles_per_step": {"ii": cost["cycles_per_step"]["ii"], "latency": cost["cycles_per_step"]["latency"],
                            "host_update": cost["cycles_per_step"]["host_update"]},
        "cycles_per_image": cost["cycles_per_image"], "cycles_per_image_pipelined": cost["cycles_per_image_pipelined"],
        "latency_s_per_image": cost["seconds_per_image"],
        "energy_uj_per_image": cost["energy_per_image_uj"],
        "resources": cost["resources"], "utilization": cost["utilization"], "onchip_bits": cost["onchip_bits"]["total"],
        "folding_missed": cost["folding"]["missed"], "macs_per_step": cost["macs_per_step"],
        "bitops_per_step": cost["bitops_per_step"],
        "offchip_weights": None if cost["offchip_weights"] is None else {
            "fits": cost["offchip_weights"]["fits"],
            "extra_energy_uj_per_image": cost["offchip_weights"]["extra_energy_per_image_uj"]},
        "activation_sparsity": float(np.mean(list(meta["activation_sparsity"].values()))),
        "weight_sparsity": float(np.mean(list(weight_sparsity.values()))) if weight_sparsity else 0.0,
        "seconds": {"quantize": round(t_quant - started, 2), "fid": round(t_fid - t_quant, 2),
                    "cost": round(t_cost - t_fid, 2), "total": round(t_cost - started, 2)},
        "reused": reused,
        "provenance": {**provenance(), "pid": os.getpid(), "threads": threads},
    }
