"""The ``hwsim`` command line: one subcommand per stage of the flow."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

# Errors a user can cause (bad file, bad key, unknown dataset) become one line and exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError, KeyError,
                                                NotImplementedError)


def user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            typer.echo(f"error: {msg}", err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.callback()
def _root() -> None:
    """hwsim: quantized diffusion models on FPGA dataflow accelerators, end to end."""


@app.command()
@user_errors
def train(
    config: Path = typer.Argument(..., help="training config (YAML or JSON, keys of TrainConfig)"),
    out: Path = typer.Option(..., "--out", help="model directory to write (resumes if it holds a checkpoint)"),
    max_steps: int = typer.Option(None, help="stop after this many steps (resume later)"),
):
    """Train a denoiser; interrupted runs resume from the last checkpoint in OUT."""
    from hwsim import config as cfgio
    from hwsim.diffusion.train import TrainConfig, train as run

    run(cfgio.load(TrainConfig, config), out, max_steps=max_steps)
    typer.echo(f"model written to {out}")


@app.command("train-classifier")
@user_errors
def train_classifier(
    config: Path = typer.Argument(..., help="classifier config (YAML or JSON, keys of ClassifierConfig)"),
    out: Path = typer.Option(..., "--out", help="model directory to write"),
):
    """Train the small CNN whose features define classifier-FID for one dataset."""
    from hwsim import config as cfgio
    from hwsim.metrics.classifier import ClassifierConfig, train_classifier as run

    summary = run(cfgio.load(ClassifierConfig, config), out)
    typer.echo(f"test accuracy {summary['test_accuracy']:.4f}; written to {out}")


MODEL_ARG = typer.Argument(..., help="model directory (config.json + weights.safetensors), float or quantized")
BACKEND_OPT = typer.Option("torch", help="denoiser backend: torch (the float net, or a quantized directory's "
                                         "hardware-exact net in float64) or intsim (the integer simulator)")
GRAPH_OPT = typer.Option(None, help="integer graph for --backend intsim (default: a quantized directory's integer.onnx)")
RESUME_OPT = typer.Option(None, "--resume-dir", help="keep finished batches here; rerunning resumes")


@app.command("sample")
@user_errors
def sample_cmd(
    model: Path = MODEL_ARG,
    out: Path = typer.Option(..., "--out", help="directory for samples.npy, samples.png, sample.json"),
    n: int = typer.Option(64, "--n", help="number of images"),
    steps: int = typer.Option(50, help="sampler steps"),
    sampler: str = typer.Option("ddim", help="ddim (eta=0) or ddpm"),
    seed: int = typer.Option(0, help="seed of the initial noise"),
    backend: str = BACKEND_OPT,
    graph: Path = GRAPH_OPT,
    resume_dir: Path = RESUME_OPT,
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
):
    """Generate images from a model directory."""
    import json

    import numpy as np

    from hwsim.evaluate import generate, save_grid, set_threads
    from hwsim.provenance import provenance

    set_threads(threads)
    images = generate(model, n, steps, sampler, seed, backend, graph=graph, resume_dir=resume_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "samples.npy", images)
    save_grid(images, out / "samples.png")
    meta = {"model": str(model), "n": n, "steps": steps, "sampler": sampler, "seed": seed, "backend": backend,
            "graph": str(graph) if graph else None, "provenance": provenance()}
    (out / "sample.json").write_text(json.dumps(meta, indent=2) + "\n")
    typer.echo(f"{n} samples written to {out}")


@app.command("fid")
@user_errors
def fid_cmd(
    model: Path = MODEL_ARG,
    samples: int = typer.Option(5000, help="number of generated images"),
    steps: int = typer.Option(50, help="DDIM steps"),
    extractor: list[str] = typer.Option(["classifier"], help="classifier and/or inception (repeatable)"),
    seed: int = typer.Option(0, help="seed of the initial noise and the bootstrap"),
    bootstrap: int = typer.Option(100, help="bootstrap resamples for the 95% interval"),
    backend: str = BACKEND_OPT,
    graph: Path = GRAPH_OPT,
    resume_dir: Path = RESUME_OPT,
    json_out: Path = typer.Option(None, "--json", help="write the result here as JSON"),
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
):
    """FID (with data floor, 95% bootstrap interval, precision and recall) of a model's samples."""
    import json
    import time

    from hwsim.evaluate import generate, score, set_threads
    from hwsim.metrics.fid import EXTRACTORS
    from hwsim.modeldir import load_spec
    from hwsim.provenance import provenance

    bad = [e for e in extractor if e not in EXTRACTORS]
    if bad:
        raise ValueError(f"unknown extractor(s) {bad}; known: {', '.join(EXTRACTORS)}")
    set_threads(threads)
    spec = load_spec(model)
    started = time.time()
    images = generate(model, samples, steps, "ddim", seed, backend, graph=graph, resume_dir=resume_dir)
    result = {"model": str(model), "dataset": spec.dataset, "samples": samples, "steps": steps, "sampler": "ddim",
              "seed": seed, "backend": backend, "graph": str(graph) if graph else None,
              "sampling_seconds": round(time.time() - started, 1)}
    for name in extractor:
        result[name] = score(images, spec.dataset, name, bootstrap, seed)
        fid, floor = result[name]["fid"], result[name]["floor"]
        typer.echo(f"{name}-FID {fid['fid']:.3f} (95% CI {fid['ci_low']:.3f}-{fid['ci_high']:.3f}), "
                   f"data floor {floor['fid']:.3f}, precision {fid['precision']:.3f}, recall {fid['recall']:.3f}")
    result["provenance"] = provenance()
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(..., "--out", help="directory for report.json, samples.png, index.html"),
    model: Path = typer.Option(Path(__file__).resolve().parent.parent / "models" / "unet-fashion", help="model directory"),
    samples: int = typer.Option(256, help="number of generated images"),
    steps: int = typer.Option(50, help="DDIM steps"),
    seed: int = typer.Option(0, help="seed"),
    plan: Path = typer.Option(None, help="precision plan of the integer step (default: uniform W8A8)"),
    integer_samples: int = typer.Option(16, help="images generated through the integer simulator"),
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
    sweep: str = typer.Option("experiments/sweeps/smoke.yaml", help="experiment file of the demo's sweep step, "
                              "relative to the repository ('' skips the step)"),
):
    """Run the flow on a shipped model and write a report (JSON + HTML + sample grid + sweep report)."""
    from hwsim.demo import DemoContext, run_demo
    from hwsim.evaluate import set_threads
    from hwsim.modeldir import load_spec

    load_spec(model)  # fail early on a bad model directory
    set_threads(threads)
    repo = Path(__file__).resolve().parent.parent
    report = run_demo(DemoContext(model_dir=model, out=out, samples=samples, steps=steps, seed=seed, plan=plan,
                                  integer_samples=integer_samples, sweep=(repo / sweep) if sweep else None))
    typer.echo(f"float classifier-FID of {report['model']}: {report['fid_classifier']:.3f} "
               f"(95% CI {report['fid_classifier_ci'][0]:.3f}-{report['fid_classifier_ci'][1]:.3f}; "
               f"data floor at {samples} samples: {report['fid_floor_classifier']:.3f}); integer graph "
               f"{report['integer_plan']} bit-exact: {report['integer_bit_exact']}; report in {out / 'report.json'}")


