"""The largest share of a denoiser's MACs that one device holds (issue 7, item 4d).

When a whole denoiser does not fit, the question an FPGA engineer asks next is how much of it does:
which contiguous run of the dataflow pipeline (nodes in graph order, so that the part is one
sub-pipeline whose cut streams become the design's ports) carries the most multiply-accumulates
while its stitched design fits. The search prices windows with the resource model's node estimates
(multipliers assigned within the window, as for a design built alone) plus the FIFOs the schedule
puts in front of the window's nodes (stitching instantiates those, a cut skip connection's too), under
a headroom for the rest of what stitching adds (forks, width converters);
:func:`hwsim.bitstream.calibrate.stitched_model` then prices the generated design exactly and the
caller shrinks the window if it misses.
Written here because no FPGA flow searches a network for its largest fitting part.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.dataflow.folding import assign_multipliers
from hwsim.dataflow.resources import Device, Resources, fifo_memory, total
from hwsim.dataflow.schedule import schedule


@dataclass
class Window:
    names: list[str]  # node names in graph order
    macs: int  # per denoiser evaluation
    graph_macs: int
    estimate: Resources  # the nodes and their input FIFOs, before the rest of stitching

    @property
    def share(self) -> float:
        return self.macs / self.graph_macs if self.graph_macs else 0.0


def _fits(used: Resources, device: Device, headroom: float) -> bool:
    return all(getattr(used, k) <= getattr(device.budget, k) * (1 - headroom) for k in ("lut", "ff", "mult", "bram"))


def largest_window(graph, device: Device, headroom: float = 0.08, skip_ops: tuple[str, ...] = ("HostInput", "HostOutput")
                   ) -> Window:
    """The contiguous run of ``graph``'s nodes (graph order, host ops left out) with the most MACs whose
    node estimates fit ``device`` less ``headroom`` of every budget. Two pointers: resources only grow
    as a window grows, so each start extends the previous end (O(n) window prices)."""
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom must be in [0, 1), not {headroom}")
    nodes = [n for n in graph.nodes if n.op_type not in skip_ops]
    graph_macs = sum(n.macs() for n in nodes)
    fifos = schedule(graph).fifos
    lanes = {n.name: n.out_lanes() for n in graph.nodes}

    def price(lo: int, hi: int) -> Resources:
        part = nodes[lo:hi]
        assign_multipliers(graph, device, part)
        names = {n.name for n in part}
        return total(part, device) + fifo_memory([f for f in fifos if f.consumer in names], device, lanes)

    best, hi = (0, 0, 0), 0
    for lo in range(len(nodes)):
        hi = max(hi, lo)
        while hi < len(nodes) and _fits(price(lo, hi + 1), device, headroom):
            hi += 1
        macs = sum(n.macs() for n in nodes[lo:hi])
        if macs > best[0]:
            best = (macs, lo, hi)
    macs, lo, hi = best
    if hi == lo:
        raise ValueError(f"no single node of the graph fits {device.name} with {headroom:.0%} headroom")
    used = price(lo, hi)
    return Window([n.name for n in nodes[lo:hi]], macs, graph_macs, used)
