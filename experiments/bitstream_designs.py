"""Bitstreams of stitched designs (issue 7, part 4b-4d) on the ECP5-85F: a U-Net residual block of
unet-digits, the whole unet-digits denoiser, and the largest share of the 28x28 unet-fashion's MACs
that fits (a contiguous run of its pipeline, hwsim.bitstream.share), and the residual block at W8A6
with one activation scale per layer and with one per timestep quarter (T4: every scale-dependent
table held four times, selected per evaluation; issue 8), each beside the resource
model's estimate of the same design (hwsim.bitstream.calibrate.stitched_model: its nodes, the forks
and converters stitching inserts, its FIFOs) and the cost model's verdict on whether it fits.

    python experiments/bitstream_designs.py [--only NAME ...] [--seeds N] [--freq MHz]
    python experiments/bitstream_designs.py --report   # designs.md again from designs.json (after merging rows)

Foldings: ``mapped`` keeps `hwsim map`'s folding (every PE and SIMD 1); ``device`` is
`fold_to_device`'s, the fastest folding the cost model says fits the device, FIFOs included.
Resumable: finished rows are kept in designs.json (rewritten after each) and not rebuilt. Builds run
one at a time (docs/bitstreams.md); their directories stay under --work.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hwsim.bitstream.flow import table_row
from hwsim.bitstream.calibrate import stitched_model
from hwsim.bitstream.share import largest_window
from hwsim.dataflow.folding import design_fits, fold_to_device
from hwsim.dataflow.mapping import load_dataflow
from hwsim.dataflow.resources import load_device
from hwsim.diffusion.samplers import make_scheduler
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.plan import PrecisionPlan, parse_shorthand
from hwsim.rtlgen.stitch import block_nodes, generate
from hwsim.sweep.store import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
WHOLE = "*"  # every node but the host's
SHARE = "share"  # the contiguous run of nodes with the most MACs that fits (hwsim.bitstream.share)
DESIGNS = [  # (name, model, precision, block prefix, WHOLE or SHARE, folding)
    ("unet-digits-w8a8-mid.blocks.0", "unet-digits", "W8A8", "mid.blocks.0", "mapped"),
    ("unet-digits-w8a8-whole", "unet-digits", "W8A8", WHOLE, "device"),
    ("unet-fashion-w8a8-share", "unet-fashion", "W8A8", SHARE, "mapped"),
    ("unet-digits-w8a6-mid.blocks.0", "unet-digits", "W8A6", "mid.blocks.0", "mapped"),
    ("unet-digits-w8a6t4-mid.blocks.0", "unet-digits", "W8A6T4", "mid.blocks.0", "mapped"),
]
REPORT_KEYS = ("luts", "ffs", "brams", "fmax_mhz", "timing_met", "target_mhz", "design_only", "macs", "graph_macs",
               "macs_share", "bitstream_bytes", "critical_path", "step_seconds", "nextpnr_args", "reused_steps")


def largest_share(graph, device, design, timesteps: list[int]) -> tuple[list[str], dict]:
    """The largest-MAC window of ``graph`` whose stitched design fits ``device`` (generated into
    ``design``): the window search's headroom for stitching grows until the exact price fits."""
    for headroom in (0.08, 0.12, 0.16, 0.2, 0.25, 0.3):
        window = largest_window(graph, device, headroom)
        generate(graph, window.names, design, timesteps)
        _, model = stitched_model(graph, window.names, design, device)
        if all(model[k] <= getattr(device.budget, b) for k, b in
               (("lut", "lut"), ("ff", "ff"), ("mult18", "mult"), ("bram", "bram"))):
            return window.names, {"headroom": headroom, "first": window.names[0], "last": window.names[-1],
                                  "nodes_estimate": window.estimate.to_dict(), "window_macs": window.macs}
    raise SystemExit(f"no window of {len(graph.nodes)} nodes fits {device.name} once stitched")


