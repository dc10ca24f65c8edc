"""Integer graph -> dataflow graph of folded nodes (``hwsim map``).

FINN's to-HW conversions work on FINN's dialect (MultiThreshold, Im2Col + MatMul); hwsim's integer
graph carries hwsim's own ops (docs/numerics.md), so this module does the conversion itself and
produces FINN's node types, with FINN's attributes, wherever FINN has the op:

    IntConv k x k        -> FMPadding (if padded) + ConvolutionInputGenerator + MVAU
    IntConv 1 x 1 / IntLinear -> MVAU;  IntMatMul -> MVAU with mem_mode "dynamic"
    Requant after a GEMM -> fused into the MVAU (noActivation = 0); elsewhere -> Requant
    IntAdd / IntMul      -> ElementwiseAdd / ElementwiseMul;  Upsample -> UpsampleNearestNeighbour
    Concat -> StreamingConcat; a tensor read by several nodes -> DuplicateStreams
    GroupNorm, Modulate (adaLN), Lut (SiLU/GELU), Softmax -> hwsim's GroupNorm, AdaLayerNorm,
        LutActivation, IntSoftmax
    everything computed from the timestep alone -> TimestepTable (one ROM row per sampler step)
    Reshape/Transpose/Take/Slice chains -> nothing when the stream order survives, a
        StreamingSplit when they split channels, else a StreamReorder (:mod:`hwsim.dataflow.layout`)
    QuantInput / Dequant -> HostInput / HostOutput (the sampler runs on the host)

A graph with activation scales per timestep group (one file per group, the same nodes) maps
once, and every node gets ``timestepGroups``: the constants that depend on an activation scale
(biases, shift and threshold tables, lookup tables, normalization constants) are stored once
per group (:meth:`hwsim.dataflow.nodes.base.DataflowNode.groups`).

Tensor shapes come from one run of the graph at batch 1 (every node's shape is then exact).
All folding factors start at 1; :mod:`hwsim.dataflow.folding` sets them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper

from hwsim.dataflow import layout
from hwsim.dataflow.graph import META_KEY, DataflowGraph
from hwsim.dataflow.nodes import make_node
from hwsim.dataflow.nodes.base import bits
from hwsim.dataflow.nodes.finn_types import group_attrs
from hwsim.export.intgraph import group_files
from hwsim.export.pipeline import GRAPH_FILE, export_model
from hwsim.intsim.executor import Simulator
from hwsim.rtlgen.memfiles import group_split, signed_bits

LAYOUT_OPS = {"Reshape", "Transpose", "Take", "Slice"}
GEMMS = {"IntConv", "IntLinear", "IntMatMul"}


class MappingError(ValueError):
    """The integer graph has something the dataflow mapping cannot place."""


@dataclass
class _Node:
    name: str
    op_type: str
    inputs: list[str]
    output: str
    attrs: dict


@dataclass
class _State:
    graph: DataflowGraph
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    order: dict[str, tuple[int, ...]] = field(default_factory=dict)  # stream order per dataflow tensor
    alias: dict[str, str] = field(default_factory=dict)  # integer tensor -> dataflow tensor
    consts: dict[str, np.ndarray] = field(default_factory=dict)  # the integer graph's weights


def tensor_shapes(path: str | Path) -> tuple[Simulator, dict[str, tuple[int, ...]]]:
    """The integer graph's simulator and every tensor's shape at batch 1, from one run."""
    sim = Simulator(path)
    shape = [d or 1 for d in sim.input_shapes["x"]]
    env = sim.run_integers(np.random.default_rng(0).uniform(-1, 1, size=shape), np.zeros(1, dtype=np.int64))
    return sim, {k: tuple(v.shape) for k, v in env.items()} | {k: tuple(v.shape) for k, v in sim.consts.items()}


def _load(path: Path) -> tuple[list[_Node], dict, dict, dict]:
    sim, shapes = tensor_shapes(path)
    model = ModelWrapper(str(path))
    dtypes = {}
    for name in shapes:
        dt = model.get_tensor_datatype(name)
        dtypes[name] = dt.name
    nodes = [_Node(name, op.__name__, list(ins), out, attrs) for name, op, ins, out, attrs in sim.nodes]
    return nodes, shapes, dtypes, sim.consts


def _timestep_constant(nodes: list[_Node], consts: dict) -> set[str]:
    constant = {"t"} | set(consts)
    for n in nodes:
        if all(i in constant for i in n.inputs):
            constant.add(n.output)
    return constant - set(consts)


def _rows(shape, order) -> tuple[list[int], int]:
    """(numInputVectors, channels) of a tensor streamed in ``order`` at batch 1."""
    streamed = [shape[a] for a in order][1:]
    return [int(v) for v in streamed[:-1]] or [1], int(streamed[-1])


def map_integer_graph(path: str | Path, steps: int) -> DataflowGraph:
    """The dataflow graph of an integer graph, for a sampler with ``steps`` steps (table depth)."""
    path = Path(path)
    nodes, shapes, dtypes, consts = _load(path)
    constant = _timestep_constant(nodes, consts)
    consumers: dict[str, list[_Node]] = defaultdict(list)
    for n in nodes:
        for i in n.inputs:
            consumers[i].append(n)
    st = _State(DataflowGraph(source=str(path), steps=steps), shapes, dtypes, consts=consts)
    producer = {n.output: n for n in nodes}
    fused: set[str] = set()

    def dt(tensor: str) -> str:
        return dtypes[tensor]

    def register(stream: str, tensor: str, order) -> None:
        """``stream`` carries integer tensor ``tensor`` in ``order``."""
        st.alias[tensor], st.order[stream] = stream, order
        st.graph.carries[stream] = (tensor, tuple(order))
        vecs, ch = _rows(shapes[tensor], order)
        st.graph.streams[stream] = (vecs, ch, dt(tensor))

    def add(op_type: str, name: str, attrs: dict, inputs: list[str], outputs: list[str], source: str) -> None:
        st.graph.add(make_node(op_type, name, attrs, inputs=inputs, outputs=outputs, source=source))

    def resolve(tensor: str, want, consumer: str) -> str:
        """The dataflow stream that feeds ``consumer`` with ``tensor`` in order ``want``
        (an order, None = whichever is free, "any" = the consumer stores it whole)."""
        if tensor in constant:
            return _table(tensor)
        chain: list[tuple[str, dict]] = []
        cur = tensor
        while cur not in st.alias:
            p = producer.get(cur)
            if p is None or p.op_type not in LAYOUT_OPS:
                raise MappingError(f"{path}: {consumer} reads {tensor!r}, which no mapped node produces")
            chain.insert(0, (p.op_type, p.attrs))
            cur = p.inputs[0]
        src = st.alias[cur]
        if not chain and (want in (None, "any") or want == st.order[src]):
            return src
        if math.prod(shapes[tensor]) < math.prod(shapes[cur]):  # a take/slice: split channels first
            _split(src, cur, consumer)
            return resolve(tensor, want, consumer)
        rank = len(shapes[tensor])
        if want == "any" and (order := layout.streamed_order(shapes[cur], st.order[src], chain, rank)):
            depth = 0  # stored whole by its reader, in the order it arrives
        elif want in (None, "any"):
            order, depth = layout.best_order(shapes[cur], st.order[src], chain, rank)
            depth = 0 if want == "any" else depth
        else:
            order, depth = want, layout.chain_cost(shapes[cur], st.order[src], chain, want)[0]
        if depth == 0:  # the same stream, read with another shape
            st.graph.carries[f"{src}:as:{tensor}"] = (tensor, tuple(order))
            return st.graph.add_view(f"{src}:as:{tensor}", src, order, st.order)
        name = f"reorder_{tensor}"
        vecs, ch = _rows(shapes[tensor], order)
        sequence = layout.chain_cost(shapes[cur], st.order[src], chain, order)[1]
        add("StreamReorder", name, {"NumChannels": ch, "numInputVectors": vecs, "PE": 1, "bufferDepth": depth,
                                    "sequence": [int(v) for v in sequence],
                                    "inputDataType": dt(cur), "outputDataType": dt(cur)},
            [src], [name], "+".join(op for op, _ in chain))
        register(name, tensor, order)
        return name

    def _split(src: str, int_src: str, consumer: str) -> None:
        """Takes/slices that pick a channel range of every token become one StreamingSplit."""
        leaves = _layout_leaves(int_src)
        vecs, ch = _rows(shapes[int_src], st.order[src])
        rows = math.prod(vecs)
        found = []
        for leaf in leaves:
            chain = _chain_to(int_src, leaf)
            order, depth = layout.best_order(shapes[int_src], st.order[src], chain, len(shapes[leaf]))
            seq = layout.chain_cost(shapes[int_src], st.order[src], chain, order)[1].reshape(rows, -1)
            contiguous = depth == 0 and np.all(np.diff(seq, axis=1) == 1) and np.all(seq // ch == np.arange(rows)[:, None])
            if not contiguous:
                raise MappingError(f"{path}: {consumer}: {leaf!r} is not a channel range of every token of {int_src!r}")
            found.append((int(seq[0, 0] % ch), leaf, order, seq.shape[1]))
        found.sort()
        if [f[0] for f in found] != list(np.cumsum([0] + [f[3] for f in found])[:-1]):
            raise MappingError(f"{path}: the takes of {int_src!r} do not partition its channels")
        name = f"split_{int_src}"
        add("StreamingSplit", name, {"SIMD": 1, "ChannelsPerStream": [f[3] for f in found], "numInputVectors": vecs,
                                     "inputDataType": dt(int_src)},
            [src], [f"{name}:{i}" for i in range(len(found))], "Take")
        for i, (_, leaf, order, _) in enumerate(found):
            register(f"{name}:{i}", leaf, order)

    def _chain_to(start: str, leaf: str) -> list[tuple[str, dict]]:
        chain, cur = [], leaf
        while cur != start:
            p = producer[cur]
            chain.insert(0, (p.op_type, p.attrs))
            cur = p.inputs[0]
        return chain

    def _layout_leaves(start: str) -> list[str]:
        """The Take/Slice outputs downstream of ``start`` through layout ops."""
        found, stack = [], [start]
        while stack:
            cur = stack.pop()
            for c in consumers[cur]:
                if c.op_type in {"Take", "Slice"}:
                    found.append(c.output)
                elif c.op_type in LAYOUT_OPS:
                    stack.append(c.output)
        return found

    tables: dict[str, str] = {}

    def _table(tensor: str) -> str:
        if tensor not in tables:
            name = f"table_{tensor}"
            add("TimestepTable", name, {"EmbeddingDim": math.prod(shapes[tensor][1:]) or 1, "NumSteps": steps,
                                        "EmbeddingType": dt(tensor), "PE": 1}, [], [name], "TableLookup")
            register(name, tensor, layout.identity(len(shapes[tensor])))
            st.alias.pop(tensor)
            tables[tensor] = name
        return tables[tensor]

    def wants_any(tensor: str) -> bool:
        """True if every reader (through layout and elementwise ops) stores the tensor whole."""
        readers = consumers[tensor]
        return bool(readers) and all(
            (c.op_type == "IntMatMul" and c.inputs[1] == tensor)
            or (c.op_type in LAYOUT_OPS | {"Requant", "Lut"} and wants_any(c.output)) for c in readers)

    for n in nodes:
        if n.output in constant or n.op_type in LAYOUT_OPS or n.name in fused:
            continue
        out = n.output
        if n.op_type == "QuantInput":
            c = shapes[out][1]
            add("HostInput", n.name, {"NumChannels": c, "numInputVectors": list(shapes[out][2:]), "PE": 1,
                                      "outputDataType": dt(out)}, [], [out], n.name)
            register(out, out, layout.CHANNELS_LAST)
            continue
        if n.op_type == "Dequant":
            src = resolve(n.inputs[0], layout.CHANNELS_LAST if len(shapes[out]) == 4 else None, n.name)
            vecs, ch = _rows(shapes[out], st.order[src])
            add("HostOutput", n.name, {"NumChannels": ch, "numInputVectors": vecs, "PE": 1,
                                       "inputDataType": dt(n.inputs[0])}, [src], [], n.name)
            continue
        if n.op_type in GEMMS:
            final, order = _map_gemm(n, st, resolve, add, consumers, fused, shapes, dtypes)
            register(final, final, order)
            continue
        want_first = layout.CHANNELS_LAST if n.op_type in {"GroupNorm", "Upsample"} else None
        if want_first is None and wants_any(out):
            want_first = "any"
        first, *others = n.inputs
        if n.op_type in {"IntAdd", "IntMul"} and math.prod(shapes[first]) < math.prod(shapes[out]) \
                and others[0] not in consts:  # commutative: the broadcast operand (a gate row) goes right
            first, others = others[0], [first]
        ins = [resolve(first, want_first, n.name)]
        order = st.order[ins[0]]
        vecs, ch = _rows(shapes[out], order)
        in_dt, out_dt = dt(first), dt(out)
        if n.op_type == "Requant":
            add("Requant", n.name, {"NumChannels": ch, "numInputVectors": vecs, "PE": 1, "inputDataType": in_dt,
                                    "outputDataType": out_dt, "shifts": [int(v) for v in n.attrs["shifts"]]},
                ins, [out], n.name)
        elif n.op_type == "Lut":
            add("LutActivation", n.name, {"NumChannels": ch, "numInputVectors": vecs, "PE": 1,
                                          "inputDataType": in_dt, "outputDataType": out_dt}, ins, [out], n.name)
        elif n.op_type == "GroupNorm":
            g, b = n.inputs[1], n.inputs[2]
            add("GroupNorm", n.name, {"NumChannels": ch, "numInputVectors": vecs, "PE": 1, "groups": n.attrs["groups"],
                                      "ft": n.attrs["ft"], "inputDataType": in_dt, "outputDataType": out_dt,
                                      "gammaBits": bits(dt(g)), "betaBits": bits(dt(b))}, ins, [out], n.name)
        elif n.op_type == "Modulate":
            scale = resolve(n.inputs[1], "any", n.name)
            shift = resolve(n.inputs[2], "any", n.name)
            add("AdaLayerNorm", n.name, {"NumChannels": ch, "numInputVectors": vecs, "PE": 1, "ft": n.attrs["ft"],
                                         "inputDataType": in_dt, "outputDataType": out_dt,
                                         "scaleBits": bits(dt(n.inputs[1])), "shiftBits": bits(dt(n.inputs[2]))},
                ins + [scale, shift], [out], n.name)
        elif n.op_type == "Softmax":
            table = n.inputs[1]
            add("IntSoftmax", n.name, {"NumChannels": ch, "numInputVectors": vecs, "PE": 1, "inputDataType": in_dt,
                                       "outputDataType": out_dt, "tableEntries": int(shapes[table][0]),
                                       "tableBits": bits(dt(table))}, ins, [out], n.name)
        elif n.op_type == "Upsample":
            _, c, h, w = shapes[n.inputs[0]]
            f = n.attrs["factor"]
            add("UpsampleNearestNeighbour", n.name, {"SIMD": 1, "HI": h, "WI": w, "HO": h * f, "WO": w * f,
                                                     "NumChannels": c, "inputDataType": in_dt}, ins, [out], n.name)
        elif n.op_type in {"IntAdd", "IntMul"}:
            const = others[0] in consts  # a parameter (the DiT's position embedding) stored in the node
            rhs = [] if const else [resolve(others[0], order, n.name)]
            rhs_shape = _channels_last_shape(shapes[others[0]], order, shapes[out])
            add("ElementwiseAdd" if n.op_type == "IntAdd" else "ElementwiseMul", n.name,
                {"PE": 1, "lhs_shape": [1, *vecs, ch], "rhs_shape": rhs_shape, "out_shape": [1, *vecs, ch],
                 "lhs_dtype": in_dt, "rhs_dtype": dt(others[0]), "out_dtype": out_dt,
                 "rhs_style": "const" if const else "input"}, ins + rhs, [out], n.name)
        elif n.op_type == "Concat":
            if n.attrs["axis"] != 1 or len(shapes[out]) != 4:
                raise MappingError(f"{path}: {n.name}: only channel concatenation of images is mapped")
            parts = [resolve(i, layout.CHANNELS_LAST, n.name) for i in n.inputs[1:]]
            add("StreamingConcat", n.name, {"SIMD": 1, "ChannelsPerStream": [shapes[i][1] for i in n.inputs],
                                            "numInputVectors": vecs, "inputDataTypes": [dt(i) for i in n.inputs]},
                ins + parts, [out], n.name)
        else:
            raise MappingError(f"{path}: node {n.name!r} ({n.op_type}) has no dataflow mapping")
        register(out, out, order)
    st.graph.insert_forks()
    st.graph.check()
    groups = len(group_files(path) or [path])
    if groups > 1:
        for node in st.graph.nodes:
            node.attrs["timestepGroups"] = groups
    return st.graph


def _channels_last_shape(rhs_shape, order, out_shape) -> list[int]:
    """The right-hand side's shape in the output's stream order (broadcast dims stay 1)."""
    full = [rhs_shape[a] if a < len(rhs_shape) else 1 for a in order] if len(rhs_shape) == len(out_shape) else None
    if full is None:  # lower-rank rhs broadcasts over the leading axes
        padded = [1] * (len(out_shape) - len(rhs_shape)) + list(rhs_shape)
        full = [padded[a] for a in order]
    return [int(v) for v in full]


def mvau_rows(weights: np.ndarray) -> np.ndarray:
    """Weights as the MVAU holds them: [MH, MW], a convolution's columns in (ky, kx, c) order."""
    return weights.transpose(0, 2, 3, 1).reshape(weights.shape[0], -1) if weights.ndim == 4 else weights


