"""Stitched designs: a dataflow (sub)graph as one Verilog top of rtl/ blocks, with the memory files
taken from its integer graph and FIFOs sized by the schedule, and its check against the simulator.

Every stream becomes a valid/ready/data wire bundle; every node an instance of its block; each
FIFO the schedule asks for (:mod:`hwsim.dataflow.schedule`) an ``rtl/fifo`` on that edge. Streams
entering the subgraph become top ports ``in0``, ``in1``, ...; streams leaving it ``out0``, ...;
each timestep table gets a port ``t0``, ... for the sampler's step index (the host sends it).
A graph with activation scales per timestep group gets one more port, ``g``, for the group index of
each evaluation: every block whose constants differ between groups holds one table per group and
selects it at run time (rtl/common/group_hold.vh), fed from ``g`` by rtl/timestep/group_fanout.
Between blocks folded differently a data-width converter (rtl/dwc) is inserted, and n-way forks
and splits become chains of two-way ones; both on a copy of the graph. Everything is written into
``out_dir``; nothing into the working directory.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from hwsim.dataflow import layout
from hwsim.dataflow.graph import DataflowGraph
from hwsim.dataflow.mapping import mvau_rows
from hwsim.dataflow.nodes import DataflowNode, make_node
from hwsim.dataflow.nodes.base import bits
from hwsim.dataflow.schedule import schedule
from hwsim.intsim.executor import Simulator
from hwsim.quant.group_index import group_of
from hwsim.rtlgen.memfiles import (group_shift_words, group_split, mvau_memories, nm_compress, operand_loops, shift_params,
                                    write_banks, write_mem)
from hwsim.rtlgen.simulate import RTL

SOURCES = {"MVAU": "mvau/mvau.v", "Requant": "requant/requant.v", "GroupNorm": "groupnorm/groupnorm.v",
           "LutActivation": "lut/lut_activation.v", "FMPadding": "fmpad/fmpad.v",
           "ConvolutionInputGenerator_rtl": "swg/swg.v", "TimestepTable": "timestep/timestep_table.v",
           "elementwise": "elementwise/elementwise.v", "broadcast": "elementwise/broadcast.v",
           "DuplicateStreams": "duplicate/duplicate.v", "fifo": "fifo/fifo.v", "upsample": "upsample/upsample.v",
           "concat": "concat/concat.v", "split": "concat/split.v",
           "IntSoftmax": "softmax/softmax.v", "AdaLayerNorm": "adaln/adaln.v",
           "elementwise_const": "elementwise/elementwise_const.v", "StreamingDataWidthConverter": "dwc/dwc.v",
           "StreamReorder": "reorder/reorder.v", "group_fanout": "timestep/group_fanout.v"}
SUBMODULES = {"group_fanout": ("fifo",)}  # blocks built of other blocks (rtl/common's includes aside)
# blocks with per-timestep-group tables: their (groups, group-index width) parameter names
GROUPED_BLOCKS = {"mvau": ("GROUPS", "GBITS"), "requant": ("GROUPS", "GBITS"), "lut_activation": ("GROUPS", "GBITS"),
                  "softmax": ("GROUPS", "GBITS"), "adaln": ("GROUPS", "GBITS"), "elementwise_const": ("GROUPS", "GBITS"),
                  "groupnorm": ("STEP_GROUPS", "STEP_GBITS")}
GROUP_BITS = 8  # the g stream's width
# node types whose blocks hold constants of their integer node (a padding or sliding window made
# from a convolution shares the convolution's name but holds none of its constants)
HOLDS_CONSTANTS = {"MVAU", "Requant", "GroupNorm", "LutActivation", "IntSoftmax", "AdaLayerNorm", "ElementwiseAdd",
                   "ElementwiseMul"}


class StitchError(ValueError):
    """A subgraph the generator cannot build (a node type without RTL, mismatched stream widths)."""


@dataclass
class Port:
    name: str
    stream: str  # the dataflow stream it carries
    lanes: int
    bits: int
    signed: bool = True


@dataclass
class Design:
    top: Path
    sources: list[Path]
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)
    tables: list[Port] = field(default_factory=list)
    groups: list[Port] = field(default_factory=list)  # the ``g`` port of a grouped graph


def _ident(name: str) -> str:
    return "s_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


class _Context:
    """What the emitters need: the integer graph's constants and node attributes, the output dir."""

    def __init__(self, graph: DataflowGraph, out_dir: Path, timesteps: list[int]):
        self.sim = Simulator(graph.source)
        self.model = ModelWrapper(graph.source)
        self.int_nodes = {name: (op.__name__, ins, out, attrs) for name, op, ins, out, attrs in self.sim.nodes}
        self.graph, self.out, self.timesteps = graph, out_dir, timesteps
        self.env: dict[str, np.ndarray] | None = None  # every tensor at one input, for shapes

    def bits(self, tensor: str) -> int:
        return self.model.get_tensor_datatype(tensor).bitwidth()

    def table_rows(self, node: DataflowNode) -> np.ndarray:
        """[steps, dim]: the table's tensor at each sampler timestep (computed by the simulator)."""
        tensor = node.name.removeprefix("table_")
        shape = [d or 1 for d in self.sim.input_shapes["x"]]
        return np.stack([self.sim.run_integers(np.zeros(shape), np.array([t]))[tensor].reshape(-1) for t in self.timesteps])

    def const_streams(self, node: DataflowNode) -> np.ndarray:
        """An elementwise node's constant operand in its output's stream order, in every timestep
        group [groups, words]: one period of it if it repeats (a constant broadcast over the leading
        vectors) in every group."""
        (_, ins, out, _), = self.sources(node)
        if self.env is None:
            shape = [d or 1 for d in self.sim.input_shapes["x"]]
            self.env = self.sim.run_integers(np.zeros(shape), np.array([self.timesteps[0]]))
        tensor, order = self.graph.carries[node.outputs[0]]
        seqs = np.stack([np.transpose(np.broadcast_to(m.consts[ins[1]], self.env[tensor].shape), order).reshape(-1)
                         for m in self.sim.members])
        period = self.sim.consts[ins[1]].size
        if seqs.shape[1] % period == 0 and period % node.attrs["PE"] == 0 \
                and np.array_equal(seqs, np.tile(seqs[:, :period], seqs.shape[1] // period)):
            return seqs[:, :period]
        return seqs

    def source_names(self, node: DataflowNode) -> list[str]:
        """The integer nodes a dataflow node computes (an MVAU with its fused requantizer: two)."""
        return [s for s in node.source.split("+") if s in self.int_nodes]

    def sources(self, node: DataflowNode) -> list[tuple[str, list[str], str, dict]]:
        return [self.int_nodes[s] for s in self.source_names(node)]

    @property
    def groups(self) -> int:
        return len(self.sim.members)

    def per_group(self, tensor: str) -> np.ndarray:
        """A constant in every timestep group's graph, stacked [groups, ...] (the groups share names)."""
        return np.stack([m.consts[tensor] for m in self.sim.members])

    def group_attrs(self, node_name: str) -> list[dict]:
        """An integer node's attributes in every timestep group's graph."""
        return [next(a for n, _, _, _, a in m.nodes if n == node_name) for m in self.sim.members]

    def varies(self, node: DataflowNode) -> bool:
        """Whether any of the node's integer constants or attributes differ between timestep groups."""
        for name in self.source_names(node):
            _, ins, _, attrs = self.int_nodes[name]
            if any(str(a) != str(attrs) for a in self.group_attrs(name)):
                return True
            for i in ins:
                if i in self.sim.consts and any(not np.array_equal(m.consts[i], self.sim.consts[i]) for m in self.sim.members):
                    return True
        return False

    def same_in_every_group(self, node: DataflowNode, source: str, keys: tuple[str, ...]) -> dict:
        """The integer node's attributes ``keys``, which the block takes as parameters: they must not
        differ between timestep groups."""
        attrs = self.group_attrs(source)
        for k in keys:
            if any(a[k] != attrs[0][k] for a in attrs):
                raise StitchError(f"{node.name}: its {k} differs between timestep groups "
                                  f"({[a[k] for a in attrs]}), and its block takes {k} as a parameter")
        return attrs[0]

    def mem(self, name: str, values: np.ndarray, width: int, signed: bool = True) -> str:
        write_mem(self.out / name, values, width, signed)
        return name


def _bank(words: int, param: str) -> dict:
    """rtl/mvau's WBANK or rtl/groupnorm's BBANK, when the node's memory is banked."""
    return {param: words} if words else {}


def _per_channel(values, channels: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    return np.broadcast_to(values, (channels,)) if values.size == 1 else values


def _clamp(attrs: dict, out_bits: int) -> tuple[int, int]:
    """[qmin, qmax] within the output's declared INTn (an aligning requant clamps nowhere: +-2^63)."""
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    return max(int(attrs["qmin"]), lo), min(int(attrs["qmax"]), hi)


def _shifts(node: DataflowNode, ctx: _Context, source: str, channels: int) -> tuple[np.ndarray, int, int]:
    """(per-channel shifts of every timestep group [groups * channels], qmin, qmax) of the integer
    Requant ``source``."""
    attrs = ctx.same_in_every_group(node, source, ("qmin", "qmax"))
    shifts = np.concatenate([_per_channel(a["shifts"], channels) for a in ctx.group_attrs(source)])
    return shifts, *_clamp(attrs, node.dt("outputDataType"))


def _requant_of(node: DataflowNode, ctx: _Context) -> tuple[np.ndarray, int, int]:
    """(per-channel shifts of every timestep group, qmin, qmax) of an MVAU's fused requantization
    (zeros, 0, 0 without)."""
    if node.attrs.get("noActivation", 1):
        return np.zeros(ctx.groups * node.attrs["MH"], dtype=np.int64), 0, 0
    return _shifts(node, ctx, ctx.source_names(node)[1], node.attrs["MH"])


def _grouping(module: str, ctx: _Context, **per_evaluation) -> dict:
    """A grouped block's parameters: its table count, the g port's width and how much one
    evaluation is (nothing for an ungrouped graph: the blocks' defaults)."""
    if ctx.groups == 1:
        return {}
    groups, gbits = GROUPED_BLOCKS[module]
    return {groups: ctx.groups, gbits: GROUP_BITS, **per_evaluation}


def _dynamic_mvau(node: DataflowNode, uid: str, ctx: _Context) -> dict:
    """rtl/mvau with DYNAMIC = 1: the operand stream's loops from the order the mapping streams it in."""
    a = node.attrs
    order = tuple(a["operandOrder"])
    shape = (1, a["heads"], a["MW"], a["MH"]) if len(order) == 4 else (1, a["MW"], a["MH"])
    shifts, qmin, qmax = _requant_of(node, ctx)
    activation = not a.get("noActivation", 1)
    accbits = node.dt("accDataType")
    try:
        loops = operand_loops(order, shape, a["SIMD"])
    except ValueError as e:
        raise StitchError(f"{node.name}: {e}") from None
    return dict(MW=a["MW"], MH=a["MH"], PE=a["PE"], SIMD=a["SIMD"], ABITS=node.dt("inputDataType"),
                WBITS=node.dt("weightDataType"), BBITS=1, ACCBITS=accbits,
                OBITS=node.dt("outputDataType") if activation else accbits, SHBITS=8,
                SIGNED_IN=int(DataType[a["inputDataType"]].signed()), SIGNED_W=int(DataType[a["weightDataType"]].signed()),
                ACTIVATION=int(activation), QMIN=qmin, QMAX=qmax, DYNAMIC=1, HEADS=a["heads"],
                VECTORS=node.n_vectors(), OLANES=a["SIMD"], **loops, LUT_MULT=_lut_mult(node),
                SHIFT_FILE=ctx.mem(f"{uid}_shift.mem", shifts.reshape(-1, 1), 8), **(shift_params(shifts) if activation else {}),
                **_grouping("mvau", ctx))


def binary_forks(graph: DataflowGraph, names: list[str]) -> list[str]:
    """Every n-way StreamingSplit or DuplicateStreams among ``names`` (n > 2) replaced, in ``graph``
    (in place), by a chain of two-way ones (the blocks rtl/ has); the chain keeps the original
    output streams."""
    names = list(names)
    for node in [n for n in graph.nodes if n.name in set(names)]:
        k = len(node.outputs)
        if node.op_type not in ("StreamingSplit", "DuplicateStreams") or k <= 2:
            continue
        vecs, _, dtype = graph.streams[graph.stream(node.inputs[0])]
        chain, src = [], node.inputs[0]
        for i in range(k - 1):
            rest = node.outputs[-1] if i == k - 2 else f"{node.name}:rest{i}"
            attrs = dict(node.attrs)
            if node.op_type == "StreamingSplit":
                widths = node.attrs["ChannelsPerStream"][i:]
                attrs["ChannelsPerStream"] = [widths[0], sum(widths[1:])]
                graph.streams[rest] = (vecs, sum(widths[1:]), dtype)
            else:
                attrs["NumOutputStreams"] = 2
                graph.streams[rest] = graph.streams[graph.stream(node.inputs[0])]
            chain.append(make_node(node.op_type, f"{node.name}:{i}", attrs, inputs=[src], outputs=[node.outputs[i], rest],
                                   source=node.source))
            src = rest
        at = graph.nodes.index(node)
        graph.nodes[at:at + 1] = chain
        at = names.index(node.name)
        names[at:at + 1] = [c.name for c in chain]
    return names


def _lut_mult(node: DataflowNode) -> int:
    """rtl/common/multiply.vh's LUT_MULT from the node's resType, as the resource model prices it
    (``lut`` unless the folding gave the node the device's multiplier blocks)."""
    return int(node.attrs.get("resType", "lut") == "lut")


def _emit(node: DataflowNode, uid: str, ctx: _Context) -> tuple[str, dict]:
    """(module, parameters) of one node's block; memory files written."""
    a, t = node.attrs, node.op_type
    if t == "MVAU" and node.dynamic():
        return "mvau", _dynamic_mvau(node, uid, ctx)
    if t == "MVAU":
        (gemm, ins, out, _), *_ = ctx.sources(node)
        if any(not np.array_equal(m.consts[ins[1]], ctx.sim.consts[ins[1]]) for m in ctx.sim.members):
            raise StitchError(f"{node.name}: its weights differ between timestep groups; rtl/mvau holds one set")
        w = mvau_rows(ctx.sim.consts[ins[1]])  # a convolution's columns in (ky, kx, c) order
        bias = ctx.per_group(ins[2]).reshape(-1)  # every timestep group's, one after another
        activation = not a.get("noActivation", 1)
        shifts, qmin, qmax = _requant_of(node, ctx)
        bbits = ctx.bits(ins[2])
        accbits = max(node.dt("accDataType"), bbits + 1)
        sparse = {}
        if node.sparse():  # stored non-zeros and their positions (rtl/mvau with M > 1)
            w, positions = nm_compress(w, a["sparsityN"], a["sparsityM"])
            index = mvau_memories(positions, bias, shifts, a["PE"], a["SIMD"])["weights"]
            sparse = dict(N=a["sparsityN"], M=a["sparsityM"],
                          INDEX_FILE=ctx.mem(f"{uid}_index.mem", index, node.index_bits(), signed=False))
        grouped = {}
        if node.group_shift():  # q << shift per group of inputs (rtl/mvau with WGROUP > 0)
            group, _, shift_bits = node.group_shift()
            try:
                w, group_shifts = group_split(w, group, node.weight_width())
            except ValueError:
                group_shifts = None
            if group_shifts is None or int(group_shifts.max(initial=0)).bit_length() > shift_bits:
                raise StitchError(f"{node.name}: its weights are not {node.weight_width()}-bit integers shifted by "
                                  f"{shift_bits}-bit shifts per group of {group} inputs, as its attributes say")
            words = group_shift_words(group_shifts, a["PE"], a["SIMD"], group)
            grouped = dict(WGROUP=group, GSBITS=shift_bits,
                           GSHIFT_FILE=ctx.mem(f"{uid}_gshift.mem", words, shift_bits, signed=False))
        mem = mvau_memories(w, bias, shifts, a["PE"], a["SIMD"])
        wbits = node.weight_width()
        bank = node.weight_bank_words()
        weights = f"{uid}_weights.mem"
        if bank:  # the block reads only the banks, WEIGHT_FILE.bNN
            write_banks(ctx.out / weights, mem["weights"], wbits, bank)
        else:
            ctx.mem(weights, mem["weights"], wbits)
        return "mvau", dict(MW=a["MW"], MH=a["MH"], PE=a["PE"], SIMD=a["SIMD"], ABITS=node.dt("inputDataType"),
                            WBITS=wbits, BBITS=bbits, ACCBITS=accbits,
                            OBITS=node.dt("outputDataType") if activation else accbits, SHBITS=8,
                            SIGNED_IN=int(DataType[a["inputDataType"]].signed()),
                            ACTIVATION=int(activation), QMIN=qmin, QMAX=qmax,
                            WEIGHT_FILE=weights,
                            BIAS_FILE=ctx.mem(f"{uid}_bias.mem", mem["bias"], bbits),
                            SHIFT_FILE=ctx.mem(f"{uid}_shift.mem", mem["shift"], 8), LUT_MULT=_lut_mult(node),
                            **(shift_params(shifts) if activation else {}), **_bank(bank, "WBANK"),
                            **sparse, **grouped, **_grouping("mvau", ctx, VECTORS=node.n_vectors()))
    if t == "Requant":
        shifts, qmin, qmax = _shifts(node, ctx, ctx.source_names(node)[0], a["NumChannels"])
        return "requant", dict(CHANNELS=a["NumChannels"], PE=a["PE"], IBITS=node.dt("inputDataType"),
                               OBITS=node.dt("outputDataType"), SHBITS=8, QMIN=qmin, QMAX=qmax,
                               SHIFT_FILE=ctx.mem(f"{uid}_shift.mem", shifts.reshape(-1, 1), 8), **shift_params(shifts),
                               **_grouping("requant", ctx, VECTORS=node.n_vectors()))
    if t == "GroupNorm":
        (_, ins, _, _), = ctx.sources(node)
        ia = ctx.same_in_every_group(node, ctx.source_names(node)[0], ("ft", "fg", "qmin", "qmax"))
        return "groupnorm", dict(CHANNELS=a["NumChannels"], GROUPS=a["groups"], PE=a["PE"],
                                 PIXELS=int(math.prod(a["numInputVectors"])), IBITS=node.dt("inputDataType"),
                                 OBITS=node.dt("outputDataType"), FT=ia["ft"], FG=ia["fg"], GBITS=a["gammaBits"],
                                 BBITS=a["betaBits"], QMIN=ia["qmin"], QMAX=ia["qmax"],
                                 GAMMA_FILE=ctx.mem(f"{uid}_gamma.mem", ctx.per_group(ins[1]).reshape(-1, 1), a["gammaBits"]),
                                 BETA_FILE=ctx.mem(f"{uid}_beta.mem", ctx.per_group(ins[2]).reshape(-1, 1), a["betaBits"]),
                                 **_bank(node.buffer_bank_words(), "BBANK"), **_grouping("groupnorm", ctx))
    if t == "LutActivation":
        (_, ins, _, _), = ctx.sources(node)
        ia = ctx.same_in_every_group(node, ctx.source_names(node)[0], ("in_min",))
        obits = node.dt("outputDataType")
        return "lut_activation", dict(PE=a["PE"], IBITS=node.dt("inputDataType"), OBITS=obits, IN_MIN=ia["in_min"],
                                      TABLE_FILE=ctx.mem(f"{uid}_table.mem", ctx.per_group(ins[1]).reshape(-1, 1), obits),
                                      **_grouping("lut_activation", ctx,
                                                  WORDS=node.n_vectors() * a["NumChannels"] // a["PE"]))
    if t == "FMPadding":
        (h, w), (pt, pl, pb, pr) = a["ImgDim"], a["Padding"]
        return "fmpad", dict(H=h, W=w, CHANNELS=a["NumChannels"], SIMD=a["SIMD"], BITS=node.dt("inputDataType"),
                             PT=pt, PL=pl, PB=pb, PR=pr)
    if t == "ConvolutionInputGenerator_rtl":
        (kh, kw), (ih, iw), (sh, sw) = a["ConvKernelDim"], a["IFMDim"], a["Stride"]
        return "swg", dict(K_H=kh, K_W=kw, IH=ih, IW=iw, S_H=sh, S_W=sw, CHANNELS=a["IFMChannels"], SIMD=a["SIMD"],
                           BITS=node.dt("inputDataType"))
    if t == "TimestepTable":
        rows = ctx.table_rows(node)
        width = node.dt("EmbeddingType")
        return "timestep_table", dict(STEPS=len(ctx.timesteps), DIM=a["EmbeddingDim"], PE=a["PE"], BITS=width, IBITS=16,
                                      TABLE_FILE=ctx.mem(f"{uid}_table.mem", rows.reshape(-1, a["PE"]), width))
    if t in ("ElementwiseAdd", "ElementwiseMul"):
        op = 0 if t == "ElementwiseAdd" else 1
        common = dict(PE=a["PE"], ABITS=bits(a["lhs_dtype"]), BBITS=bits(a["rhs_dtype"]), OBITS=bits(a["out_dtype"]), OP=op,
                      LUT_MULT=_lut_mult(node))
        if a.get("rhs_style") == "const":
            roms = ctx.const_streams(node)
            return "elementwise_const", dict(common, WORDS=roms.shape[1] // a["PE"],
                                             CONST_FILE=ctx.mem(f"{uid}_const.mem", roms.reshape(-1, a["PE"]), common["BBITS"]),
                                             **_grouping("elementwise_const", ctx, EVAL_WORDS=node.elements() // a["PE"]))
        if node.rhs_stored():
            return "broadcast", dict(common, FOLDS=node.channels() // a["PE"], VECTORS=node.n_vectors())
        return "elementwise", common
    if t == "AdaLayerNorm":
        source = ctx.source_names(node)[0]
        ia = ctx.same_in_every_group(node, source, ("ft", "e_scale", "e_shift", "qmin", "qmax"))
        grouping = _grouping("adaln", ctx)
        if grouping:
            e_out = np.array([g["e_out"] for g in ctx.group_attrs(source)]).reshape(-1, 1)
            grouping["E_OUT_FILE"] = ctx.mem(f"{uid}_e_out.mem", e_out, 8)
        return "adaln", dict(CHANNELS=a["NumChannels"], PE=a["PE"], TOKENS=node.n_vectors(), IBITS=node.dt("inputDataType"),
                             OBITS=node.dt("outputDataType"), SBITS=a["scaleBits"], HBITS=a["shiftBits"], FT=ia["ft"],
                             E_SCALE=ia["e_scale"], E_SHIFT=ia["e_shift"], E_OUT=ia["e_out"],
                             QMIN=_clamp(ia, node.dt("outputDataType"))[0], QMAX=_clamp(ia, node.dt("outputDataType"))[1],
                             UNROLL=node.unroll(), **grouping)
    if t == "StreamReorder":
        from hwsim.rtlgen.reorder import reorder_sequence, seq_rom

        seq = a["sequence"] if "sequence" in a else reorder_sequence(ctx.graph, node)[0]
        try:
            words = layout.word_sequence(seq, a["PE"])
            layout._check_permutation(words)
        except ValueError as e:
            raise StitchError(f"{node.name}: {e}") from None
        slots = node.slots()
        return "reorder", dict(N=len(words), S=slots, PE=a["PE"], BITS=node.dt("inputDataType"),
                               SEQ_FILE=ctx.mem(f"{uid}_seq.mem", seq_rom(words, slots), max(1, (slots - 1).bit_length()),
                                                signed=False))
    if t == "StreamingDataWidthConverter":
        i, o = node.lanes()
        return "dwc", dict(IN=i, OUT=o, BITS=node.dt("dataType"))
    if t == "IntSoftmax":
        (_, ins, _, _), = ctx.sources(node)
        ia = ctx.same_in_every_group(node, ctx.source_names(node)[0], ("fo",))
        tables = ctx.per_group(ins[1])  # [groups, entries]
        tbits = max(1, int(tables.max()).bit_length())
        return "softmax", dict(LENGTH=a["NumChannels"], PE=a["PE"], IBITS=node.dt("inputDataType"),
                               OBITS=node.dt("outputDataType"), FO=ia["fo"], TBITS=tbits, TABLE_ENTRIES=tables.shape[1],
                               TABLE_FILE=ctx.mem(f"{uid}_table.mem", tables.reshape(-1, 1), tbits, signed=False),
                               **_grouping("softmax", ctx, ROWS=node.n_vectors()))
    if t == "UpsampleNearestNeighbour":
        return "upsample", dict(HI=a["HI"], WI=a["WI"], FACTOR=a["HO"] // a["HI"], CHANNELS=a["NumChannels"],
                                SIMD=a["SIMD"], BITS=node.dt("inputDataType"))
    if t in ("StreamingConcat", "StreamingSplit"):
        widths = [bits(d) for d in a.get("inputDataTypes", [a.get("inputDataType")])]
        if len(a["ChannelsPerStream"]) != 2:
            raise StitchError(f"{node.name}: only two-stream concats are built ({a['ChannelsPerStream']})")
        c0, c1 = a["ChannelsPerStream"]
        if t == "StreamingSplit":
            return "split", dict(C0=c0, C1=c1, SIMD=a["SIMD"], BITS=widths[0])
        return "concat", dict(C0=c0, C1=c1, SIMD=a["SIMD"], BITS=bits(ctx.graph.streams[node.outputs[0]][2]), BITS0=widths[0], BITS1=widths[1])
    if t == "DuplicateStreams":
        if a["NumOutputStreams"] != 2:
            raise StitchError(f"{node.name}: only two-way forks are built")
        return "duplicate", dict(WIDTH=a["PE"] * node.dt("inputDataType"))
    raise StitchError(f"{node.name}: node type {t} has no RTL yet")


def _ports(module: str, params: dict) -> tuple[list[str], list[str]]:
    if params.get("DYNAMIC"):
        return ["in", "op"], ["out"]
    if module == "adaln":
        return ["in", "scale", "shift"], ["out"]
    if module in ("elementwise", "broadcast", "concat"):
        return ["in0", "in1"], ["out"]
    if module in ("duplicate", "split"):
        return ["in"], ["out0", "out1"]
    return ["in"], ["out"]


def _tie_offs(module: str, params: dict) -> list[str]:
    """Input ports a block has but this use of it does not: a static MVAU's operand stream, the
    timestep-group index of a block with one table."""
    ties = []
    if module == "mvau" and not params.get("DYNAMIC"):
        ties.append(".op_valid(1'b0), .op_data({0}), .op_ready()".replace("{0}", "{(%d){1'b0}}" % (params["WBITS"])))
    if module in GROUPED_BLOCKS and not _is_grouped(module, params):
        ties.append(".g_valid(1'b0), .g_data(8'd0), .g_ready()")
    return ties


def _is_grouped(module: str, params: dict) -> bool:
    return module in GROUPED_BLOCKS and params.get(GROUPED_BLOCKS[module][0], 1) > 1


def _value(v) -> str:
    """A parameter value; integers beyond 32 bits as sized 64-bit literals (an unsized one is 32)."""
    if isinstance(v, str):
        return f'"{v}"'
    v = int(v)
    if -(2**31) <= v < 2**31:
        return str(v)
    return f"-64'sd{-v}" if v < 0 else f"64'sd{v}"


# Most blocks pass a ready upstream in the same cycle (``en = !out_valid || out_ready``), so a run of
# them is one combinational path from the last block's consumer to the first block's producer: at
# most this many blocks in a row, then a register slice (a two-word rtl/fifo, whose in_ready is a
# register's) on the edge. (A run of eight was the unet-fashion share's critical path, 17 ns; a run
# of four, ending in an edge FIFO's pop, was its 12 ns critical path at 83 MHz.)
READY_RUN = 2


def _slices(graph: DataflowGraph, nodes: list, produced: dict, fifo_depth: dict, limit: int = READY_RUN) -> set:
    """The edges (stream, consumer) that get a register slice: walking from the outputs up, a
    block's run is one more than its longest unbroken consumer's; an edge into a consumer whose run
    has reached ``limit`` is cut (a FIFO edge is cut already)."""
    consumers: dict[str, list[str]] = {}
    for n in nodes:
        for i in n.inputs:
            if graph.stream(i) in produced:
                consumers.setdefault(graph.stream(i), []).append(n.name)
    run, cut = {}, set()
    for n in reversed(nodes):  # graph order is topological: consumers first
        longest = 0
        for o in n.outputs:
            for c in consumers.get(o, []):
                if fifo_depth.get((o, c)):
                    continue
                if run.get(c, limit) >= limit:
                    cut.add((o, c))
                else:
                    longest = max(longest, run[c])
        run[n.name] = longest + 1
    return cut


def generate(graph: DataflowGraph, names: list[str], out_dir: str | Path, timesteps: list[int],
             top: str = "stitched") -> Design:
    """Write ``out_dir/<top>.v`` and the memory files for the nodes ``names`` of ``graph``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graph = copy.deepcopy(graph)  # n-way forks are expanded on a copy: the caller's graph stays as mapped
    ctx = _Context(graph, out, timesteps)
    names = binary_forks(graph, names)
    names += graph.insert_dwcs(set(names))  # between differently folded nodes (on the copy)
    nodes = [n for n in graph.nodes if n.name in set(names)]
    if len(nodes) != len(set(names)):
        missing = sorted(set(names) - {n.name for n in nodes})
        raise StitchError(f"no such dataflow nodes: {missing[:5]}")
    produced = {o: n for n in nodes for o in n.outputs}
    read = {graph.stream(i) for n in nodes for i in n.inputs}
    width = {}  # stream -> (lanes, bits)
    for n in nodes:
        for o in n.outputs:
            width[o] = (n.out_lanes(), bits(graph.streams[o][2]))
    fifo_depth = {(f.stream, f.consumer): f.depth for f in schedule(graph).fifos}
    sliced = _slices(graph, nodes, produced, fifo_depth)
    decl, inst, design = [], [], Design(out / f"{top}.v", [])
    ports, body, top_ports = [], [], set()

    def sig(name: str) -> str:  # top-level ports keep their names (in0, out0, t0); wires are prefixed
        return name if name in top_ports else _ident(name)

    def bundle(name: str, w: int, direction: str | None = None) -> None:
        if direction:
            top_ports.add(name)
        ident = sig(name)
        if direction == "in":
            ports.append(f"    input  wire {ident}_valid, output wire {ident}_ready, input  wire [{w - 1}:0] {ident}_data")
        elif direction == "out":
            ports.append(f"    output wire {ident}_valid, input  wire {ident}_ready, output wire [{w - 1}:0] {ident}_data")
        else:
            decl.append(f"    wire {ident}_valid, {ident}_ready;\n    wire [{w - 1}:0] {ident}_data;")

    fanned = 0  # grouped blocks so far: block i takes the group from output i of the fan-out
    for k, n in enumerate(nodes):
        uid = f"u{k}"
        module, params = _emit(n, uid, ctx)
        if ctx.groups > 1 and n.op_type in HOLDS_CONSTANTS and not _is_grouped(module, params) and ctx.varies(n):
            raise StitchError(f"{n.name} ({n.op_type}): its constants differ between timestep groups, and its "
                              f"block ({module}) holds one set; blocks with per-group tables: {sorted(GROUPED_BLOCKS)}")
        in_ports, out_ports = _ports(module, params)
        conns = []
        srcs = [graph.stream(i) for i in n.inputs]
        if n.op_type == "TimestepTable":
            port = Port(f"t{len(design.tables)}", n.name, 1, 16)
            design.tables.append(port)
            bundle(port.name, 16, "in")
            srcs = [port.name]
        for index, (port_name, s) in enumerate(zip(in_ports, srcs)):
            if s in produced or n.op_type == "TimestepTable":
                wire = s
            else:  # enters the subgraph
                lanes = n.in_lanes(index)
                b = bits(graph.streams[s][2])
                if s not in [p.stream for p in design.inputs]:
                    design.inputs.append(Port(f"in{len(design.inputs)}", s, lanes, b))
                    bundle(design.inputs[-1].name, lanes * b, "in")
                wire = next(p.name for p in design.inputs if p.stream == s)
            depth = fifo_depth.get((s, n.name))
            # (instance, output wire, words, registered): the schedule's FIFO (its write and its read
            # registered, OUTREG = INREG = 1), or a register slice (a first-word fall-through pair)
            buffer = None
            if depth and s in produced:
                buffer = (f"{uid}_fifo{index}", f"{s}__fifo_{k}", max(2, math.ceil(depth / width[s][0])), 1)
            elif (s, n.name) in sliced:
                buffer = (f"{uid}_slice{index}", f"{s}__slice_{k}_{index}", 2, 0)
            if buffer:
                instance, buffered, words, registered = buffer
                w = width[s][0] * width[s][1]
                bundle(buffered, w)
                body.append(f"    fifo #(.WIDTH({w}), .DEPTH({words}), .OUTREG({registered}), .INREG({registered})) {instance} (\n"
                            f"        .clk(clk), .rst(rst), .in_valid({_ident(wire)}_valid), .in_ready({_ident(wire)}_ready), "
                            f".in_data({_ident(wire)}_data),\n        .out_valid({_ident(buffered)}_valid), "
                            f".out_ready({_ident(buffered)}_ready), .out_data({_ident(buffered)}_data));")
                wire = buffered
            conns.append((port_name, wire))
        for port_name, o in zip(out_ports, n.outputs):
            lanes, b = width[o]
            if o in read:
                bundle(o, lanes * b)
                conns.append((port_name, o))
            else:  # leaves the subgraph
                design.outputs.append(Port(f"out{len(design.outputs)}", o, lanes, b, DataType[graph.streams[o][2]].signed()))
                bundle(design.outputs[-1].name, lanes * b, "out")
                conns.append((port_name, design.outputs[-1].name))
        plist = ", ".join(f".{k2}({_value(v)})" for k2, v in params.items())
        group_port = []
        if _is_grouped(module, params):
            group_port = [f".g_valid(g_fan_valid[{fanned}]), .g_ready(g_fan_ready[{fanned}]), "
                          f".g_data(g_fan_data[{fanned * GROUP_BITS} +: {GROUP_BITS}])"]
            fanned += 1
        clist = ",\n        ".join([f".{p}_valid({sig(w)}_valid), .{p}_ready({sig(w)}_ready), .{p}_data({sig(w)}_data)"
                                    for p, w in conns] + _tie_offs(module, params) + group_port)
        inst.append(f"    // {n.name} ({n.op_type})\n    {module} #({plist}) {uid} (\n        .clk(clk), .rst(rst),\n        {clist});")
    if fanned:  # the host's group index, one word per evaluation, to every grouped block
        design.groups.append(Port("g", "timestep group", 1, GROUP_BITS, signed=False))
        bundle("g", GROUP_BITS, "in")
        decl.append(f"    wire [{fanned - 1}:0] g_fan_valid, g_fan_ready;\n    wire [{fanned * GROUP_BITS - 1}:0] g_fan_data;")
        inst.append(f"    // the timestep group to {fanned} grouped blocks\n"
                    f"    group_fanout #(.N({fanned}), .GBITS({GROUP_BITS}), .DEPTH(4)) u_group (\n        .clk(clk), .rst(rst),\n"
                    f"        .in_valid(g_valid), .in_ready(g_ready), .in_data(g_data),\n"
                    f"        .out_valid(g_fan_valid), .out_ready(g_fan_ready), .out_data(g_fan_data));")
    text = (f"// Generated by hwsim.rtlgen.stitch from {graph.source}: {len(nodes)} dataflow nodes.\n"
            f"`default_nettype none\n\nmodule {top} (\n    input wire clk,\n    input wire rst,\n"
            + ",\n".join(ports) + "\n);\n" + "\n".join(decl) + "\n\n" + "\n".join(body + inst) + "\nendmodule\n\n`default_nettype wire\n")
    design.top.write_text(text)
    used = {m for m in re.findall(r"^    (\w+) #\(", text, flags=re.M)}
    used |= {d for m in used for d in SUBMODULES.get(m, ())}
    files = {Path(f).stem: f for f in SOURCES.values()}  # each block's module is named as its file
    design.sources = sorted(RTL / files[m] for m in used)
    _write_manifest(design, graph, nodes, top)
    return design


MANIFEST = "design.json"


def _write_manifest(design: Design, graph: DataflowGraph, nodes: list[DataflowNode], top: str) -> None:
    """``design.json`` beside the top: what a synthesis or simulation flow needs to build the design
    from its directory alone (sources, include directory, memory files, ports), and the share of
    the denoiser's MACs it computes."""
    import json

    out = design.top.parent
    ports = [dict(vars(p), direction=d) for d, group in (("in", design.inputs), ("table", design.tables),
                                                        ("group", design.groups), ("out", design.outputs)) for p in group]
    manifest = {"top": top, "top_file": design.top.name, "sources": [str(s) for s in design.sources],
                "include_dirs": [str(RTL / "common")], "memory_files": sorted({f.name for pattern in ("*.mem", "*.mem.b[0-9][0-9]")
                                                                           for f in out.glob(pattern)}),
                "ports": ports, "graph": str(graph.source), "nodes": [{"name": n.name, "op_type": n.op_type} for n in nodes],
                "macs": sum(n.macs() for n in nodes), "graph_macs": graph.macs()}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def load_manifest(design_dir: str | Path) -> dict:
    """The manifest of a generated design directory, with a clear error if it is not one."""
    import json

    path = Path(design_dir) / MANIFEST
    if not path.is_file():
        raise StitchError(f"{design_dir}: not a generated design (no {MANIFEST}; make one with `hwsim rtl`)")
    return json.loads(path.read_text())


def _stream_words(graph: DataflowGraph, stream: str, env: dict[str, np.ndarray], lanes: int) -> list[list[int]]:
    """The words of ``stream`` for one evaluation: its integer tensor in its stream order."""
    if stream not in graph.carries:
        raise StitchError(f"stream {stream!r} carries no whole integer tensor: choose a subgraph boundary elsewhere")
    tensor, order = graph.carries[stream]
    return np.transpose(env[tensor], order).astype(np.int64).reshape(-1, lanes).tolist()


def varying_nodes(graph: DataflowGraph, names: list[str] | None = None) -> list[str]:
    """The nodes (of ``names``, default all) whose constants differ between the timestep groups of a
    grouped graph: the blocks that get per-group tables."""
    ctx = _Context(graph, Path("."), [0])
    return [n.name for n in graph.nodes if (names is None or n.name in set(names)) and n.op_type in HOLDS_CONSTANTS
            and ctx.varies(n)]


def block_nodes(graph: DataflowGraph, prefix: str) -> list[str]:
    """The nodes of one network block: those from integer nodes named ``prefix...``, with the
    timestep tables, elementwise adds/multiplies and channel splits that join them (a residual's
    bias and skip add, attention's q/k/v split, a DiT block's gate)."""
    names = {n.name for n in graph.nodes if n.name.startswith(prefix)}
    if not names:
        raise StitchError(f"no dataflow node is named {prefix!r}...")
    joins = {"ElementwiseAdd", "ElementwiseMul", "TimestepTable", "StreamingSplit"}
    changed = True
    while changed:
        changed = False
        outputs = {o for n in graph.nodes if n.name in names for o in n.outputs}
        reads = {graph.stream(i) for n in graph.nodes if n.name in names for i in n.inputs}
        for n in graph.nodes:
            if n.name in names or n.op_type not in joins:
                continue
            if any(graph.stream(i) in outputs for i in n.inputs) or any(o in reads for o in n.outputs):
                names.add(n.name)
                changed = True
    return [n.name for n in graph.nodes if n.name in names]


def fold_uniform(graph: DataflowGraph, names: list[str], lanes: int) -> None:
    """Every folding factor of the nodes ``names`` set to ``lanes`` (every stream between them then
    has one width, and no data-width converter is needed)."""
    for n in graph.nodes:
        if n.name in names:
            n.set_folding(**{a: lanes for a in n.FOLD})


def verify(graph: DataflowGraph, names: list[str], out_dir: str | Path, timesteps: list[int], samples: int = 20,
           sim: str = "icarus", seed: int = 0, backpressure: bool = True, lanes: int | None = 1,
           bench: str = "cocotb") -> dict:
    """Fold the subgraph to ``lanes`` everywhere (None: keep the graph's folding), generate it, drive it with the integer tensors the
    simulator computes at its boundary for ``samples`` random (x, t), compare with the simulator's.
    ``bench="cocotb"`` also measures each node's output toggle rate; ``bench="file"`` (a Verilog
    testbench, :mod:`hwsim.rtlgen.filebench`) is the one for whole denoisers, and reports the cycle
    of the last output (``cycles``) and of each evaluation's last output word (``evaluation_ends``;
    without back-pressure also ``measured``: the first evaluation's latency and the mean interval
    between evaluations). ``modelled`` is the schedule of the whole mapped graph at this folding
    (:func:`hwsim.dataflow.schedule.schedule`): comparable with ``cycles`` and ``measured`` for a whole
    denoiser run without back-pressure, ``samples`` evaluations back to back."""
    from hwsim.rtlgen.filebench import run_file_bench
    from hwsim.rtlgen.memfiles import pack, unpack
    from hwsim.rtlgen.simulate import run_stream

    if bench not in ("cocotb", "file"):
        raise ValueError(f"unknown bench {bench!r}; known: cocotb, file")
    out = Path(out_dir)
    if lanes is not None:
        fold_uniform(graph, names, lanes)
    design = generate(graph, names, out, timesteps)
    sched = schedule(graph)
    ref = Simulator(graph.source)
    rng = np.random.default_rng(seed)
    shape = [d or 1 for d in ref.input_shapes["x"]]
    hosts = design.inputs + design.tables + design.groups  # ports the host drives
    feeds = {p.name: [] for p in hosts}
    expect = {p.name: [] for p in design.outputs}
    for _ in range(samples):
        step = int(rng.integers(len(timesteps)))
        env = ref.run_integers(rng.standard_normal(shape), np.array([timesteps[step]]))
        for p in design.inputs:
            feeds[p.name] += [pack(w, p.bits) for w in _stream_words(graph, p.stream, env, p.lanes)]
        for p in design.tables:
            feeds[p.name].append(step)
        for p in design.groups:
            feeds[p.name].append(int(group_of([timesteps[step]], ref.groups, ref.num_train_timesteps)[0]))
        for p in design.outputs:
            expect[p.name] += _stream_words(graph, p.stream, env, p.lanes)
    ii = sched.ii_sustained
    budget = 4 * (samples * ii + sched.latency) + 10_000  # back-pressure at most halves the rate
    report = {}
    if bench == "file":
        result = run_file_bench(design.sources + [design.top], design.top.stem,
                                {p.name: (p.lanes * p.bits, feeds[p.name]) for p in hosts},
                                {p.name: (p.lanes * p.bits, len(expect[p.name])) for p in design.outputs},
                                out, sim, backpressure, seed, budget)
        report["cycles"] = result["cycles"]
        # the cycle of each evaluation's last output word: steady-state intervals from one run
        ends = [max(result["word_cycles"][p.name][(k + 1) * len(expect[p.name]) // samples - 1]
                    for p in design.outputs if expect[p.name]) for k in range(samples)]
        report["evaluation_ends"] = ends
        if not backpressure:  # as the schedule models them: comparable with ``modelled`` for a whole denoiser
            report["measured"] = {"latency": ends[0]}
            if samples > 1:
                report["measured"]["ii_sustained"] = round((ends[-1] - ends[0]) / (samples - 1))
    else:
        internal = {n.name: _ident(n.outputs[0]) for n in graph.nodes if n.name in set(names) and n.outputs
                    and n.outputs[0] not in {p.stream for p in design.outputs}}
        if sim == "ecp5-netlist":  # synthesis renames the internal streams: no toggle probes
            internal = {}
        result = run_stream(design.sources + [design.top], design.top.stem, {}, feeds,
                            {p: len(v) for p, v in expect.items()}, out, sim, backpressure, seed, budget,
                            probes=sorted(set(internal.values())))
        toggles = result["toggles"]
        # toggles per bit per word of each node's (first) output stream in the RTL, for the FPGA energy model
        if internal:
            report["activity"] = {name: toggles[w]["toggles"] / max(1, (toggles[w]["words"] - 1) * toggles[w]["width"])
                                  for name, w in internal.items()}
    got = {p.name: [unpack(w, p.lanes, p.bits, p.signed) for w in result["outputs"][p.name]] for p in design.outputs}
    mismatched = {p: sum(a != b for a, b in zip(got[p], expect[p])) for p in expect}
    return {"nodes": len(names), "samples": samples, "sim": sim, "bench": bench, "groups": feeds.get("g", []),
            "bit_exact": all(v == 0 for v in mismatched.values()) and all(len(got[p]) == len(expect[p]) for p in expect),
            "mismatched_words": mismatched, "words": {p: len(v) for p, v in expect.items()}, "top": str(design.top),
            "modelled": {"ii": sched.ii, "ii_sustained": ii, "latency": sched.latency,
                         "cycles": sched.latency + (samples - 1) * ii}, **report}
