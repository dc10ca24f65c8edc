"""Timing of one denoiser evaluation on the dataflow pipeline, the FIFOs it needs, and deadlocks.

FINN's ``dataflow_performance`` adds up expected cycles along the critical path, which charges a
streaming pipeline as if every node waited for its predecessor to finish. A denoiser's sampler
steps are sequential (step k+1 needs step k's output), so the step *latency* is what an image
costs, and it deserves a better model. Each stream gets the cycle of its first and of its last
element:

    first(out) = max(first(streamed inputs), last(stored inputs)) + delay(node), and no earlier than
                 the words that delay stands for arrive at the producer's pace
    last(out)  = max(first(out) + II(node), max(last(inputs)) + depth(node))

where ``delay`` is how much input the node must see before its first output (a full input vector
for an MVAU, the line buffer for a sliding window, the whole map for GroupNorm) and a *stored*
input is one the node keeps whole before using (the dynamic operand of attention's matmuls, a
per-step table row). Production and consumption of each stream are taken as linear ramps between
those cycles; the FIFO an edge leaving a fork needs is the largest gap between elements produced
and consumed (elsewhere a slow reader just back-pressures its producer). A fork whose branches are consumed at different times (a U-Net skip, attention's q waiting for
k) needs exactly such FIFOs; if one is given less than it needs, the fork blocks and the pipeline
deadlocks, which :func:`deadlocks` reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.dataflow.graph import DataflowGraph
from hwsim.dataflow.nodes.base import DataflowNode, bits

FORKS = {"DuplicateStreams", "StreamingSplit"}
STORED_INPUT_TYPES = {"MVAU": {1}, "ElementwiseAdd": {1}, "ElementwiseMul": {1}, "AdaLayerNorm": {1, 2}}


@dataclass(frozen=True)
class Fifo:
    stream: str
    producer: str
    consumer: str
    depth: int  # elements
    bits: int  # depth x element width
    ramps: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # produced from/to, consumed from/to
    elements: int = 0  # per evaluation


@dataclass
class Schedule:
    first: dict[str, float]  # stream -> cycle of its first element
    last: dict[str, float]  # stream -> cycle of its last element
    ii: int  # the slowest node's cycles per evaluation: the pipeline's initiation interval
    latency: int  # cycles from the first input element to the last output element
    bottleneck: str
    fifos: list[Fifo]
    single_buffered: int = 0  # longest take-then-compute of a single-buffered stored input (below)

    @property
    def ii_sustained(self) -> int:
        """The II back-to-back evaluations reach with these FIFOs (:func:`sustained_ii`), and no less
        than ``single_buffered``: attention's dynamic MVAU holds one operand, so it takes the next
        only after its last output, and the operand's producer (no FIFO on a stored edge) waits."""
        return sustained_ii(max(self.ii, self.single_buffered), self.fifos)

    @property
    def fifo_bits(self) -> int:
        return sum(f.bits for f in self.fifos)


def _stored(node: DataflowNode, index: int) -> bool:
    if node.op_type == "MVAU" and node.attrs.get("mem_mode") != "dynamic":
        return False
    if node.op_type.startswith("Elementwise") and not node.rhs_stored():
        return False  # two full streams, consumed in lockstep
    return index in STORED_INPUT_TYPES.get(node.op_type, set())


def _elements(graph: DataflowGraph, stream: str) -> tuple[int, int]:
    vecs, ch, dtype = graph.streams[stream]
    return math.prod(vecs) * ch, bits(dtype)


def _ramp_gap(p0: float, p1: float, c0: float, c1: float, n: int) -> int:
    """Max over time of produced - consumed, both linear ramps of n elements."""
    def produced(t):
        return n if t >= p1 else (0 if t < p0 else n * (t - p0) / max(p1 - p0, 1))

    def consumed(t):
        return n if t >= c1 else (0 if t < c0 else n * (t - c0) / max(c1 - c0, 1))

    return int(math.ceil(max(produced(t) - consumed(t) for t in (p0, p1, c0, c1))))


def _consumption_starts(graph: DataflowGraph, starts: dict[str, float], first: dict[str, float]) -> dict[str, float]:
    """When each node really starts taking its streamed inputs: a streaming node cannot run ahead of
    its reader by more than its own delay, so one that feeds a node still waiting (q's requant before
    QK^T, which waits for all of k) waits too, and the FIFO belongs before it, on the fork's edge.
    Forks do not propagate the wait: the FIFOs on their branches are what is being sized."""
    consumers = graph.consumers()
    consume: dict[str, float] = {}
    for node in reversed(graph.nodes):
        start = starts[node.name]
        if node.op_type not in FORKS:
            readers = [first[out] if _stored(r, [graph.stream(i) for i in r.inputs].index(out)) else consume[r.name]
                       for out in node.outputs for r in consumers.get(out, [])]
            if readers:
                start = max(start, min(readers) - node.first_output_delay())
        consume[node.name] = start
    return consume


