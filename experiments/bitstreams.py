"""Real bitstreams of single dataflow nodes (issue 7, part 4a): one node of every type that has RTL,
taken from a shipped denoiser (default unet-digits at W8A8, folding 1 as `hwsim map` gives it),
each generated as a stand-alone design, wrapped (LFSR stimulus, output fold) and built through Yosys,
nextpnr (several seeds) and ecppack on the LFE5U-85F.

    python experiments/bitstreams.py                  # experiments/results/bitstreams/nodes.{json,md}
    python experiments/bitstreams.py --only MVAU Requant --seeds 1 --results out/bitstreams
    python experiments/bitstreams.py --rebuild GroupNorm   # after rtl/groupnorm changed: its row built again

Each node is the first of its type in the model's middle block (lowest resolution) when it has one
there, else the first in the graph. Builds run one at a time; their directories (bitstream, logs,
report.json) stay under --work. LUT and FF counts include the wrapper; ``design_only`` subtracts the
wrapper's own cost measured around a black box (docs/bitstreams.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hwsim.bitstream.flow import table_row
from hwsim.dataflow.mapping import load_dataflow
from hwsim.diffusion.samplers import make_scheduler
from hwsim.modeldir import load_model
from hwsim.quant.plan import PrecisionPlan
from hwsim.rtlgen.stitch import StitchError, fold_uniform, generate
from hwsim.sweep.store import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
REPORT_KEYS = ("luts", "ffs", "brams", "fmax_mhz", "design_only", "wrapper", "critical_path", "macs_share", "bitstream_bytes")
CONFIG_KEYS = ("MW", "MH", "PE", "SIMD", "NumChannels", "IFMChannels", "groups", "EmbeddingDim", "ChannelsPerStream",
               "ImgDim", "IFMDim", "ConvKernelDim", "HI", "WI", "NumOutputStreams", "heads", "sparsityN", "sparsityM")


def kind(node) -> str:
    """Node type, with the RTL variants that differ in hardware told apart."""
    if node.op_type == "MVAU" and node.dynamic():
        return "MVAU (dynamic)"
    if node.op_type.startswith("Elementwise") and node.attrs.get("rhs_style") != "const" and node.rhs_stored():
        return f"{node.op_type} (broadcast)"
    return node.op_type


def pick_nodes(graph, prefer: str = "mid.") -> dict[str, str]:
    """{type: node name}: the first node of each type under ``prefer``, else the first in the graph."""
    picked: dict[str, str] = {}
    for first_pass in (True, False):
        for n in graph.nodes:
            if n.op_type in ("HostInput", "HostOutput"):
                continue
            if first_pass and not n.name.startswith(prefer):
                continue
            picked.setdefault(kind(n), n.name)
    return picked


def config(node, manifest: dict) -> dict:
    cfg = {k: node.attrs[k] for k in CONFIG_KEYS if k in node.attrs}
    for k in ("inputDataType", "weightDataType", "outputDataType", "lhs_dtype", "rhs_dtype", "out_dtype"):
        if k in node.attrs:
            cfg[k] = node.attrs[k]
    cfg["ports"] = {p["name"]: f"{p['lanes']}x{p['bits']}b" for p in manifest["ports"]}
    return cfg


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Single-node bitstreams: {meta['model']} {meta['precision']} on {meta['device']}", "",
             f"Yosys + nextpnr ({meta['seeds']} seed(s), target {meta['target_mhz']:g} MHz) + ecppack through the "
             "yowasp packages; `python experiments/bitstreams.py` (docs/bitstreams.md). LUT/FF include the "
             "wrapper (LFSR stimulus, output fold); *design LUT/FF* subtract its cost measured around a black box. "
             "Fmax is nextpnr's post-route estimate (median / best over seeds).", "",
             "| node type | node | config | LUT | FF | MULT18 | BRAM | design LUT | design FF | Fmax median | Fmax best | s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items() if k != "ports")
        if "error" in r:
            lines.append(f"| {r['type']} | `{r['node']}` | {cfg} | {r['error'].splitlines()[0]} ||||||||")
            continue
        lines.append(f"| {r['type']} | `{r['node']}` | {cfg} | {r['luts']} | {r['ffs']} | {r['mult18']} | {r['brams']} | "
                     f"{r['design_only']['luts']} | {r['design_only']['ffs']} | {r['fmax_mhz']['median']:.1f} | "
                     f"{r['fmax_mhz']['best']:.1f} | {r['seconds']:.0f} |")
    commits = sorted({r["provenance"]["git_commit"] for r in rows if "provenance" in r})
    lines += ["", f"git {', '.join(commits)}; tools {json.dumps(meta['tool_versions'])}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet-digits")
    parser.add_argument("--precision", default="W8A8")
    parser.add_argument("--device", default="ecp5-85f")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--freq", type=float, default=100.0, help="nextpnr's clock target (MHz)")
    parser.add_argument("--lanes", type=int, default=1, help="PE/SIMD of every built node")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--only", nargs="*", help="node types to build (default: every type with RTL)")
    parser.add_argument("--rebuild", nargs="*", default=[], metavar="TYPE",
                        help="drop these node types' rows and build them again (after their RTL changed)")
    parser.add_argument("--results", type=Path, default=ROOT / "experiments/results/bitstreams")
    parser.add_argument("--work", type=Path, default=ROOT / "out/bitstreams")
    args = parser.parse_args()

    w, a = (int(v) for v in args.precision.upper()[1:].split("A"))
    graph = load_dataflow(ROOT / "models" / args.model, args.steps, PrecisionPlan.uniform(w, a), args.work / "export")
    scheduler = make_scheduler("ddim", load_model(ROOT / "models" / args.model).noise_schedule())
    scheduler.set_timesteps(args.steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    from hwsim.bitstream.devices import get_device
    from hwsim.bitstream.tools import tool_versions

    meta = {"model": args.model, "precision": args.precision.upper(), "device": args.device,
            "part": get_device(args.device).part, "seeds": args.seeds, "target_mhz": args.freq, "lanes": args.lanes,
            "steps": args.steps, "command": "python experiments/bitstreams.py", "tool_versions": tool_versions()}
    path = args.results / "nodes.json"
    # resumable: rows of the same settings already written are kept and not rebuilt
    kept = json.loads(path.read_text()) if path.is_file() else {}
    same = {k: kept.get(k) for k in meta} == meta
    rows = [r for r in (kept.get("rows", []) if same else []) if r["type"] not in args.rebuild]
    done = {r["type"] for r in rows}
    for node_type, name in pick_nodes(graph).items():
        if (args.only and node_type not in args.only and node_type.split(" ")[0] not in args.only) or node_type in done:
            continue
        slug = node_type.lower().replace(" ", "_").replace("(", "").replace(")", "")
        design_dir, out = args.work / slug / "design", args.work / slug / args.device
        node = graph.node(name)
        try:
            if args.lanes > 1:
                fold_uniform(graph, [name], args.lanes)
            generate(graph, [name], design_dir, timesteps)
        except (StitchError, ValueError) as err:  # no RTL for this type (yet)
            print(f"skip {node_type} ({name}): {err}", flush=True)
            continue
        manifest = json.loads((design_dir / "design.json").read_text())
        row = {"type": node_type, "node": name, "config": config(node, manifest)}
        row.update(table_row(design_dir, args.device, out, args.freq, args.seeds, REPORT_KEYS))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("config", "critical_path", "wrapper", "provenance")}),
              flush=True)
        atomic_write_json(path, {**meta, "rows": rows})
        (args.results / "nodes.md").write_text(markdown(rows, meta))
    print(f"written {path} and nodes.md", flush=True)


if __name__ == "__main__":
    main()
