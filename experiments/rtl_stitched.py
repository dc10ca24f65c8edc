"""Stitched RTL blocks of the shipped denoisers against the integer simulator (issue 6): the U-Net
residual block mid.blocks.0 of unet-digits at W8A8 (GroupNorm, SiLU tables, padded 3x3 convolutions,
per-timestep bias, requantization, skip add), 20 random inputs, random back-pressure, Icarus.

    python experiments/rtl_stitched.py     # writes experiments/results/rtl/stitched.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hwsim.dataflow.mapping import load_dataflow
from hwsim.diffusion.samplers import make_scheduler
from hwsim.modeldir import load_model
from hwsim.provenance import provenance
from hwsim.quant.plan import PrecisionPlan
from hwsim.rtlgen.stitch import block_nodes, verify

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = [("unet-digits", "W8A8", "mid.blocks.0", 8), ("unet-digits", "W4A8", "down.1.blocks.0", 8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/rtl/stitched.json")
    parser.add_argument("--work", type=Path, default=ROOT / "out/rtl_stitched")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    rows = []
    for model, precision, block, lanes in BLOCKS:
        w, a = (int(v) for v in precision[1:].split("A"))
        work = args.work / f"{model}-{precision.lower()}"
        graph = load_dataflow(ROOT / "models" / model, args.steps, PrecisionPlan.uniform(w, a), work / "export")
        scheduler = make_scheduler("ddim", load_model(ROOT / "models" / model).noise_schedule())
        scheduler.set_timesteps(args.steps)
        names = block_nodes(graph, block)
        started = time.time()
        report = verify(graph, names, work / block, [int(t) for t in scheduler.timesteps], args.samples, "icarus",
                        seed=0, backpressure=True, lanes=lanes)
        report.update(model=model, precision=precision, block=block, lanes=lanes, seconds=round(time.time() - started, 1),
                      node_types=sorted({graph.node(n).op_type for n in names}))
        report.pop("top")
        rows.append(report)
        print(json.dumps(report), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "provenance": provenance()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