def nm_pattern(rows: np.ndarray, ms: tuple[int, ...] = (4, 8)) -> dict[str, int]:
    """The sparsest N:M structure the weights have along the MVAU's rows (at most half kept), as
    the sparse MVAU's attributes; none if every group of M has more than M/2 non-zeros."""
    best = {}
    for m in ms:
        if rows.shape[1] % m:
            continue
        n = int((rows.reshape(rows.shape[0], -1, m) != 0).sum(axis=2).max())
        if n <= m // 2 and (not best or n / m < best["sparsityN"] / best["sparsityM"]):
            best = {"sparsityN": max(n, 1), "sparsityM": m}
    return best


def group_pattern(rows: np.ndarray, weight_bits: int, channels: int) -> dict[str, int]:
    """The group-shifted form of integer weights that stores the fewest bits (rtl/mvau's WGROUP): the
    weights of a group of g consecutive inputs (g a power of two from 4 dividing ``channels``, a convolution's
    input channels at one tap) as q << shift, when that stores fewer bits than ``weight_bits``; none otherwise.
    Group-wise weights (Q-DiT) are exported as one integer per weight at the row's finest scale, a
    coarser group's integers shifted left: this recovers their 4-bit q and a shift per group. Groups
    start at 4 inputs: a shifter for every two weights costs more logic than it saves, and pairs turn up
    by chance (4-bit per-channel weights of a layer whose large values are all even split into 3-bit q
    and a 1-bit shift per pair)."""
    best, cost = {}, float(weight_bits)
    g = 4
    while g <= channels and channels % g == 0:
        q_bits = signed_bits(group_split(rows, g)[0])  # the narrowest q, then the smallest shifts that give it
        shift_bits = max(1, int(group_split(rows, g, q_bits)[1].max(initial=0)).bit_length())
        bits_per_weight = q_bits + shift_bits / g
        if bits_per_weight < weight_bits and bits_per_weight <= cost:  # fewer than dense; ties: the larger group
            best, cost = group_attrs(g, q_bits, shift_bits), bits_per_weight
        g *= 2
    return best