CALIB_SAMPLES_OPT = typer.Option(32, help="calibration trajectories of the float model")
CALIB_STEPS_OPT = typer.Option(50, help="DDIM steps per calibration trajectory")
CALIB_SEED_OPT = typer.Option(1234, help="seed of the calibration noise")
CHECK_SAMPLES_OPT = typer.Option(4, help="images in the bit-exactness check trajectory")
CHECK_STEPS_OPT = typer.Option(50, help="DDIM steps of the check (every timestep is compared)")


@app.command()
@user_errors
def quantize(
    model: Path = MODEL_ARG,
    plan: Path = typer.Option(..., help="precision plan (YAML or JSON)"),
    out: Path = typer.Option(..., "--out", help="quantized model directory to write"),
    method: list[str] = typer.Option([], help="PTQ method (repeatable; an unknown name lists the known ones)"),
    timesteps: str = typer.Option("all", help="calibration timesteps: all, uniform (Q-Diffusion), normal (PTQ4DM)"),
    points: int = typer.Option(256, help="calibration inputs drawn by --timesteps uniform/normal"),
    observer: str = typer.Option("minmax", help="range observer: minmax, percentile, mse"),
    calib_samples: int = CALIB_SAMPLES_OPT,
    calib_steps: int = CALIB_STEPS_OPT,
    seed: int = CALIB_SEED_OPT,
    check_samples: int = CHECK_SAMPLES_OPT,
    check_steps: int = CHECK_STEPS_OPT,
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
):
    """Quantize a float model directory (PTQ) into a quantized model directory.

    The directory holds the weights, plan, calibration ranges and method results (safetensors +
    JSON), and its integer graph, checked bit-exact; 'hwsim sample', 'fid' and 'export' load it.
    """
    from hwsim.evaluate import set_threads
    from hwsim.export.pipeline import export_model
    from hwsim.quant.calibrate import CalibrationConfig
    from hwsim.quant.plan import load_plan
    from hwsim.quant.qmodel import quantize_dir, save_quantized

    set_threads(threads)
    calib = CalibrationConfig(calib_samples, calib_steps, seed, timesteps=timesteps, points=points, observer=observer)
    save_quantized(quantize_dir(model, load_plan(plan), calib, method), out)
    graph = export_model(out, None, out, check_samples=check_samples, check_steps=check_steps)
    typer.echo(f"quantized model written to {out}; its integer graph {graph.name} is bit-exact with it at all "
               f"{check_steps} timesteps of a {check_samples}-image DDIM trajectory")


