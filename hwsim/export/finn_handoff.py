"""The FINN handoff (``hwsim export --finn``): the part of a mapped dataflow graph FINN can build,
written as FINN-dialect ONNX models that finn-plus loads, estimates and executes.

What is exported. Every dataflow node whose op FINN has *and* can compute bit-exactly becomes a
node of FINN's HW abstraction layer (domain ``finn.custom_op.fpgadataflow``, the graph FINN's
``step_convert_to_hw`` produces): MVAU (static weights), FMPadding, ConvolutionInputGenerator,
ElementwiseAdd/Mul, DuplicateStreams, StreamingConcat, StreamingSplit, UpsampleNearestNeighbour,
and hwsim's requantizations as Thresholding (or as an ElementwiseMul for an exact left shift).
The maximal connected groups of such nodes are the *components*; each component with MACs is
written as one model (``componentK.onnx``, largest MAC count first), with weights (MW, MH),
thresholds (channels, steps) and constants as initializers, a qonnx datatype on every tensor,
NHWC / channels-last shapes, and hwsim's folding (PE/SIMD). ``manifest.json`` lists each model,
its boundary tensors (the integer-graph tensor each carries and the axis order it is streamed
in), node counts and the share of the denoiser's MACs it computes.

Left behind (docs/finn_handoff.md): what FINN has no op for (GroupNorm, the SiLU/GELU lookup
tables, the integer softmax, adaLN, the timestep tables, stream reorders, the host boundary),
attention's activation x activation MatMuls (hwsim's dynamic MVAU, not matched to
FINN's dynamic mode), and any requantization FINN cannot express exactly within
:data:`MAX_THRESHOLD_BITS` output bits.

Requantization. hwsim's ``y = clamp(round_half_even(acc / 2^s), qmin, qmax)`` is non-decreasing
in the integer ``acc``, so it is exactly a multi-threshold function: ``y = ActVal + #{k : acc >=
T_k}`` with ``T_k`` the least integer whose output is at least ``k`` (:func:`requant_thresholds`).
FINN's own streamlining puts thresholds at half steps (round half *up*) and FINN's ``Requant``
op rounds half up too; these integer thresholds reproduce half-to-even exactly. FINN's MVAU has
no bias: the bias is subtracted from the thresholds, or added by an ElementwiseAdd when the MVAU
has no fused requantization.

FINN must see ``FINN_BUILD_DIR`` before anything writes there (only its HW builds do); the
export itself imports finn-plus's custom ops but writes nothing outside ``out_dir``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType

from hwsim.dataflow.graph import DataflowGraph
from hwsim.dataflow.mapping import load_dataflow, mvau_rows
from hwsim.dataflow.nodes import DataflowNode
from hwsim.rtlgen.stitch import _Context, _per_channel

FINN_DOMAIN = "finn.custom_op.fpgadataflow"
MANIFEST = "manifest.json"
MAX_THRESHOLD_BITS = 10  # a requantization to more output bits than this is not made a threshold table
FLOAT32_EXACT = 2**24  # FINN executes in float32: integers are exact below this magnitude
DEFAULT_FPGA_PART = "xc7z020clg400-1"  # FINN's Pynq-Z1 part, for the estimates
PASS_THROUGH = {"FMPadding", "ConvolutionInputGenerator_rtl", "ElementwiseAdd", "ElementwiseMul", "DuplicateStreams",
                "StreamingConcat", "StreamingSplit", "UpsampleNearestNeighbour"}


class HandoffError(ValueError):
    """A dataflow graph the FINN handoff cannot express."""


# --- requantization as FINN can compute it ------------------------------------------------------

def requant_thresholds(shift: int, qmin: int, qmax: int, out_dtype: str, lo: int, hi: int) -> np.ndarray:
    """Integer thresholds T_k, k = out.min()+1 .. out.max(), with

        clamp(round_half_even(x / 2^shift), qmin, qmax) == out.min() + #{k : x >= T_k}

    for every integer x in [lo, hi] (a negative shift is the exact left shift x * 2^-shift).
    T_k is the least integer whose output reaches k: for shift s > 0 the tie (k - 1/2) * 2^s
    rounds up to k only when k is even. Levels every x reaches get ``lo``, levels none reaches
    ``hi + 1``, so the table is exact on [lo, hi] and bounded by it. Needs qmin, qmax within the
    output datatype (they are clipped to it)."""
    out = DataType[out_dtype]
    dmin, dmax = int(out.min()), int(out.max())
    qmin, qmax = max(int(qmin), dmin), min(int(qmax), dmax)
    if qmin > qmax:
        raise HandoffError(f"empty output range [{qmin}, {qmax}]")
    shift, lo, hi = int(shift), int(lo), int(hi)
    row = []
    for k in range(dmin + 1, dmax + 1):
        if k <= qmin:
            t = lo
        elif k > qmax:
            t = hi + 1
        elif shift > 0:
            t = ((2 * k - 1) << (shift - 1)) + (k % 2)  # odd k: the tie rounds down to k - 1
        else:
            t = -((-k) >> -shift)  # ceil(k / 2^-shift)
        row.append(min(max(t, lo), hi + 1))
    return np.array(row, dtype=np.int64)


@dataclass
class RequantPlan:
    """How a requantization (per-channel shifts, [qmin, qmax]) on inputs in [lo, hi] runs in FINN:
    ``thresholds`` (channels, 2^bits - 1) with ``act_val``, or ``factors`` (per channel 2^-shift)
    for an exact left shift whose clamp never binds."""

    thresholds: np.ndarray | None = None
    act_val: int = 0
    factors: np.ndarray | None = None


def plan_requant(shifts, qmin: int, qmax: int, out_dtype: str, lo: int, hi: int) -> RequantPlan | None:
    """The exact FINN form of a requantization, or None if FINN has none within the limits."""
    shifts = np.asarray(shifts, dtype=np.int64).reshape(-1)
    out = DataType[out_dtype]
    qmin, qmax = max(int(qmin), int(out.min())), min(int(qmax), int(out.max()))
    if np.all(shifts <= 0):
        factors = np.array([1 << int(-s) for s in shifts], dtype=np.int64)
        if all(lo * f >= qmin and hi * f <= qmax for f in factors.tolist()):
            return RequantPlan(factors=factors)
    if out.bitwidth() > MAX_THRESHOLD_BITS or not out.is_integer():
        return None
    rows = np.stack([requant_thresholds(int(s), qmin, qmax, out_dtype, lo, hi) for s in shifts.tolist()])
    return RequantPlan(thresholds=rows, act_val=int(out.min()))


def int_type(lo: int, hi: int) -> str:
    """The narrowest signed INT datatype holding [lo, hi] (at least INT2)."""
    bits = 2
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return f"INT{bits}"


def _range(dtype: str) -> tuple[int, int]:
    dt = DataType[dtype]
    return int(dt.min()), int(dt.max())


# --- which dataflow nodes go to FINN ---------------------------------------------------------------

def _requant_source(node: DataflowNode, ctx: _Context) -> dict | None:
    """The integer-graph attributes of the Requant a node computes (standalone or fused into an MVAU)."""
    for op, _, _, attrs in ctx.sources(node):
        if op == "Requant":
            return attrs
    return None


def _plan_for(node: DataflowNode, ctx: _Context, graph: DataflowGraph) -> RequantPlan | None | str:
    """The node's requantization plan; a string says why there is none."""
    attrs = _requant_source(node, ctx)
    channels = node.attrs["MH"] if node.op_type == "MVAU" else node.attrs["NumChannels"]
    shifts = _per_channel(attrs["shifts"], channels)
    if len(attrs["shifts"]) > 1:  # per channel: along the streamed (innermost) axis
        carried = graph.carries.get(node.outputs[0])
        if carried is None or attrs["axis"] % len(carried[1]) != carried[1][-1]:
            return "per-channel shifts along an axis that is not the streamed channel axis"
    lo, hi = _range(node.attrs["accDataType" if node.op_type == "MVAU" else "inputDataType"])
    plan = plan_requant(shifts, attrs["qmin"], attrs["qmax"], node.attrs["outputDataType"], lo, hi)
    if plan is None:
        return (f"requantization to {node.attrs['outputDataType']} is neither an unclamped left shift nor a "
                f"threshold table of at most {MAX_THRESHOLD_BITS} bits")
    return plan


