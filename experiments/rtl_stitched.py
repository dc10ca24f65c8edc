"""Stitched RTL of the shipped denoisers against the integer simulator (issue 6), 20 random (x, t)
inputs each: U-Net residual blocks of unet-digits (GroupNorm, SiLU tables, padded 3x3 convolutions,
per-timestep bias, requantization, skip add) under random back-pressure, its attention block
(GroupNorm, qkv, QK^T and AV on the dynamic MVAU, integer softmax, projection, residual), a whole
DiT block of dit-fashion (adaLN, attention, MLP, gates), and whole denoisers (every node but the
host's) through the Verilog-only bench without back-pressure, whose measured cycles (last output
of 20 evaluations back to back; ``measured``: the first evaluation's last output, and the mean
interval between evaluations' last outputs) stand beside the schedule's latency and sustained II
(``modelled``: the whole mapped graph's schedule at the row's folding, so only the whole-denoiser
rows compare).

    python experiments/rtl_stitched.py [--only NAME ...]   # writes experiments/results/rtl/stitched.json
                                                           # (resumable: finished rows are kept)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hwsim.dataflow.folding import fold_to_cycles
from hwsim.dataflow.mapping import load_dataflow
from hwsim.diffusion.samplers import make_scheduler
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.plan import PrecisionPlan
from hwsim.rtlgen.stitch import block_nodes, verify

ROOT = Path(__file__).resolve().parent.parent
WHOLE = "*"  # every node but the host's
BLOCKS = [  # (model, precision, block prefix, folding, back-pressure, bench, simulator); folding: lanes
    # everywhere, or "cycles:N", hwsim's folding search to N cycles per evaluation (converters join the
    # foldings); whole denoisers on Verilator, which compiles them once and runs them far faster than Icarus
    ("unet-digits", "W8A8", "mid.blocks.0", 8, True, "cocotb", "icarus"),
    ("unet-digits", "W4A8", "down.1.blocks.0", 8, True, "cocotb", "icarus"),
    ("unet-digits", "W8A8", "down.1.attns.0", 1, True, "cocotb", "icarus"),
    ("dit-fashion", "W8A8", "blocks.0.", "cycles:20000", True, "file", "icarus"),
    ("unet-digits", "W8A8", WHOLE, "cycles:20000", False, "file", "verilator"),
    ("dit-fashion", "W8A8", WHOLE, "cycles:20000", False, "file", "verilator"),
]


def block_name(model: str, precision: str, block: str) -> str:
    return f"{model}-{precision.lower()}-{'whole' if block == WHOLE else block.rstrip('.')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/rtl/stitched.json")
    parser.add_argument("--work", type=Path, default=ROOT / "out/rtl_stitched")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--only", nargs="*", help="names of the rows to run (model-precision-block)")
    args = parser.parse_args()
    # resumable: finished rows are kept (the file is rewritten after each row) and not rerun
    rows = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    for model, precision, block, folding, backpressure, bench, sim in BLOCKS:
        name = block_name(model, precision, block)
        if (args.only and name not in args.only) or name in {r["name"] for r in rows}:
            continue
        w, a = (int(v) for v in precision[1:].split("A"))
        work = args.work / f"{model}-{precision.lower()}"
        graph = load_dataflow(ROOT / "models" / model, args.steps, PrecisionPlan.uniform(w, a), work / "export")
        scheduler = make_scheduler("ddim", load_model(ROOT / "models" / model).noise_schedule())
        scheduler.set_timesteps(args.steps)
        names = [n.name for n in graph.nodes if not n.op_type.startswith("Host")] if block == WHOLE \
            else block_nodes(graph, block)
        lanes = folding if isinstance(folding, int) else None
        if lanes is None:
            fold_to_cycles(graph, int(folding.split(":")[1]))
        started = time.time()
        report = verify(graph, names, work / name, [int(t) for t in scheduler.timesteps], args.samples, sim,
                        seed=0, backpressure=backpressure, lanes=lanes, bench=bench)
        report.update(name=name, model=model, precision=precision, block=block, folding=folding,
                      backpressure=backpressure, provenance=provenance(),
                      seconds=round(time.time() - started, 1), node_types=sorted({graph.node(n).op_type for n in names}))
        report.pop("top")
        rows.append(report)
        print(json.dumps({k: v for k, v in report.items() if k != "activity"}), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rows": rows, "provenance": provenance()}, indent=2) + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
