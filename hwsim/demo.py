"""``hwsim demo``: the whole flow on a shipped model, as a list of named steps.

Each step is a plain function ``step_x(ctx) -> None`` that reads and adds entries of the
shared :class:`DemoContext` and writes its artifacts under ``ctx.out``; later stages of the
flow (quantize, integer simulation, cost, RTL) join by adding one function to ``STEPS``.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hwsim.evaluate import generate, save_grid, score
from hwsim.modeldir import load_spec
from hwsim.provenance import provenance


@dataclass
class DemoContext:
    model_dir: Path
    out: Path
    samples: int = 256
    steps: int = 50
    seed: int = 0
    n_bootstrap: int = 100
    plan: Path | None = None  # precision plan of the integer step (None: uniform W8A8)
    integer_samples: int = 16  # images generated through the integer simulator
    report: dict[str, Any] = field(default_factory=dict)  # becomes report.json
    images: np.ndarray | None = None
    graph: Path | None = None  # the integer graph, once exported
    device: str = "ecp5-85f"  # the cost step's device
    sweep: Path | None = Path(__file__).resolve().parent.parent / "experiments" / "sweeps" / "smoke.yaml"  # None: skip


def step_sample(ctx: DemoContext) -> None:
    """Float model, DDIM (eta = 0), seeded noise."""
    ctx.images = generate(ctx.model_dir, ctx.samples, ctx.steps, "ddim", ctx.seed)
    np.save(ctx.out / "samples.npy", ctx.images)
    save_grid(ctx.images, ctx.out / "samples.png")


def step_fid(ctx: DemoContext) -> None:
    """Classifier-FID against the test split, and the data floor at the same sample count."""
    dataset = load_spec(ctx.model_dir).dataset
    scored = score(ctx.images, dataset, "classifier", ctx.n_bootstrap, ctx.seed)
    ctx.report.update(
        fid_classifier=scored["fid"]["fid"],
        fid_classifier_ci=[scored["fid"]["ci_low"], scored["fid"]["ci_high"]],
        fid_floor_classifier=scored["floor"]["fid"],
        precision=scored["fid"]["precision"],
        recall=scored["fid"]["recall"],
        fid_details=scored,
    )


def step_integer(ctx: DemoContext) -> None:
    """Quantize (min-max), export the integer graph, check it bit-exact at every timestep of a
    trajectory, and sample a few images through the simulator from the same seeds as the float ones."""
    from hwsim.export.pipeline import export_model
    from hwsim.quant.calibrate import CalibrationConfig
    from hwsim.quant.plan import PrecisionPlan, load_plan

    plan = load_plan(ctx.plan) if ctx.plan else PrecisionPlan.uniform(8, 8)
    graph = export_model(ctx.model_dir, plan, ctx.out / "integer", CalibrationConfig(samples=16, steps=ctx.steps),
                         check_samples=2, check_steps=ctx.steps)
    ctx.graph = graph
    export = json.loads((ctx.out / "integer" / "export.json").read_text())
    images = generate(ctx.model_dir, ctx.integer_samples, ctx.steps, "ddim", ctx.seed, backend="intsim", graph=graph)
    save_grid(images, ctx.out / "samples_integer.png")
    same = ctx.images[: len(images)].astype(int)
    ctx.report.update(
        integer_plan=plan.describe(), integer_nodes=export["nodes"],
        integer_bit_exact=export["check"]["all_equal"], integer_samples=len(images),
        integer_pixel_mae_vs_float=float(np.abs(images.astype(int) - same).mean()),
    )


def step_cost(ctx: DemoContext) -> None:
    """Map the integer graph to dataflow nodes, fold it to the fastest design that fits the device,
    and price it per generated image (cycles, resources, energy)."""
    from hwsim.dataflow.cost import CostConfig, cost_report, plot_report
    from hwsim.dataflow.mapping import map_integer_graph

    report = cost_report(map_integer_graph(ctx.graph, ctx.steps), CostConfig(device=ctx.device))
    (ctx.out / "cost.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_report(report, ctx.out / "cost.png")
    ctx.report.update(
        cost_device=report["device"], cost_fits=report["fits"], cost_ii_cycles=report["cycles_per_step"]["ii"],
        cost_step_latency_cycles=report["cycles_per_step"]["latency"], cost_ms_per_image=report["seconds_per_image"] * 1e3,
        cost_energy_per_image_mj_fpga=report["energy_per_image_uj"]["fpga"] / 1e3,
        cost_energy_per_image_uj_asic45nm=report["energy_per_image_uj"]["asic45nm"], cost_resources=report["resources"],
    )


def step_sweep(ctx: DemoContext) -> None:
    """A small co-design sweep (FID beside cycles and energy per image) and its HTML report."""
    if ctx.sweep is None:
        return
    from hwsim.sweep.report import write_report
    from hwsim.sweep.runner import run_sweep

    rows = run_sweep(ctx.sweep, ctx.out / "sweep", workers=0, progress=False)
    write_report(ctx.out / "sweep", ctx.out / "sweep" / "report.html")
    ctx.report.update(sweep_experiment=str(ctx.sweep), sweep_points=len(rows), sweep_report="sweep/report.html")


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("sample", step_sample), ("fid", step_fid), ("integer", step_integer), ("cost", step_cost), ("sweep", step_sweep),
]


def run_demo(ctx: DemoContext) -> dict[str, Any]:
    """Run every step, then write report.json and index.html into ``ctx.out``."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    ctx.report.update(model=ctx.model_dir.name, samples=ctx.samples, steps=ctx.steps, sampler="ddim", seed=ctx.seed)
    timings = {}
    for name, step in STEPS:
        t0 = time.time()
        step(ctx)
        timings[name] = round(time.time() - t0, 1)
    ctx.report.update(seconds=round(time.time() - started, 1), step_seconds=timings, provenance=provenance())
    (ctx.out / "report.json").write_text(json.dumps(ctx.report, indent=2) + "\n")
    (ctx.out / "index.html").write_text(_html(ctx.report))
    return ctx.report


def _html(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in report.items()
        if not isinstance(v, dict)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>hwsim demo</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 12px}</style></head><body>"
        f"<h1>hwsim demo: {html.escape(str(report['model']))}</h1>"
        "<p>float model</p><img src='samples.png' alt='samples'>"
        "<p>integer simulator (first images, same seeds)</p><img src='samples_integer.png' alt='integer samples'>"
        "<p>dataflow cost per node (<a href='cost.json'>cost.json</a>)</p><img src='cost.png' alt='cost per node' width='100%'>"
        + (f"<p>co-design sweep ({html.escape(str(report.get('sweep_points')))} points of "
           f"{html.escape(Path(report['sweep_experiment']).name)}): <a href='sweep/report.html'>sweep report</a>; the "
           "committed experiments' reports are in the repository under experiments/results/&lt;name&gt;/report.html</p>"
           if report.get("sweep_report") else "") +
        "<table>" + rows + "</table>"
        f"<p>git {html.escape(report['provenance']['git_commit'])}; full details in "
        "<a href='report.json'>report.json</a></p></body></html>\n"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)