def _why_not(node: DataflowNode, ctx: _Context, graph: DataflowGraph, plans: dict) -> str | None:
    """Why ``node`` stays out of the FINN export (None: it goes in)."""
    t = node.op_type
    if t in PASS_THROUGH:
        if t == "ConvolutionInputGenerator_rtl" and node.attrs.get("depthwise", 0):
            return "depthwise sliding window"
        return None
    if t == "MVAU":
        if node.dynamic():
            return "activation x activation MatMul (dynamic MVAU)"
        if node.attrs.get("noActivation", 1):
            return None
    elif t != "Requant":
        return f"FINN has no {t}" if node.domain != FINN_DOMAIN else f"{t} is not exported"
    plan = _plan_for(node, ctx, graph)
    if isinstance(plan, str):
        return plan
    plans[node.name] = plan
    return None


def select(graph: DataflowGraph, ctx: _Context) -> tuple[list[list[DataflowNode]], dict[str, str], dict]:
    """(components, reasons, plans): the maximal connected groups of exportable nodes in graph order,
    why each other node stays behind, and the requantization plan of each requantizing node."""
    plans: dict[str, RequantPlan] = {}
    reasons = {n.name: r for n in graph.nodes if (r := _why_not(n, ctx, graph, plans)) is not None}
    keep = {n.name for n in graph.nodes} - set(reasons)
    producers, consumers = graph.producers(), graph.consumers()
    changed = True
    while changed:  # a boundary must carry a whole integer tensor (not a padded map or a window stream)
        changed = False
        for n in graph.nodes:
            if n.name not in keep:
                continue
            bad_in = any(getattr(producers.get(graph.stream(i)), "name", None) not in keep and i not in graph.carries
                         for i in n.inputs)
            bad_out = any(o not in graph.carries and any(r.name not in keep for r in consumers.get(o, []))
                          for o in n.outputs)
            if bad_in or bad_out:
                keep.discard(n.name)
                reasons[n.name] = "its stream at the boundary carries no whole integer tensor"
                changed = True
    parent = {name: name for name in keep}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for n in graph.nodes:
        if n.name not in keep:
            continue
        for i in n.inputs:
            p = producers.get(graph.stream(i))
            if p is not None and p.name in keep:
                parent[root(p.name)] = root(n.name)
    groups: dict[str, list[DataflowNode]] = {}
    for n in graph.nodes:
        if n.name in keep:
            groups.setdefault(root(n.name), []).append(n)
    return list(groups.values()), reasons, plans