def _needed_by(node: DataflowNode, graph: DataflowGraph, s: str, k: int, f: float, la: float) -> float:
    """When ``node`` can emit its first output given input stream ``s`` arriving as a ramp from
    cycle f to la: ``first_output_delay`` assumes its input at a word per cycle; the words it needs
    first (at most the delay, at most the whole input) come at the producer's own pace."""
    elements, _ = _elements(graph, s)
    words = max(1, elements // node.in_lanes(k))
    delay = node.first_output_delay()
    need = max(1, min(words, delay - node.PIPELINE_DEPTH))
    rate = max(1.0, (la - f) / max(1, words - 1))
    return f + (need - 1) * rate + delay - need + 1


def schedule(graph: DataflowGraph) -> Schedule:
    """Stream timing, II, latency and FIFO depths of one evaluation (folding as set on the nodes)."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for node in graph.nodes:
        ins = [graph.stream(i) for i in node.inputs]
        streamed = [s for k, s in enumerate(ins) if not _stored(node, k)]
        stored = [s for k, s in enumerate(ins) if _stored(node, k)]
        start = max([first[s] for s in streamed] + [last[s] for s in stored] + [0.0])
        starts[node.name] = start
        begin = start + node.first_output_delay()
        for k, s in enumerate(ins):  # a slow producer delays the words the first output needs
            if not _stored(node, k):
                begin = max(begin, _needed_by(node, graph, s, k, first[s], last[s]))
        end = max(begin + node.output_cycles(), max([last[s] for s in ins] + [0.0]) + node.PIPELINE_DEPTH)
        ends[node.name] = end
        for out in node.outputs:
            first[out], last[out] = begin, end
    consume = _consumption_starts(graph, starts, first)
    fifos = []
    producers = graph.producers()
    for node in graph.nodes:
        for k, i in enumerate(node.inputs):
            s = graph.stream(i)
            if _stored(node, k) or producers[s].op_type not in FORKS:
                continue  # off a fork, a slower reader simply stalls its producer (back-pressure)
            n, width = _elements(graph, s)
            consume_end = max(last[s], consume[node.name] + node.output_cycles())
            depth = _ramp_gap(first[s], last[s], consume[node.name], consume_end, n)
            if depth > 2:
                fifos.append(Fifo(s, producers[s].name, node.name, depth, depth * width,
                                  (first[s], last[s], consume[node.name], consume_end), n))
    slowest = max(graph.nodes, key=lambda n: n.get_exp_cycles())
    latency = max(ends[n.name] for n in graph.nodes if not n.outputs)
    single = [ends[n.name] - first[graph.stream(i)] for n in graph.nodes if n.op_type == "MVAU" and n.dynamic()
              for k, i in enumerate(n.inputs) if _stored(n, k)]  # rtl/mvau DYNAMIC: one operand RAM
    return Schedule(first, last, slowest.get_exp_cycles(), int(math.ceil(latency)), slowest.name, fifos,
                    int(math.ceil(max(single, default=0))))


def _occupancy(fifo: Fifo, period: float) -> float:
    """Most elements in ``fifo`` when evaluations enter every ``period`` cycles: the one-evaluation
    gap (produced minus consumed, two ramps) summed over the evaluations in flight at once."""
    p0, p1, c0, c1 = fifo.ramps
    n = fifo.elements

    def gap(t: float) -> float:
        produced = n if t >= p1 else (0 if t < p0 else n * (t - p0) / max(p1 - p0, 1))
        consumed = n if t >= c1 else (0 if t < c0 else n * (t - c0) / max(c1 - c0, 1))
        return produced - consumed

    span = max(p1, c1) - p0
    copies = int(span // period) + 2
    points = [p0 + k * period + (x - p0) for k in range(copies) for x in (p0, p1, c0, c1)]
    return max(sum(gap(t - k * period) for k in range(copies)) for t in points)


def sustained_ii(ii: int, fifos: list[Fifo]) -> int:
    """The least period >= ``ii`` at which every FIFO, sized for one evaluation, holds what
    evaluations entering back to back leave in it. A skip FIFO sized for one evaluation lets the
    next one in only as its reader drains it, so a U-Net's long skips pace back-to-back
    evaluations at about their span, not at the slowest node (measured on rtl, whole unet-digits:
    experiments/results/rtl/stitched.json). Sampling one image is unaffected: its steps run one
    after another anyway (latency-bound)."""
    def fits(period: float) -> bool:
        return all(_occupancy(f, period) <= f.depth for f in fifos if f.elements)

    lo, hi = ii, max([ii] + [int(max(f.ramps[1], f.ramps[3]) - f.ramps[0]) + 1 for f in fifos])
    if fits(lo):
        return lo
    while hi - lo > 1:  # occupancy falls as the period grows
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def deadlocks(sched: Schedule, max_depth: int) -> list[Fifo]:
    """FIFOs that need more than ``max_depth`` elements: with that cap the pipeline stalls for good."""
    return [f for f in sched.fifos if f.depth > max_depth]
