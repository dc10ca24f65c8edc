"""Folding search: PE/SIMD per node to a cycle target or to a device budget, and the LUT-vs-DSP
multiplier choice per MVAU.

The cycle target works as FINN's SetFolding (finn.transformation.fpgadataflow.set_folding): every
node gets the least parallelism whose expected cycles meet the target, SIMD raised before PE on
matrix units (wider input words cost adders; more PEs cost weight-memory ports). Unlike
SetFolding it covers hwsim's node types too, and a node that cannot meet the target is reported
rather than left silently slow. A sliding window and its padding take their MVAU's SIMD (one
stream, one width). The device target searches the tightest cycle target whose design fits.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hwsim.dataflow.graph import DataflowGraph
from hwsim.dataflow.nodes.base import DataflowNode
from hwsim.dataflow.resources import Device, estimate, fifo_memory, total
from hwsim.dataflow.schedule import schedule

FEEDS_MVAU = {"ConvolutionInputGenerator_rtl", "FMPadding"}


@dataclass
class FoldingResult:
    target_cycles: int
    missed: list[str]  # nodes that cannot reach the target even fully unfolded


def _candidates(node: DataflowNode) -> list[dict[str, int]]:
    options = node.fold_options()
    names = sorted(options, key=lambda a: a != "SIMD")  # SIMD first, as SetFolding does
    combos = [dict(zip(names, values)) for values in itertools.product(*(options[n] for n in names))]
    return sorted(combos, key=lambda c: (_parallelism(c), [-c[n] for n in names]))


def _parallelism(combo: dict[str, int]) -> int:
    p = 1
    for v in combo.values():
        p *= v
    return p


def fold_node(node: DataflowNode, target: int, feeders: tuple[DataflowNode, ...] = ()) -> bool:
    """Least parallel folding of ``node`` that meets ``target`` cycles, with the sliding window and
    padding that feed it taking its SIMD; the most parallel if none does."""
    for combo in _candidates(node):
        node.set_folding(**combo)
        for f in feeders:
            f.set_folding(SIMD=node.attrs["SIMD"])
        if max(n.get_exp_cycles() for n in (node, *feeders)) <= target:
            return True
    return False


def _feeders(graph: DataflowGraph, node: DataflowNode) -> tuple[DataflowNode, ...]:
    producers, chain = graph.producers(), []
    src = producers.get(graph.stream(node.inputs[0])) if node.inputs else None
    while src is not None and src.op_type in FEEDS_MVAU:
        chain.append(src)
        src = producers.get(graph.stream(src.inputs[0]))
    return tuple(chain)


def fold_to_cycles(graph: DataflowGraph, target: int) -> FoldingResult:
    missed = []
    for node in graph.nodes:
        if node.op_type in FEEDS_MVAU:
            continue  # folded with the MVAU it feeds
        if not fold_node(node, target, _feeders(graph, node) if node.op_type == "MVAU" else ()):
            missed.append(node.name)
    return FoldingResult(target, missed)


def assign_multipliers(graph: DataflowGraph, device: Device, nodes: list | None = None) -> None:
    """MVAUs take the device's multiplier blocks, largest LUT saving first, until none are left;
    ``nodes``: only these share the device (a part of the graph built alone), default all."""
    nodes = graph.nodes if nodes is None else nodes
    mvaus = [n for n in nodes if n.op_type == "MVAU"]
    for n in mvaus:
        n.attrs["resType"] = "lut"
    used = total([n for n in nodes if n.op_type != "MVAU"], device).mult
    for n in sorted(mvaus, key=lambda n: -estimate(n, device).lut):
        n.attrs["resType"] = "dsp"
        need = estimate(n, device).mult
        if used + need <= device.budget.mult:
            used += need
        else:
            n.attrs["resType"] = "lut"


def design_fits(graph: DataflowGraph, device: Device) -> bool:
    """Whether ``graph`` at its folding fits ``device``: its nodes and the FIFOs its schedule needs
    (multipliers assigned first, as the cost report does)."""
    assign_multipliers(graph, device)
    return device.fits(total(graph.nodes, device) + fifo_memory(schedule(graph).fifos, device))


def fold_to_device(graph: DataflowGraph, device: Device, max_cycles: int | None = None) -> FoldingResult:
    """The smallest cycle target (to within 2%) whose folded design, FIFOs included, fits ``device``."""
    if max_cycles is None:
        for n in graph.nodes:
            n.set_folding(**{a: 1 for a in n.FOLD})
        max_cycles = max(n.get_exp_cycles() for n in graph.nodes)

    def fits(target: int) -> bool:
        fold_to_cycles(graph, target)
        return design_fits(graph, device)

    lo, hi = 1, max_cycles
    if not fits(hi):
        result = fold_to_cycles(graph, hi)
        assign_multipliers(graph, device)
        return result
    while hi > lo * 1.02:
        mid = int((lo * hi) ** 0.5)
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    result = fold_to_cycles(graph, hi)
    assign_multipliers(graph, device)
    return result