# --- writing one component -----------------------------------------------------------------------

def register_finn_ops() -> None:
    """Import finn-plus's HW ops so that qonnx finds them: the HW abstraction layer, and the RTL
    variants' module, which is also what registers FINN's ``Reshape`` HW op."""
    import finn.custom_op.fpgadataflow  # noqa: F401
    import finn.custom_op.fpgadataflow.rtl  # noqa: F401


def _rank4(shape) -> list[int]:
    return [1] * (4 - len(shape)) + [int(d) for d in shape]


def _ident(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


class _Model:
    """One FINN-dialect model under construction."""

    def __init__(self, graph: DataflowGraph, members: list[DataflowNode], ctx: _Context, plans: dict):
        from qonnx.custom_op.registry import getCustomOp

        register_finn_ops()
        self.get_op = getCustomOp
        self.graph, self.ctx, self.plans = graph, ctx, plans
        self.names = {n.name for n in members}
        self.nodes: list[onnx.NodeProto] = []
        self.origin: dict[str, str | None] = {}
        self.inits: dict[str, np.ndarray] = {}
        self.shape: dict[str, tuple[int, ...]] = {}
        self.dtype: dict[str, str] = {}
        self.tensor_of: dict[str, str] = {}  # dataflow stream produced here -> its ONNX tensor
        self.inputs: list[dict] = []
        self.used: set[str] = set()  # tensor names
        self.node_names: set[str] = set()
        self.gemm_bound = 0

    # names
    def fresh(self, name: str, used: set[str] | None = None) -> str:
        """A new identifier from ``name`` (tensors and nodes have separate name spaces)."""
        used = self.used if used is None else used
        base = _ident(name)
        out, k = base, 1
        while out in used:
            out, k = f"{base}_{k}", k + 1
        used.add(out)
        return out

    # building blocks
    def node(self, op_type: str, name: str, attrs: dict, origin: str | None) -> onnx.NodeProto:
        """A FINN HW node with FINN's attributes only (inputs and outputs wired later)."""
        bare = self.get_op(helper.make_node(op_type, [], [], domain=FINN_DOMAIN))
        known = bare.get_nodeattr_types()
        kept = {k: v for k, v in attrs.items() if k in known}
        node = helper.make_node(op_type, [], [], name=self.fresh(name, self.node_names), domain=FINN_DOMAIN,
                                backend="fpgadataflow", **kept)
        self.origin[node.name] = origin
        return node

    def init(self, name: str, value: np.ndarray, dtype: str) -> str:
        tensor = self.fresh(name)
        self.inits[tensor] = np.asarray(value, dtype=np.float32)
        self.shape[tensor], self.dtype[tensor] = tuple(value.shape), dtype
        return tensor

    def read(self, stream_or_view: str, want: tuple[int, ...]) -> str:
        """The ONNX tensor of dataflow stream ``stream_or_view`` in shape ``want``: reshaped (FINN's
        Reshape, a pass-through) if its producer here wrote it with another shape of the same
        stream, a graph input if it enters the component."""
        want = tuple(int(d) for d in want)
        src = self.graph.stream(stream_or_view)
        if src in self.tensor_of:
            t = self.tensor_of[src]
            if self.shape[t] == want:
                return t
            if math.prod(self.shape[t]) != math.prod(want):
                raise HandoffError(f"{stream_or_view!r}: shape {self.shape[t]}, FINN wants {want}")
            r = self.node("Reshape", f"{t}_as_{'x'.join(map(str, want))}",  # hwsim reads the stream as is
                          {"inp_shape": list(self.shape[t]), "out_shape": list(want), "dtype": self.dtype[t],
                           "PE": math.gcd(self.shape[t][-1], want[-1])}, None)
            return self.emit_on(r, t, None)
        for entry in self.inputs:
            if entry["stream"] == stream_or_view:
                if tuple(entry["shape"]) != want:
                    raise HandoffError(f"{stream_or_view!r} enters with two shapes")
                return entry["name"]
        tensor, order = self.graph.carries[stream_or_view]
        name = self.fresh(stream_or_view)
        dtype = self.graph.streams[src][2]
        self.inputs.append({"name": name, "stream": stream_or_view, "tensor": tensor, "order": list(order),
                            "shape": list(want), "datatype": dtype})
        self.shape[name], self.dtype[name] = want, dtype
        return name

    def emit(self, node: onnx.NodeProto, reads: list[str], produces: list[str | None],
             extra_inputs: list[str] = ()) -> list[str]:
        """Wire ``node``: its dataflow stream inputs ``reads`` (in the shapes FINN's op wants), then
        initializers; its outputs carry the dataflow streams ``produces`` (None: a tensor of this
        model only) in FINN's output shapes and datatypes."""
        op = self.get_op(node)
        node.input.extend([self.read(s, op.get_normal_input_shape(k)) for k, s in enumerate(reads)] + list(extra_inputs))
        outs = []
        for k, stream in enumerate(produces):
            name = self.fresh(stream or f"{node.name}_out")
            node.output.append(name)
            self.shape[name] = tuple(int(d) for d in op.get_normal_output_shape(k))
            self.dtype[name] = op.get_output_datatype(k).name
            if stream is not None:
                self.tensor_of[stream] = name
            outs.append(name)
        self.nodes.append(node)
        return outs

    def emit_on(self, node: onnx.NodeProto, tensor: str, produces: str | None, extra: list[str] = ()) -> str:
        """Wire a node whose (first) input is an ONNX tensor of this model already."""
        node.input.extend([tensor, *extra])
        op = self.get_op(node)
        name = self.fresh(produces if produces else node.name + "_out")
        node.output.append(name)
        self.shape[name] = tuple(int(d) for d in op.get_normal_output_shape(0))
        self.dtype[name] = op.get_output_datatype(0).name
        if produces:
            self.tensor_of[produces] = name
        self.nodes.append(node)
        return name

    # per node type
    def vectors(self, stream: str) -> list[int]:
        """FINN's numInputVectors for a stream: its vectors with leading 1s to three axes, so that
        every tensor is 4D ((1, H, W, C) for images, (1, 1, L, C) for tokens), as FINN's MVAU
        python execution needs for its thresholds."""
        vecs = [int(v) for v in self.graph.streams[stream][0]]
        return [1] * max(1, 3 - len(vecs)) + vecs

    def add(self, n: DataflowNode) -> None:
        a, t = n.attrs, n.op_type
        if t == "MVAU":
            return self.mvau(n)
        if t == "Requant":
            return self.requant(n)
        if t == "ConvolutionInputGenerator_rtl":
            self.emit(self.node("ConvolutionInputGenerator", n.name, a, n.name), n.inputs, n.outputs)
        elif t in ("FMPadding", "UpsampleNearestNeighbour"):
            self.emit(self.node(t, n.name, a, n.name), n.inputs, n.outputs)
        elif t in ("DuplicateStreams", "StreamingSplit", "StreamingConcat"):
            vecs = self.vectors(self.graph.stream(n.inputs[0]) if t != "StreamingConcat" else n.outputs[0])
            self.emit(self.node(t, n.name, {**a, "numInputVectors": vecs}, n.name), n.inputs, n.outputs)
        elif t in ("ElementwiseAdd", "ElementwiseMul"):
            a = {**a, **{k: _rank4(a[k]) for k in ("lhs_shape", "rhs_shape", "out_shape")}}
            if a.get("rhs_style", "input") == "const":
                (_, ins, out, _), = self.ctx.sources(n)
                const = self.ctx.sim.consts[ins[1]]
                _, order = self.graph.carries[n.outputs[0]]
                padded = const.reshape([1] * (len(order) - const.ndim) + list(const.shape))
                value = np.transpose(padded, order).reshape(a["rhs_shape"])
                node = self.node(t, n.name, a, n.name)
                rhs = self.init(f"{n.name}_rhs", value, a["rhs_dtype"])
                self.emit(node, n.inputs[:1], n.outputs, [rhs])
            else:
                self.emit(self.node(t, n.name, a, n.name), n.inputs, n.outputs)
        else:
            raise HandoffError(f"{n.name}: {t} is not exported")

    def mvau(self, n: DataflowNode) -> None:
        a = n.attrs
        (_, ins, _, _), *_ = self.ctx.sources(n)
        w = mvau_rows(self.ctx.sim.consts[ins[1]]).T  # FINN's (MW, MH), a conv's rows in (ky, kx, c) order
        bias = self.ctx.sim.consts[ins[2]].reshape(-1).astype(np.int64)
        in_lo, in_hi = _range(a["inputDataType"])
        peak = max(-in_lo, in_hi)
        self.gemm_bound = max(self.gemm_bound, int(np.abs(w).sum(axis=0).max()) * peak)
        acc_lo = int(np.where(w > 0, w * in_lo, w * in_hi).sum(axis=0).min())
        acc_hi = int(np.where(w > 0, w * in_hi, w * in_lo).sum(axis=0).max())
        vecs = self.vectors(n.outputs[0])
        plan = self.plans.get(n.name)
        base = {**a, "numInputVectors": vecs, "binaryXnorMode": 0}
        if a.get("mem_mode") not in ("internal_embedded", "internal_decoupled", "external"):
            base.pop("mem_mode", None)
        if plan is not None and plan.thresholds is not None:  # MVAU with the requantization as thresholds
            thr = plan.thresholds - bias[:, None]  # FINN's MVAU has no bias: it moves into the thresholds
            tdt = int_type(int(thr.min()), int(thr.max()))
            acc = int_type(min(acc_lo, int(thr.min())), max(acc_hi, int(thr.max())))
            node = self.node("MVAU", n.name, {**base, "noActivation": 0, "ActVal": plan.act_val, "accDataType": acc}, n.name)
            weights = self.init(f"{n.name}_weights", w, a["weightDataType"])
            thresholds = self.init(f"{n.name}_thresholds", thr, tdt)
            self.emit(node, n.inputs[:1], n.outputs, [weights, thresholds])
            return
        acc = int_type(acc_lo, acc_hi)  # the accumulator without bias
        steps = [("ElementwiseAdd", "bias", bias)] if np.any(bias) else []
        if plan is not None and (np.any(plan.factors != 1) or not steps):  # a left shift (or only a wider type)
            steps.append(("ElementwiseMul", "shift", plan.factors))
        node = self.node("MVAU", n.name, {**base, "noActivation": 1, "ActVal": 0, "accDataType": acc,
                                          "outputDataType": acc if steps else a["outputDataType"]}, n.name)
        weights = self.init(f"{n.name}_weights", w, a["weightDataType"])
        final = n.outputs[0]
        tensor, = self.emit(node, n.inputs[:1], [None if steps else final], [weights])
        for k, (op, what, values) in enumerate(steps):
            last = k == len(steps) - 1  # the last one writes the dataflow stream, in its datatype
            tensor = self._const_op(op, f"{n.name}_{what}", tensor, values,
                                    a["outputDataType"] if last else a["accDataType"], final if last else None, a["PE"])

    def _const_op(self, op: str, name: str, tensor: str, per_channel: np.ndarray, out_dtype: str, produces: str | None,
                  pe: int = 1, origin: str | None = None) -> str:
        """``tensor`` op a per-channel (or single) constant broadcast over the vectors, as FINN's
        elementwise node with a constant right-hand side."""
        shape = list(self.shape[tensor])
        values = np.asarray(per_channel, dtype=np.int64).reshape(-1)
        rhs_shape = [1] * (len(shape) - 1) + [int(values.size)]
        rdt = int_type(int(values.min()), int(values.max()))
        node = self.node(op, name, {"lhs_shape": shape, "rhs_shape": rhs_shape, "out_shape": shape,
                                    "lhs_dtype": self.dtype[tensor], "rhs_dtype": rdt, "out_dtype": out_dtype,
                                    "lhs_style": "input", "rhs_style": "const", "PE": int(pe)}, origin)
        rhs = self.init(f"{name}_rhs", values.reshape(rhs_shape), rdt)
        return self.emit_on(node, tensor, produces, [rhs])

    def requant(self, n: DataflowNode) -> None:
        a, plan = n.attrs, self.plans[n.name]
        vecs = self.vectors(n.outputs[0])
        if plan.thresholds is not None:
            thr = plan.thresholds
            node = self.node("Thresholding", n.name, {
                "PE": a["PE"], "NumChannels": a["NumChannels"], "numSteps": int(thr.shape[1]),
                "inputDataType": a["inputDataType"], "weightDataType": int_type(int(thr.min()), int(thr.max())),
                "outputDataType": a["outputDataType"], "numInputVectors": vecs, "ActVal": plan.act_val}, n.name)
            thresholds = self.init(f"{n.name}_thresholds", thr, node_attr(node, "weightDataType"))
            self.emit(node, n.inputs, n.outputs, [thresholds])
            return
        tensor = self.read(n.inputs[0], vecs + [int(a["NumChannels"])])
        self._const_op("ElementwiseMul", n.name, tensor, plan.factors, a["outputDataType"], n.outputs[0], a["PE"], n.name)

    # the model
    def outputs(self) -> list[dict]:
        consumers = self.graph.consumers()
        outs = []
        for stream, tensor in self.tensor_of.items():
            readers = consumers.get(stream, [])
            if not readers or any(r.name not in self.names for r in readers):
                carried = self.graph.carries[stream]
                outs.append({"name": tensor, "stream": stream, "tensor": carried[0], "order": list(carried[1]),
                             "shape": list(self.shape[tensor]), "datatype": self.dtype[tensor]})
        return outs

    def save(self, path: Path) -> tuple[list[dict], list[dict]]:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.util.basic import qonnx_make_model

        outs = self.outputs()
        boundary = {e["name"] for e in self.inputs + outs}

        def info(name: str):
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(self.shape[name]))

        inits = [onnx.numpy_helper.from_array(v, k) for k, v in self.inits.items()]
        internal = [info(t) for t in self.shape if t not in boundary and t not in self.inits]
        graph = helper.make_graph(self.nodes, "hwsim_finn_handoff", [info(e["name"]) for e in self.inputs],
                                  [info(e["name"]) for e in outs], inits, value_info=internal)
        model = ModelWrapper(qonnx_make_model(graph, producer_name="hwsim"))
        for name, dtype in self.dtype.items():
            model.set_tensor_datatype(name, DataType[dtype])
        model.set_metadata_prop("hwsim.source", str(self.graph.source))
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(str(path))
        return self.inputs, outs