@app.command()
@user_errors
def diagnose(
    model: Path = typer.Argument(..., help="quantized model directory (from 'hwsim quantize')"),
    out: Path = typer.Option(..., "--out", help="directory for diagnose.json and sqnr.png"),
    reference: Path = typer.Option(None, help="float model directory (default: the one it was quantized from)"),
    samples: int = typer.Option(8, help="DDIM trajectories of the float model giving the inputs"),
    groups: int = typer.Option(4, help="timestep groups"),
    seed: int = typer.Option(0, help="seed of the trajectories"),
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
):
    """SQNR of every layer against the float model, per timestep group, with a heat map."""
    import json

    from hwsim.evaluate import set_threads
    from hwsim.modeldir import load_model
    from hwsim.provenance import provenance
    from hwsim.quant.diagnose import fixed_inputs, output_mse, plot_sqnr, sqnr_report
    from hwsim.quant.qmodel import load_quantized

    set_threads(threads)
    quantized = load_quantized(model)
    float_model = load_model(reference or quantized.meta["source"])
    inputs = fixed_inputs(float_model, samples=samples, seed=seed)
    qnet = quantized.net()
    report = sqnr_report(qnet, float_model.net, inputs, float_model.spec.schedule.num_train_timesteps, groups)
    report.update({"model": str(model), "reference": str(reference or quantized.meta["source"]), "samples": samples,
                   "seed": seed, "output_mse": output_mse(qnet, float_model.net, inputs), "provenance": provenance()})
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_sqnr(report, out / "sqnr.png")
    worst = min(report["layers"], key=lambda n: min(v for v in report["sqnr_db"][n] if v is not None))
    typer.echo(f"output SQNR per timestep group (dB): {[round(v, 1) for v in report['sqnr_db']['output']]}; "
               f"worst layer {worst}; written to {out}")