def design_graph(model: str, precision: str, args):
    """The denoiser's mapped dataflow graph at ``precision`` (its export cached in ``args.work``)."""
    plan = parse_shorthand(precision, weight_granularity=PrecisionPlan().default.weight_granularity)
    return load_dataflow(ROOT / "models" / model, args.steps, plan, args.work / f"{model}-{precision}")


def sampler_timesteps(model: str, steps: int) -> list[int]:
    """The DDIM timesteps whose per-timestep tables a stitched design holds."""
    scheduler = make_scheduler("ddim", load_model(ROOT / "models" / model).noise_schedule())
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def design_nodes(graph, row: dict) -> list[str]:
    """The graph nodes a built row stitched: all but the host's, a block's, or its share's run."""
    if row["block"] == WHOLE:
        return [n.name for n in graph.nodes if not n.op_type.startswith("Host")]
    if row["block"] == SHARE:
        order = [n.name for n in graph.nodes]
        first, last = order.index(row["share_search"]["first"]), order.index(row["share_search"]["last"])
        return order[first:last + 1]
    return block_nodes(graph, row["block"])


def remodel(args) -> None:
    """The resource model's estimate of every built row whose design is kept in ``args.work`` (its
    nodes at its folding), written over the row's ``model`` with its own provenance
    (``model_provenance``); rows without a kept design are left as they are, and so are rows whose
    kept design is not what this checkout's stitcher makes of them (another folding or RTL): the
    model would price another design."""
    import tempfile

    from hwsim.rtlgen.stitch import load_manifest

    path = args.results / "designs.json"
    data = json.loads(path.read_text())
    device = load_device(args.device)
    for row in data["rows"]:
        design = args.work / row["name"] / "design"
        if (args.only and row["name"] not in args.only) or not design.is_dir():
            continue
        graph = design_graph(row["denoiser"], row["precision"], args)
        if row["folding"] == "device":
            fold_to_device(graph, device)
        names = design_nodes(graph, row)
        top = load_manifest(design)["top_file"]
        with tempfile.TemporaryDirectory() as again:
            generate(graph, names, Path(again), sampler_timesteps(row["denoiser"], args.steps))
            body = [(d / top).read_text().split("\n", 1)[1] for d in (Path(again), design)]  # after the header naming the graph's path
            if body[0] != body[1]:
                print(f"{row['name']}: the kept design is not what this checkout generates; rebuild it", flush=True)
                continue
        _, model = stitched_model(graph, names, design, device)
        print(f"{row['name']}: model {row['model']} -> {model}", flush=True)
        row.update(model=model, model_provenance=provenance())
    atomic_write_json(path, data)
    (args.results / "designs.md").write_text(markdown(data["rows"], data))


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Stitched designs on {meta['device']}", "",
             f"`{meta['command']}` (docs/bitstreams.md); Yosys + nextpnr (the row's seeds, target "
             f"{meta['target_mhz']:g} MHz) + ecppack through the yowasp packages. *model* is the calibrated ECP5 "
             "resource model's estimate of the same stitched design (nodes, forks, converters, FIFOs); the "
             "build's LUT/FF include the wrapper (LFSR stimulus, output fold), *design LUT* subtracts it.", "",
             "| design | folding | nodes | LUT | design LUT | model LUT | FF | MULT18 (model) | BRAM (model) | seeds | "
             "Fmax median | Fmax best | MACs share | s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        m = r["model"]
        if "error" in r:
            lines.append(f"| {r['name']} | {r['folding']} | {r['nodes']} | {r['error'].splitlines()[0]} | | "
                         f"{m['lut']:.0f} | | ({m['mult18']}) | ({m['bram']}) | | | | | {r['seconds']:.0f} |")
            continue
        lines.append(f"| {r['name']} | {r['folding']} | {r['nodes']} | {r['luts']} | {r['design_only']['luts']} | "
                     f"{m['lut']:.0f} | {r['ffs']} | {r['mult18']} ({m['mult18']}) | {r['brams']} ({m['bram']}) | "
                     f"{', '.join(r['fmax_mhz']['per_seed'])} | "
                     f"{r['fmax_mhz']['median']:.1f} | {r['fmax_mhz']['best']:.1f} | {r['macs_share']:.3f} | "
                     f"{r['seconds']:.0f} |")
    commits = sorted({r["provenance"]["git_commit"] for r in rows})
    lines += ["", f"git {', '.join(commits)}; tools {json.dumps(meta['tool_versions'])}."]
    remodelled = [f"{r['name']} at {r['model_provenance']['git_commit'][:12]}" for r in rows if "model_provenance" in r]
    if remodelled:
        lines.append(f"The model column recomputed from the kept designs with a later resource model (`--remodel`): "
                     f"{', '.join(remodelled)}.")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="ecp5-85f")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=1,
                        help="the first nextpnr seed (per row: the row's fmax_mhz.per_seed names its seeds)")
    parser.add_argument("--freq", type=float, default=100.0, help="nextpnr's clock target (MHz)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--only", nargs="*", help="design names to build (default: all)")
    parser.add_argument("--pnr-arg", action="append", default=[],
                        help="extra nextpnr argument, repeatable (e.g. --pnr-arg=--router --pnr-arg=router2)")
    parser.add_argument("--results", type=Path, default=ROOT / "experiments/results/bitstreams")
    parser.add_argument("--work", type=Path, default=ROOT / "out/bitstream_designs")
    parser.add_argument("--report", action="store_true", help="only rebuild designs.md from designs.json")
    parser.add_argument("--remodel", action="store_true",
                        help="recompute the model column of built rows from their designs kept in --work")
    args = parser.parse_args()
    from hwsim.bitstream.tools import tool_versions

    if args.report:  # e.g. after rows built into separate --results directories were merged
        data = json.loads((args.results / "designs.json").read_text())
        (args.results / "designs.md").write_text(markdown(data["rows"], data))
        return

    if args.remodel:  # after the resource model changed: the builds stand, their estimates are redone
        remodel(args)
        return

    meta = {"device": args.device, "seeds": args.seeds, "target_mhz": args.freq, "steps": args.steps,
            "command": "python experiments/bitstream_designs.py", "tool_versions": tool_versions()}
    path = args.results / "designs.json"
    kept = json.loads(path.read_text()) if path.is_file() else {}
    rows = kept.get("rows", []) if {k: kept.get(k) for k in meta} == meta else []
    device = load_device(args.device)
    for name, model, precision, block, folding in DESIGNS:
        if (args.only and name not in args.only) or name in {r["name"] for r in rows}:
            continue
        work = args.work / name
        graph = design_graph(model, precision, args)
        row = {"name": name, "denoiser": model, "precision": precision, "block": block, "folding": folding}
        if folding == "device":
            result = fold_to_device(graph, device)
            row["cost_model"] = {"target_cycles": result.target_cycles, "fits": design_fits(graph, device)}
        timesteps = sampler_timesteps(model, args.steps)
        if block == SHARE:
            names, row["share_search"] = largest_share(graph, device, work / "design", timesteps)
        else:
            names = design_nodes(graph, row)
            generate(graph, names, work / "design", timesteps)
        parts, row["model"] = stitched_model(graph, names, work / "design", device)
        row["nodes"] = sum(p["op_type"] != "FIFO" for p in parts)
        row["fifos"] = len(parts) - row["nodes"]
        row.update(table_row(work / "design", args.device, work / args.device, args.freq, args.seeds, REPORT_KEYS,
                             tuple(args.pnr_arg), args.first_seed))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("critical_path", "provenance")}), flush=True)
        atomic_write_json(path, {**meta, "rows": rows})
        (args.results / "designs.md").write_text(markdown(rows, meta))
    print(f"written {path} and designs.md", flush=True)


if __name__ == "__main__":
    main()