def node_attr(node: onnx.NodeProto, name: str):
    value = helper.get_attribute_value(next(a for a in node.attribute if a.name == name))
    return value.decode() if isinstance(value, bytes) else value


# --- the handoff --------------------------------------------------------------------------------

def to_finn(graph_or_path: DataflowGraph | str | Path, out_dir: str | Path, steps: int = 50) -> list[Path]:
    """Write every FINN-executable component of a mapped dataflow graph (or of the integer graph,
    dataflow .onnx or quantized model directory ``load_dataflow`` reads, mapped with ``steps``
    table rows) with MACs into ``out_dir/componentK.onnx``, largest first, and ``manifest.json``.
    Returns the model paths."""
    graph = graph_or_path if isinstance(graph_or_path, DataflowGraph) else load_dataflow(graph_or_path, steps)
    if any(n.groups() > 1 for n in graph.nodes):
        raise HandoffError(f"{graph.source}: activation scales per timestep group (timestep_groups > 1) have no FINN "
                           f"equivalent (FINN's thresholds and biases are one set per node)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _Context(graph, out, [0])  # the integer graph's constants and node attributes (nothing is written)
    components, reasons, plans = select(graph, ctx)
    total = graph.macs()
    with_macs = sorted((c for c in components if sum(n.macs() for n in c)), key=lambda c: -sum(n.macs() for n in c))
    for c in components:
        if not sum(n.macs() for n in c):  # e.g. a requantization between two nodes FINN does not have
            reasons.update({n.name: "in a group without MACs (no FINN model written)" for n in c})
    models, paths = [], []
    for k, members in enumerate(with_macs):
        model = _Model(graph, members, ctx, plans)
        for n in members:
            model.add(n)
        path = out / f"component{k}.onnx"
        inputs, outputs = model.save(path)
        macs = sum(n.macs() for n in members)
        widest = max(DataType[d].bitwidth() for d in model.dtype.values())
        extreme = max([float(np.abs(v).max()) for v in model.inits.values() if v.size] + [0.0])
        models.append({
            "file": path.name, "nodes": len(model.nodes),
            "node_types": dict(Counter(node.op_type for node in model.nodes)),
            "hwsim_nodes": [n.name for n in members], "origin": model.origin,
            "macs": macs, "mac_share": macs / total if total else 0.0,
            "inputs": inputs,
            "outputs": outputs,
            "float32_exact": bool(widest <= 24 and model.gemm_bound < FLOAT32_EXACT and extreme < FLOAT32_EXACT),
        })
        paths.append(path)
    covered = sum(m["macs"] for m in models)
    behind = Counter(graph.node(name).op_type for name in reasons)
    manifest = {
        "source": str(graph.source), "steps": graph.steps, "graph_macs": total, "covered_macs": covered,
        "mac_share": covered / total if total else 0.0, "max_threshold_bits": MAX_THRESHOLD_BITS,
        "models": models, "components_without_macs": len(components) - len(with_macs),
        "left_behind": dict(sorted(behind.items())),
        "reasons": dict(sorted(Counter(reasons.values()).items())),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return paths


def load_manifest(out_dir: str | Path) -> dict:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise HandoffError(f"{out_dir}: no {MANIFEST} (write one with `hwsim export --finn` or to_finn)")
    return json.loads(path.read_text())


# --- using the exported models ------------------------------------------------------------------

def boundary_values(entries: list[dict], env: dict[str, np.ndarray], dtype=np.float32) -> dict[str, np.ndarray]:
    """The values of a model's boundary tensors (``manifest["models"][k]["inputs"]`` or
    ``["outputs"]``) from the integer tensors of one simulator run at batch 1 (``env``:
    ``Simulator.run_integers``), in FINN's shapes: float32 as FINN takes its inputs, or int64."""
    return {e["name"]: np.transpose(env[e["tensor"]], e["order"]).reshape(e["shape"]).astype(dtype) for e in entries}


def execute(model_path: str | Path, entry: dict, env: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(FINN's python execution of one exported model fed with the simulator's boundary inputs, as
    float32 arrays; the simulator's integers at its outputs, int64). Compare them with
    ``np.array_equal`` (exact: numpy compares float32 with int64 in float64)."""
    from finn.core.onnx_exec import execute_onnx
    from qonnx.core.modelwrapper import ModelWrapper

    register_finn_ops()
    model = ModelWrapper(str(model_path))
    got = execute_onnx(model, boundary_values(entry["inputs"], env))
    return got, boundary_values(entry["outputs"], env, np.int64)


def finn_estimates(model_path: str | Path, fpgapart: str = DEFAULT_FPGA_PART) -> dict[str, dict]:
    """FINN's estimates per exported node: the model specialized to HLS/RTL variants as
    ``step_specialize_layers`` does (no Vivado needed), then ``exp_cycles_per_layer`` and
    ``res_estimation``. Keyed by the exported node names (specialization renames and reorders the
    nodes; they are matched by their output tensors), each with ``op_type`` (the variant FINN chose),
    ``cycles`` and ``resources``."""
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.core.modelwrapper import ModelWrapper

    register_finn_ops()
    model = ModelWrapper(str(model_path))
    names = {n.output[0]: n.name for n in model.graph.node}
    special = model.transform(SpecializeLayers(fpgapart))
    cycles = special.analysis(exp_cycles_per_layer)
    resources = special.analysis(lambda m: res_estimation(m, fpgapart))
    found = {names[n.output[0]]: {"op_type": n.op_type, "cycles": cycles.get(n.name), "resources": resources.get(n.name)}
             for n in special.graph.node}
    if set(found) != set(names.values()):
        raise HandoffError(f"{model_path}: specialization did not keep every node")
    return found
