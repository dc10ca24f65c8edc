"""The cost report (``hwsim cost``): fold a dataflow graph to a target, then price it per node, per
denoiser step and per generated image: cycles, on-chip bits, resources, energy.

Per image = the sampler's steps, run one after another (step k+1 needs step k's eps), each one
denoiser evaluation on the accelerator plus the host's sampler update (:func:`energy.host_update_pj`;
its time at ``host_gflops``). ``cycles_per_image`` is that sequential latency;
``cycles_per_image_pipelined`` is the throughput bound with enough images in flight (steps x the
II the FIFOs sustain for back-to-back evaluations, :func:`hwsim.dataflow.schedule.sustained_ii`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwsim.config import from_dict
from hwsim.dataflow.energy import AsicModel, FpgaModel, host_update_pj, load_tech
from hwsim.dataflow.folding import assign_multipliers, fold_to_cycles, fold_to_device
from hwsim.dataflow.graph import DataflowGraph
from hwsim.dataflow.resources import Resources, estimate, fifo_memory, load_device, total
from hwsim.dataflow.schedule import deadlocks, schedule
from hwsim.provenance import provenance

FPGA_TECH = {"ecp5": "ecp5", "xilinx7": "xc7"}


@dataclass(frozen=True)
class CostConfig:
    device: str = "ecp5-85f"  # devices/*.yaml
    target: str = "device"  # "device" (fastest folding that fits) or cycles per step, e.g. "100000"
    clock_mhz: float = 100.0
    asic_tech: str = "asic45nm"  # tech/*.yaml for the ASIC operation-energy model
    host_gflops: float = 1.0  # fp32 rate of the host running the sampler update (an embedded core)
    max_fifo_depth: int | None = None  # FIFO cap for the deadlock check (None: FIFOs sized to need)

    @classmethod
    def from_dict(cls, data: dict) -> "CostConfig":
        return from_dict(cls, data, "cost config")


def _fold(graph: DataflowGraph, cfg: CostConfig) -> dict:
    device = load_device(cfg.device)
    if cfg.target == "device":
        result = fold_to_device(graph, device)
    else:
        try:
            cycles = int(cfg.target)
        except ValueError:
            raise ValueError(f"target {cfg.target!r}: expected 'device' or a number of cycles per step") from None
        result = fold_to_cycles(graph, cycles)
        assign_multipliers(graph, device)
    return {"target_cycles": result.target_cycles, "missed": result.missed}


def activity_from_stats(graph: DataflowGraph, stats: dict[str, dict]) -> dict[str, float]:
    """Per dataflow node: the measured toggle rate per bit of its integer node's output stream."""
    out = {}
    for node in graph.nodes:
        for source in node.source.split("+"):
            s = stats.get(source)
            if s and s.get("declared_bits"):
                out[node.name] = s["toggles_per_value"] / s["declared_bits"]
    return out


def load_activity(graph: DataflowGraph, path: str | Path) -> dict[str, float]:
    """Toggle rates per dataflow node from ``hwsim sim --stats`` (the simulator's values) or from
    ``hwsim rtl --verify`` (the RTL's own stream words, ``activity`` in verify.json), whichever
    ``path`` holds; nodes the file does not cover keep the technology file's default."""
    import json

    data = json.loads(Path(path).read_text())
    if "activity" in data:  # measured on the stitched RTL's streams
        names = {n.name for n in graph.nodes}
        return {k: float(v) for k, v in data["activity"].items() if k in names}
    if "nodes" in data:
        return activity_from_stats(graph, data["nodes"])
    raise ValueError(f"{path}: neither simulator statistics ('nodes') nor an RTL verify report ('activity')")


def _output_elements(graph: DataflowGraph) -> int:
    sink = next(n for n in graph.nodes if not n.outputs)
    vecs, ch, _ = graph.streams[graph.stream(sink.inputs[0])]
    return math.prod(vecs) * ch