def _map_gemm(n: _Node, st: _State, resolve, add, consumers, fused, shapes, dtypes) -> tuple[str, tuple]:
    out = n.output
    x, w = n.inputs[0], n.inputs[1]
    readers = consumers[out]
    requant = readers[0] if len(readers) == 1 and readers[0].op_type == "Requant" else None
    final = requant.output if requant else out
    if requant:
        fused.add(requant.name)
    act = {"noActivation": 0 if requant else 1, "outputDataType": dtypes[final], "accDataType": dtypes[out]}
    if requant:  # the fused requant's shifts decide its logic (hwsim.dataflow.ecp5)
        act["shifts"] = [int(v) for v in requant.attrs["shifts"]]
    if n.op_type == "IntConv":
        _, c, h, wd = shapes[x]
        oc, _, kh, kw = shapes[w]
        (sh, sw), (pt, pl, pb, pr) = n.attrs["strides"], n.attrs["pads"]
        src = resolve(x, layout.CHANNELS_LAST, n.name)
        oh, ow = shapes[out][2], shapes[out][3]
        if kh == kw == 1 and sh == sw == 1 and not any((pt, pl, pb, pr)):
            feed = src
        else:
            if any((pt, pl, pb, pr)):
                pad = f"{n.name}:pad"
                add("FMPadding", pad, {"ImgDim": [h, wd], "Padding": [pt, pl, pb, pr], "NumChannels": c, "SIMD": 1,
                                       "inputDataType": dtypes[x]}, [src], [pad], n.name)
                st.graph.streams[pad] = ([h + pt + pb, wd + pl + pr], c, dtypes[x])
                src = pad
            swg = f"{n.name}:swg"
            add("ConvolutionInputGenerator_rtl", swg, {
                "ConvKernelDim": [kh, kw], "IFMChannels": c, "IFMDim": [h + pt + pb, wd + pl + pr], "OFMDim": [oh, ow],
                "SIMD": 1, "Stride": [sh, sw], "Dilation": [1, 1], "inputDataType": dtypes[x],
                "outputDataType": dtypes[x], "depthwise": 0, "M": 1, "parallel_window": 0}, [src], [swg], n.name)
            st.graph.streams[swg] = ([oh, ow, kh * kw], c, dtypes[x])
            feed = swg
        attrs = {"MW": c * kh * kw, "MH": oc, "numInputVectors": [1, oh, ow], "SIMDLimit": c}  # SWG and MVAU share SIMD
        ins = [feed]
    elif n.op_type == "IntLinear":
        src = resolve(x, None, n.name)
        vecs, ch = _rows(shapes[x], st.order[src])
        attrs = {"MW": shapes[w][1], "MH": shapes[w][0], "numInputVectors": vecs}
        ins = [src]
    else:  # IntMatMul: A [N, (h,) L, K] x B [N, (h,) K, M]
        a_shape, b_shape = shapes[x], shapes[w]
        rank = len(a_shape)
        src = resolve(x, layout.TOKEN_MAJOR if rank == 4 else layout.identity(rank), n.name)
        operand = resolve(w, "any", n.name)
        heads = a_shape[1] if rank == 4 else 1
        attrs = {"MW": a_shape[-1], "MH": b_shape[-1], "numInputVectors": [a_shape[-2], heads] if rank == 4 else [a_shape[-2]],
                 "mem_mode": "dynamic", "heads": heads, "operandOrder": list(st.order[operand])}  # as streamed
        ins = [src, operand]
    attrs.update(act, PE=1, SIMD=1, inputDataType=dtypes[x], weightDataType=dtypes[w], resType="lut")
    if n.op_type != "IntMatMul":
        attrs["biasBits"] = bits(dtypes[n.inputs[2]])
        rows = mvau_rows(st.consts[w])
        attrs.update(nm_pattern(rows) or group_pattern(rows, bits(dtypes[w]), attrs.get("SIMDLimit", attrs["MW"])))
    add("MVAU", n.name, attrs, ins, [final], n.name + (f"+{requant.name}" if requant else ""))
    if n.op_type == "IntConv":
        return final, layout.CHANNELS_LAST
    return final, layout.TOKEN_MAJOR if len(shapes[out]) == 4 else layout.identity(len(shapes[out]))


def load_dataflow(source: str | Path, steps: int, plan=None, work_dir: str | Path | None = None) -> DataflowGraph:
    """A dataflow graph from a dataflow .onnx (``hwsim map``), an integer graph, a quantized model
    directory, or a float model directory quantized by ``plan`` (its export goes to ``work_dir``)."""
    source = Path(source)
    if source.is_file():
        if META_KEY in {p.key for p in onnx.load(str(source), load_external_data=False).metadata_props}:
            return DataflowGraph.load(source)
        return map_integer_graph(source, steps)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such graph file or model directory")
    if (source / GRAPH_FILE).is_file() and plan is None:
        return map_integer_graph(source / GRAPH_FILE, steps)
    if work_dir is None:
        raise ValueError(f"{source}: a float model needs --plan and a work directory for its integer graph")
    return map_integer_graph(export_model(source, plan, work_dir), steps)