@app.command()
@user_errors
def export(
    model: Path = MODEL_ARG,
    plan: Path = typer.Option(None, help="precision plan (YAML or JSON), for a float model directory"),
    out: Path = typer.Option(..., "--out", help="directory for integer.onnx and export.json"),
    calib_samples: int = CALIB_SAMPLES_OPT,
    calib_steps: int = CALIB_STEPS_OPT,
    seed: int = CALIB_SEED_OPT,
    check_samples: int = CHECK_SAMPLES_OPT,
    check_steps: int = CHECK_STEPS_OPT,
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
    finn: bool = typer.Option(False, "--finn", help="also write the FINN-supported subgraphs in FINN's dialect "
                                                   "to OUT/finn (docs/finn_handoff.md)"),
):
    """Write the integer graph of a quantized model directory (or of a float one quantized by --plan)."""
    from hwsim.evaluate import set_threads
    from hwsim.export.pipeline import export_model
    from hwsim.quant.calibrate import CalibrationConfig
    from hwsim.quant.plan import load_plan

    set_threads(threads)
    graph = export_model(model, load_plan(plan) if plan else None, out,
                         CalibrationConfig(calib_samples, calib_steps, seed), check_samples, check_steps)
    typer.echo(f"integer graph written to {graph}: bit-exact with the quantized model at all {check_steps} "
               f"timesteps of a {check_samples}-image DDIM trajectory")
    if finn:
        from hwsim.export.finn_handoff import load_manifest, to_finn

        models = to_finn(graph, out / "finn")
        share = load_manifest(out / "finn")["mac_share"]
        typer.echo(f"{len(models)} FINN-dialect models written to {out / 'finn'}: {share:.1%} of the denoiser's MACs")


@app.command()
@user_errors
def sim(
    model: Path = MODEL_ARG,
    graph: Path = typer.Option(..., help="integer graph (from 'hwsim export')"),
    stats: Path = typer.Option(..., help="per-node statistics JSON to write"),
    samples: int = typer.Option(16, help="images to generate through the simulator"),
    steps: int = typer.Option(50, help="DDIM steps"),
    seed: int = typer.Option(0, help="seed of the initial noise"),
    saturate: bool = typer.Option(False, help="saturate accumulator overflows instead of failing"),
):
    """Sample through the integer simulator and record per-node statistics (sparsity, ranges, toggles)."""
    import json

    from hwsim.diffusion.samplers import make_scheduler, sample
    from hwsim.intsim.denoiser import IntsimDenoiser
    from hwsim.modeldir import load_model
    from hwsim.provenance import provenance

    loaded = load_model(model)
    denoiser = IntsimDenoiser(graph, saturate=saturate)
    denoiser.simulator.enable_stats()
    sample(denoiser, make_scheduler("ddim", loaded.noise_schedule()), samples, loaded.spec.image_shape, steps, seed=seed)
    report = {"model": str(model), "graph": str(graph), "samples": samples, "steps": steps, "seed": seed,
              "saturate": saturate, "nodes": denoiser.simulator.stats(), "provenance": provenance()}
    stats.parent.mkdir(parents=True, exist_ok=True)
    stats.write_text(json.dumps(report, indent=2) + "\n")
    typer.echo(f"statistics of {len(report['nodes'])} nodes written to {stats}")


GRAPH_SOURCE_ARG = typer.Argument(..., help="dataflow .onnx, integer graph .onnx, quantized model directory, "
                                                "or float model directory with --plan")


@app.command("map")
@user_errors
def map_cmd(
    source: Path = GRAPH_SOURCE_ARG,
    out: Path = typer.Option(..., "--out", help="dataflow graph .onnx to write"),
    plan: Path = typer.Option(None, help="precision plan, for a float model directory"),
    steps: int = typer.Option(50, help="sampler steps (rows of the timestep tables)"),
):
    """Map an integer graph to a dataflow graph of folded FINN-style nodes (folding 1 everywhere)."""
    from hwsim.dataflow.mapping import load_dataflow
    from hwsim.quant.plan import load_plan

    graph = load_dataflow(source, steps, load_plan(plan) if plan else None, out.parent / (out.stem + "-export"))
    graph.save(out)
    typer.echo(f"{len(graph.nodes)} dataflow nodes written to {out}")