def cost_report(graph: DataflowGraph, cfg: CostConfig, activity: dict[str, float] | None = None) -> dict:
    """Fold ``graph`` (in place) to ``cfg.target`` and price it; a JSON-ready dict."""
    folding = _fold(graph, cfg)
    device = load_device(cfg.device)
    asic = AsicModel(load_tech(cfg.asic_tech))
    fpga = FpgaModel(load_tech(FPGA_TECH[device.family]), device, cfg.clock_mhz)
    sched = schedule(graph)
    activity = activity or {}
    nodes = []
    for n in graph.nodes:
        r = estimate(n, device)
        nodes.append({
            "name": n.name, "op_type": n.op_type, "source": n.source,
            "folding": {a: n.attrs[a] for a in n.FOLD}, "res_type": n.attrs.get("resType"),
            "exp_cycles": n.get_exp_cycles(), "latency": n.get_latency(),
            "macs": n.macs(), "bitops": n.bitops(), "weight_bits": n.weight_bits(), "buffer_bits": n.buffer_bits(),
            "resources": r.to_dict(), "activity": activity.get(n.name),
            "sparsity": ({"N": n.attrs.get("sparsityN", 1), "M": n.attrs.get("sparsityM", 1),
                          "break_even_density": n.break_even_density()}
                         if n.op_type == "MVAU" and not n.dynamic() else None),
            "weight_groups": (dict(zip(("group", "q_bits", "shift_bits"), n.group_shift()))
                              if n.op_type == "MVAU" and n.group_shift() else None),
            "energy_pj": {"asic45nm": asic.node_pj(n), "fpga": fpga.node_pj(n, activity.get(n.name))},
        })
    fifo_res = fifo_memory(sched.fifos, device)
    used = total(graph.nodes, device) + fifo_res
    steps = graph.steps
    host_pj, host_flops = host_update_pj(_output_elements(graph), asic)
    host_cycles = host_flops / (cfg.host_gflops * 1e9) * cfg.clock_mhz * 1e6
    step_latency = sched.latency + host_cycles
    cycles_per_image = steps * step_latency
    seconds = cycles_per_image / (cfg.clock_mhz * 1e6)
    asic_step = sum(x["energy_pj"]["asic45nm"] for x in nodes) + sum(
        asic.memory(f.bits // f.depth, f.bits) * 2 * f.depth for f in sched.fifos)  # each element in and out
    fpga_step = sum(x["energy_pj"]["fpga"] for x in nodes)
    onchip = {"weights": sum(n.weight_bits() for n in graph.nodes), "buffers": sum(n.buffer_bits() for n in graph.nodes),
              "fifos": sched.fifo_bits}
    onchip["total"] = sum(onchip.values())
    stuck = deadlocks(sched, cfg.max_fifo_depth) if cfg.max_fifo_depth is not None else []
    offchip = None if device.fits(used) else _offchip_weights(graph, device, asic, fpga, fifo_res, sched.latency, cfg)
    return {
        "config": asdict(cfg), "graph": graph.source, "steps": steps, "device": device.name, "part": device.part,
        "folding": folding,
        "cycles_per_step": {"ii": sched.ii, "ii_sustained": sched.ii_sustained, "latency": sched.latency,
                            "bottleneck": sched.bottleneck, "host_update": round(host_cycles)},
        "cycles_per_image": round(cycles_per_image), "cycles_per_image_pipelined": steps * sched.ii_sustained,
        "seconds_per_image": seconds,
        "energy_per_image_uj": {
            "fpga": (steps * (fpga_step + host_pj) + fpga.static_pj(cycles_per_image)) * 1e-6,
            "asic45nm": steps * (asic_step + host_pj) * 1e-6,
        },
        "energy_breakdown_uj": {"fpga_dynamic": steps * fpga_step * 1e-6, "fpga_static": fpga.static_pj(cycles_per_image) * 1e-6,
                                "host_update": steps * host_pj * 1e-6},
        "macs_per_step": graph.macs(), "bitops_per_step": graph.bitops(),
        "onchip_bits": onchip, "fits": device.fits(used), "resources": used.to_dict(),
        "utilization": {k: round(v, 4) for k, v in device.utilization(used).items()},
        "budget": device.budget.to_dict(),
        "offchip_weights": offchip,
        "fifos": [asdict(f) for f in sched.fifos], "deadlocks": [asdict(f) for f in stuck],
        "activity_measured": bool(activity), "nodes": nodes, "provenance": provenance(),
    }


def _offchip_weights(graph: DataflowGraph, device, asic: AsicModel, fpga: FpgaModel, fifo_res: Resources,
                     latency: int, cfg: CostConfig) -> dict:
    """The same folding with every weight matrix streamed from DRAM as the MVAUs use it (FINN's
    ``external`` mode: a weight word per cycle, no reuse across input vectors): what it frees on
    chip, and the DRAM bandwidth and energy it costs."""
    mvaus = [n for n in graph.nodes if n.op_type == "MVAU" and not n.dynamic()]
    for n in mvaus:
        n.attrs["mem_mode"] = "external"
    try:
        used = total(graph.nodes, device) + fifo_res
        dram_bits = sum(op.count * op.a for n in mvaus for op in n.op_counts() if op.kind == "io")
        asic_pj = sum(asic.node_pj(n) for n in mvaus)
        fpga_pj = sum(fpga.node_pj(n) for n in mvaus)
    finally:
        for n in mvaus:
            n.attrs["mem_mode"] = "internal_decoupled"
    internal_asic = sum(asic.node_pj(n) for n in mvaus)
    internal_fpga = sum(fpga.node_pj(n) for n in mvaus)
    seconds = latency / (cfg.clock_mhz * 1e6)
    return {"fits": device.fits(used), "resources": used.to_dict(), "dram_bits_per_step": dram_bits,
            "dram_gbit_per_s_at_step_latency": dram_bits / seconds / 1e9,
            "extra_energy_per_image_uj": {"fpga": graph.steps * (fpga_pj - internal_fpga) * 1e-6,
                                          "asic45nm": graph.steps * (asic_pj - internal_asic) * 1e-6}}


def plot_report(report: dict, out_png: str | Path, top: int = 40) -> Path:
    """Per-node bars (cycles, LUTs, block RAMs, energy) for the ``top`` nodes by cycles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = sorted(report["nodes"], key=lambda n: -n["exp_cycles"])[:top]
    labels = [n["name"][:40] for n in nodes]
    fig, axes = plt.subplots(1, 4, figsize=(16, 0.22 * len(nodes) + 1.8), sharey=True)
    series = [("exp. cycles per step", [n["exp_cycles"] for n in nodes]), ("LUT", [n["resources"]["lut"] for n in nodes]),
              ("block RAM", [n["resources"]["bram"] for n in nodes]),
              ("energy per step, FPGA [uJ]", [n["energy_pj"]["fpga"] * 1e-6 for n in nodes])]
    for ax, (title, values) in zip(axes, series):
        ax.barh(np.arange(len(nodes)), values, color="tab:blue")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=6)
    axes[0].set_yticks(np.arange(len(nodes)), labels)
    axes[0].invert_yaxis()
    fig.suptitle(f"{Path(report['graph']).parent.name} on {report['device']}: II {report['cycles_per_step']['ii']:,} cycles, "
                 f"fits={report['fits']}", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