@app.command()
@user_errors
def cost(
    source: Path = GRAPH_SOURCE_ARG,
    json_out: Path = typer.Option(..., "--json", help="cost report to write (a PNG of the nodes goes beside it)"),
    plan: Path = typer.Option(None, help="precision plan, for a float model directory"),
    device: str = typer.Option("ecp5-85f", help="device: ecp5-85f or xc7z020"),
    target: str = typer.Option("device", help="'device' (fastest folding that fits) or cycles per denoiser step"),
    steps: int = typer.Option(50, help="sampler steps per generated image"),
    clock_mhz: float = typer.Option(100.0, help="clock for time, static energy and bandwidth"),
    activity: Path = typer.Option(None, help="toggle rates for the FPGA energy model: statistics from 'hwsim sim "
                                             "--stats', or an RTL check's verify.json ('hwsim rtl --verify')"),
    max_fifo_depth: int = typer.Option(None, help="FIFO cap: report the FIFOs that would deadlock the pipeline"),
):
    """Fold to a target and report cycles, on-chip bits, resources and energy per step and per image."""
    import json

    from hwsim.dataflow.cost import CostConfig, cost_report, load_activity, plot_report
    from hwsim.dataflow.mapping import load_dataflow
    from hwsim.quant.plan import load_plan

    graph = load_dataflow(source, steps, load_plan(plan) if plan else None, json_out.parent / (json_out.stem + "-export"))
    graph.steps = steps
    toggles = load_activity(graph, activity) if activity else None
    cfg = CostConfig(device=device, target=target, clock_mhz=clock_mhz, max_fifo_depth=max_fifo_depth)
    report = cost_report(graph, cfg, toggles)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n")
    plot_report(report, json_out.with_suffix(".png"))
    e = report["energy_per_image_uj"]
    typer.echo(f"{report['device']}: II {report['cycles_per_step']['ii']:,} / latency {report['cycles_per_step']['latency']:,} "
               f"cycles per step, {report['seconds_per_image'] * 1e3:.1f} ms and {e['fpga'] / 1e3:.2f} mJ per image "
               f"(ASIC 45 nm: {e['asic45nm']:.1f} uJ); fits: {report['fits']} {report['resources']}")
    if report["deadlocks"]:
        worst = max(report["deadlocks"], key=lambda f: f["depth"])
        raise RuntimeError(f"deadlock: {len(report['deadlocks'])} FIFO(s) need more than {max_fifo_depth} elements, "
                           f"e.g. {worst['producer']} -> {worst['consumer']} needs {worst['depth']} (report: {json_out})")


@app.command()
@user_errors
def rtl(
    source: Path = GRAPH_SOURCE_ARG,
    block: str = typer.Option(..., help="the block to build: every dataflow node named PREFIX..., with its joins; "
                                     "'all': the whole denoiser (every node but the host's)"),
    out: Path = typer.Option(..., "--out", help="directory for the Verilog top, memory files and the simulation"),
    plan: Path = typer.Option(None, help="precision plan, for a float model directory"),
    lanes: int = typer.Option(1, help="PE/SIMD of every node of the block (0: keep the graph's folding; data-width "
                                      "converters join nodes folded differently)"),
    steps: int = typer.Option(50, help="DDIM steps: the rows of the timestep tables"),
    verify: bool = typer.Option(False, "--verify", help="simulate it against the integer simulator"),
    samples: int = typer.Option(20, help="random (x, t) inputs for --verify"),
    sim: str = typer.Option("icarus", help="icarus, verilator, or ecp5-netlist (Yosys' ECP5 netlist on Icarus: the post-synthesis check)"),
    bench: str = typer.Option("cocotb", help="cocotb (also measures each node's toggle rate) or file (a Verilog-only "
                                             "bench, for whole denoisers; Icarus or Verilator)"),
    backpressure: bool = typer.Option(True, help="random input gaps and output stalls in --verify; without them the "
                                                  "file bench measures latency and sustained II against the schedule's"),
):
    """Generate a stitched Verilog design of one block of a dataflow graph (and check it with --verify)."""
    import json

    from hwsim.dataflow.mapping import load_dataflow
    from hwsim.diffusion.samplers import make_scheduler
    from hwsim.diffusion.schedule import NoiseSchedule
    from hwsim.quant.plan import load_plan
    from hwsim.rtlgen.stitch import block_nodes, fold_uniform, generate, verify as verify_block

    graph = load_dataflow(source, steps, load_plan(plan) if plan else None, out / "export")
    scheduler = make_scheduler("ddim", NoiseSchedule())
    scheduler.set_timesteps(steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    names = [n.name for n in graph.nodes if not n.op_type.startswith("Host")] if block == "all" \
        else block_nodes(graph, block)
    if verify:
        report = verify_block(graph, names, out, timesteps, samples, sim, lanes=lanes or None, bench=bench,
                              backpressure=backpressure)
        (out / "verify.json").write_text(json.dumps(report, indent=2) + "\n")
        typer.echo(f"{report['nodes']} nodes on {sim}, {samples} inputs: "
                   f"{'bit-exact' if report['bit_exact'] else 'MISMATCH ' + str(report['mismatched_words'])}")
        if "measured" in report:  # the schedule is the whole graph's: a block's numbers stand alone
            modelled = report["modelled"] if block == "all" else {}
            typer.echo("measured " + ", ".join(f"{k} {v:,} cycles" + (f" (modelled {modelled[k]:,})" if modelled else "")
                                               for k, v in report["measured"].items()))
        if not report["bit_exact"]:
            raise RuntimeError(f"{block}: the RTL differs from the simulator (report: {out / 'verify.json'})")
    else:
        if lanes:
            fold_uniform(graph, names, lanes)
        design = generate(graph, names, out, timesteps)
        typer.echo(f"{len(names)} nodes written to {design.top} (ports: "
                   f"{', '.join(p.name for p in design.inputs + design.tables + design.groups + design.outputs)})")


@app.command()
@user_errors
def bitstream(
    design: Path = typer.Argument(..., help="generated design directory (design.json, from `hwsim rtl`)"),
    device: str = typer.Option("ecp5-85f", help="ecp5-85f or ice40-hx8k"),
    out: Path = typer.Option(..., "--out", help="directory for the bitstream, logs and report.json"),
    freq: float = typer.Option(None, "--freq", help="clock target in MHz (default: 100 on ECP5, 50 on iCE40)"),
    seeds: int = typer.Option(3, help="nextpnr seeds (Fmax median and best over them)"),
    first_seed: int = typer.Option(1, help="the first nextpnr seed (seeds run first-seed, first-seed + 1, ...)"),
    allow_timing_fail: bool = typer.Option(False, "--allow-timing-fail", help="exit 0 even if no seed meets --freq"),
    pnr_arg: list[str] = typer.Option([], "--pnr-arg", help="extra nextpnr argument, repeatable "
                                      "(e.g. --pnr-arg=--router --pnr-arg=router2)"),
):
    """Synthesize, place and route (over seeds) and pack a generated design with the open FPGA tools.
    Rerun with the same --out, finished steps whose inputs are unchanged are reused."""
    from hwsim.bitstream import BitstreamError, build

    try:
        r = build(design, device, out, freq, seeds, allow_timing_fail=allow_timing_fail, pnr_extra=tuple(pnr_arg),
                  first_seed=first_seed)
    except BitstreamError as err:  # user_errors prints the first line; the quoted log lines go before it
        typer.echo("\n".join(str(err).splitlines()[1:]), err=True)
        raise
    mult = "mult18" if "mult18" in r else "dsps"
    typer.echo(f"{r['device']}: {r['luts']} LUTs, {r['ffs']} FFs, {r[mult]} {mult}, {r['brams']} BRAMs; "
               f"Fmax {r['fmax_mhz']['best']:.1f} MHz best, {r['fmax_mhz']['median']:.1f} median over {seeds} seed(s) "
               f"(target {r['target_mhz']:g}); {r['bitstream_bytes']:,} bytes in {out / r['bitstream']}")


@app.command()
@user_errors
def sweep(
    experiment: Path = typer.Argument(..., help="experiment YAML (docs/sweeps.md)"),
    out: Path = typer.Option(..., "--out", help="output directory: results.jsonl and work/; rerun to resume"),
    workers: int = typer.Option(1, help="points run at once on a local process pool (0: in this process)"),
    threads: int = typer.Option(None, help="torch/BLAS threads per point (default: cores / workers)"),
    ray: bool = typer.Option(False, "--ray", help="run the points on Ray (RAY_ADDRESS, else a local cluster)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check the file, print the estimate and the points; run nothing"),
):
    """Run or resume a sweep: each point quantizes, measures FID through the integer simulator, maps and
    costs the design, and appends one row keyed by its config hash (docs/sweeps.md)."""
    from hwsim.sweep import run_sweep

    run_sweep(experiment, out, workers=workers, ray=ray, threads=threads, dry_run=dry_run)


@app.command()
@user_errors
def report(
    sweep_dir: Path = typer.Argument(..., help="sweep output directory (results.jsonl, from 'hwsim sweep')"),
    out: Path = typer.Option(None, "--out", help="HTML page to write (default DIR/report.html); its PNGs go beside it"),
    skip_damaged: bool = typer.Option(False, "--skip-damaged", help="list lines the sweep ignores (not JSON, bad "
                                                                   "checksum) in the page instead of failing"),
    markdown: Path = typer.Option(None, "--markdown", help="also write every point as a markdown table here"),
):
    """Write an HTML report of a sweep: Pareto fronts of FID vs energy and vs latency per image, every
    point's metrics and its provenance (docs/sweeps.md)."""
    from hwsim.sweep.report import write_markdown, write_report

    page = write_report(sweep_dir, out, skip_damaged=skip_damaged)  # the page names this command
    typer.echo(f"report written to {page}")
    if markdown is not None:
        typer.echo(f"table written to {write_markdown(sweep_dir, markdown, skip_damaged)}")


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks, as speed ratios measured in one run.")
app.add_typer(bench_app, name="bench")


@bench_app.command("intsim")
@user_errors
def bench_intsim_cmd(
    model: Path = typer.Option(..., "--model", help="model directory"),
    json_out: Path = typer.Option(..., "--json", help="report file"),
    batch: list[int] = typer.Option([1, 64], help="batch sizes (repeatable)"),
    precision: list[str] = typer.Option(["W8A8", "W4A8"], help="uniform precisions, e.g. W4A8 (repeatable)"),
    repeats: int = typer.Option(3, help="timed calls per measurement (minimum kept)"),
    qonnx: bool = typer.Option(True, help="also time qonnx execute_onnx on the Brevitas QONNX export"),
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
):
    """Simulator vs PyTorch fp32, Brevitas fake-quant and qonnx execute_onnx on one denoiser forward."""
    from hwsim.bench import BenchConfig, bench_intsim, parse_precision, write_report
    from hwsim.evaluate import set_threads

    for p in precision:
        parse_precision(p)
    set_threads(threads)
    work = json_out.parent / (json_out.stem + "-graphs")
    report = bench_intsim(model, work, BenchConfig(batch_sizes=tuple(batch), precisions=tuple(precision), repeats=repeats),
                          with_qonnx=qonnx)
    write_report(report, json_out)
    for r in report["rows"]:
        extra = f", vs qonnx {r['intsim_vs_qonnx_exec']:.1f}x" if "intsim_vs_qonnx_exec" in r else ""
        typer.echo(f"{r['precision']} batch {r['batch']}: intsim vs torch fp32 {r['intsim_vs_torch_fp32']:.2f}x, "
                   f"vs brevitas {r['intsim_vs_brevitas']:.2f}x{extra}; bit-exact {r['bit_exact']}")


@app.command()
@user_errors
def card(
    model: Path = MODEL_ARG,
    samples: int = typer.Option(5000, help="samples for classifier-FID"),
    inception_samples: int = typer.Option(1000, help="first N samples also scored with Inception (0: skip)"),
    steps: int = typer.Option(50, help="DDIM steps"),
    seed: int = typer.Option(0, help="seed"),
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
):
    """Evaluate a zoo model (eval.json) and write its card.md."""
    from hwsim.card import evaluate_model, write_card
    from hwsim.evaluate import set_threads

    set_threads(threads)
    evaluate_model(model, samples, inception_samples, steps, seed)
    typer.echo(f"card written to {write_card(model)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
