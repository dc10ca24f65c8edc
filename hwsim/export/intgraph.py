"""Build the all-integer graph of a hardware-exact quantized net by tracing its module tree.

Route (docs/numerics.md): torch.fx traces the quantized net with Brevitas layers and hwsim's
hardware-exact modules as leaves; an interpreter runs the trace on an example input and, node
by node, emits the integer ops of :mod:`hwsim.export.ops`, tracking the power-of-two exponent
of every tensor (per tensor, or per channel along one axis). Why not Brevitas' ONNX export:
its TorchScript route cannot carry attention and exports GroupNorm/SiLU/softmax as float ops,
so the float-to-integer lowering would have to rediscover what the module tree states plainly.
The result is an ONNX file (qonnx ModelWrapper) with a datatype on every tensor and the
exponents in the model metadata; float appears only at the input quantizer and the output.

A net with activation scales per timestep group (:class:`TimestepGroupedNet`) becomes one graph
per group with the same nodes: requantizations that are the identity in one group are kept in
every group (the hardware needs the unit if any group uses it), every tensor's datatype is the
widest over the groups, and the first group's file names the others in its metadata
(``hwsim.timestep_groups``), so ``Simulator(path)`` runs each sample through its group's graph.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.fx as fx
from brevitas.nn import QuantConv2d, QuantLinear
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from torch import nn

from hwsim.export import ops
from hwsim.intsim.ops.lut import int_range
from hwsim.nets.unet import Concat
from hwsim.quant import modules as hw
from hwsim.quant.timestep_groups import TimestepGroupedNet

LEAVES = (QuantConv2d, QuantLinear, hw.IntGroupNorm, hw.IntModulation, hw.LUTActivation, hw.IntSoftmax, hw.QuantMatMul,
          hw.TimestepTable, hw.PassTimestep, Concat, hw.SplitConcat, hw.GroupQuantLayer, hw.IntegerInputLayer, nn.Upsample,
          nn.Identity)


class ExportError(RuntimeError):
    """The module tree holds something the integer graph cannot represent."""


@dataclass
class IntTensor:
    """An integer tensor of the graph: name, exponents (one, or one per channel along ``axis``),
    the largest |value| it can hold (from datatypes and weights), its shape (batch first), and
    the exact value interval where an op clamps to one (``[qmin, qmax]``; else ``[-bound, bound]``)."""

    name: str
    exp: np.ndarray
    axis: int
    bound: int
    shape: tuple[int, ...]
    clamp: tuple[int, int] | None = None

    @property
    def interval(self) -> tuple[int, int]:
        return self.clamp or (-self.bound, self.bound)

    @property
    def per_channel(self) -> bool:
        return len(self.exp) > 1


def signed_bits(lo: int, hi: int) -> int:
    """The narrowest two's-complement width (>= 2) holding [lo, hi]."""
    return max(2, (-lo - 1).bit_length() + 1 if lo < 0 else 1, hi.bit_length() + 1)


def exponent(scale: float | torch.Tensor, where: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(torch.as_tensor(scale).detach().double().reshape(-1).numpy()))
    exps = np.round(np.log2(values)).astype(np.int64)
    if not np.array_equal(2.0**exps, values):
        raise ExportError(f"{where}: scale {values[:4]} is not a power of two; the integer graph needs scale: po2")
    return exps if len(set(exps.tolist())) > 1 else exps[:1]


def _split(args):
    """fx values flow as (tensor, IntTensor-or-input-name) pairs; split them from plain values."""
    values, metas = [], []
    for a in args:
        if isinstance(a, tuple) and len(a) == 2 and torch.is_tensor(a[0]):
            values.append(a[0])
            metas.append(a[1])
        else:
            values.append(a)
    return values, metas


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, name: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, name)


class _Builder(fx.Interpreter):
    """Runs the traced net on concrete inputs and emits integer ops for every fx node."""

    def __init__(self, module: nn.Module, elide: bool = True):
        """``elide=False`` keeps requantizations that are the identity here (see the module docstring)."""
        super().__init__(module, graph=_Tracer().trace(module))
        self.elide = elide
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.tensors: dict[str, IntTensor] = {}
        self.count = 0

    # --- emitting -------------------------------------------------------------------------
    def _emit(self, op: str, inputs: list[str], base: str, exp, ch_axis: int, bound: int, out_shape,
              clamp: tuple[int, int] | None = None, **attrs) -> IntTensor:
        self.count += 1
        out = f"{base.replace('.', '_')}_{op}_{self.count}"
        self.nodes.append(ops.make_node(op, inputs, [out], name=f"{base}:{op}:{self.count}", **attrs))
        if int(bound).bit_length() + 1 > 64:
            raise ExportError(f"{base}: values up to {bound} do not fit int64")
        exp = np.atleast_1d(np.asarray(exp, dtype=np.int64))
        exp = exp[:1] if np.all(exp == exp[0]) else exp  # one exponent if all channels agree
        if "qmin" in attrs and clamp is None:
            clamp = (attrs["qmin"], attrs["qmax"])
        tensor = IntTensor(out, exp, ch_axis, int(bound), tuple(out_shape), clamp)
        self.tensors[out] = tensor
        return tensor

    def _init(self, base: str, array: np.ndarray) -> str:
        """A constant, stored in the narrowest integer type that holds it (the simulator widens)."""
        self.count += 1
        name = f"{base.replace('.', '_')}_{self.count}"
        peak = int(np.abs(array).max()) if array.size else 0
        dtype = next(d for d in (np.int8, np.int16, np.int32, np.int64) if peak <= np.iinfo(d).max)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array.astype(dtype)), name))
        return name

    def _requant(self, src, exp: int, bits: int, base: str, shape) -> IntTensor:
        """Quantize ``src`` (the float input's name, or an IntTensor) to exponent ``exp``, signed ``bits``."""
        qmin, qmax = int_range(int(bits), True)
        lo, hi = (None, None) if isinstance(src, str) else src.interval
        if self.elide and not isinstance(src, str) and np.all(src.exp == exp) and qmin <= lo and hi <= qmax:
            return src  # already on this grid and inside the range: the requant would be the identity
        if isinstance(src, str):
            return self._emit("QuantInput", [src], base, exp, 1, -qmin, shape, exponent=int(exp), qmin=qmin, qmax=qmax)
        return self._emit("Requant", [src.name], base, exp, src.axis, -qmin, src.shape,
                          shifts=(int(exp) - src.exp).tolist(), axis=src.axis, qmin=qmin, qmax=qmax)

    def _align(self, src: IntTensor, target: np.ndarray, axis: int, base: str) -> IntTensor:
        """Exact left shifts giving ``src`` the exponents ``target`` (each <= src's)."""
        shifts = np.asarray(target) - src.exp  # broadcasts one exponent against one per channel
        if self.elide and np.all(shifts == 0):
            return src
        if np.any(shifts > 0):
            raise ExportError(f"{base}: alignment would round")
        axis = src.axis if src.per_channel else axis
        return self._emit("Requant", [src.name], base, np.broadcast_to(target, shifts.shape), axis,
                          src.bound << int(-shifts.min()), src.shape, shifts=shifts.tolist(), axis=axis)

    def _per_tensor(self, src: IntTensor, base: str) -> IntTensor:
        return self._align(src, src.exp.min(keepdims=True), src.axis, base) if src.per_channel else src

    # --- fx node handlers -----------------------------------------------------------------
    def placeholder(self, target, args, kwargs):
        value = super().placeholder(target, args, kwargs)
        if target == "t":
            return value, IntTensor("t", np.zeros(1, dtype=np.int64), 0, 2**31, tuple(value.shape))
        return value, target

    def call_module(self, target, args, kwargs):
        values, metas = _split(args)
        module = self.fetch_attr(target)
        out = module(*values, **kwargs)
        return out, self._lower_module(target, module, values, metas, out)

    def _lower_module(self, name: str, m: nn.Module, values, ins, out: torch.Tensor):
        shape = tuple(out.shape)
        if isinstance(m, (nn.Identity, hw.PassTimestep)):
            return ins[0]
        if isinstance(m, (QuantConv2d, QuantLinear, hw.GroupQuantLayer)):
            return self._lower_layer(name, m, ins[0], values[0], out)
        if isinstance(m, hw.IntegerInputLayer):
            return self._lower_integer_input(name, m, ins[0], values[0], out)
        if isinstance(m, hw.IntGroupNorm):
            q = self._requant(ins[0], exponent(m.in_quant.act_quant.scale(), name)[0], m.in_bits, name, values[0].shape)
            lo, hi = int_range(m.bits, True)
            gb = [self._init(f"{name}.g", m.g_c.numpy()), self._init(f"{name}.b", m.b_c.numpy())]
            return self._emit("GroupNorm", [q.name, *gb], name, exponent(m.out_scale, name), 1, -lo, shape,
                              groups=m.groups, ft=m.FT, fg=m.FG, qmin=lo, qmax=hi)
        if isinstance(m, hw.IntModulation):
            x, shift, scale = ins
            q = self._requant(x, exponent(m.in_quant.act_quant.scale(), name)[0], m.bits, name, values[0].shape)
            for label, meta, e in (("shift", shift, m.e_shift), ("scale", scale, m.e_scale)):
                if meta.per_channel or int(meta.exp[0]) != e:
                    raise ExportError(f"{name}: {label} table exponent {meta.exp.tolist()} differs from the module's {e}")
            lo, hi = int_range(m.bits, True)
            return self._emit("Modulate", [q.name, scale.name, shift.name], name, exponent(m.out_scale, name), 2, -lo,
                              shape, ft=m.FT, e_scale=m.e_scale, e_shift=m.e_shift,
                              e_out=int(exponent(m.out_scale, name)[0]), qmin=lo, qmax=hi)
        if isinstance(m, hw.LUTActivation):
            q = self._requant(ins[0], exponent(m.in_scale, name)[0], m.bits, name, values[0].shape)
            table = m.table.numpy()
            return self._emit("Lut", [q.name, self._init(f"{name}.table", table)], name, exponent(m.out_scale, name),
                              q.axis, int(np.abs(table).max()), shape, (int(table.min()), int(table.max())),
                              in_min=int_range(m.bits, True)[0])
        if isinstance(m, hw.IntSoftmax):
            q = self._requant(ins[0], exponent(m.in_quant.act_quant.scale(), name)[0], m.bits, name, values[0].shape)
            fo = m.bits - 1
            return self._emit("Softmax", [q.name, self._init(f"{name}.table", m.table.numpy())], name, [-fo], q.axis,
                              2**fo, shape, (0, 2**fo), fo=fo)
        if isinstance(m, hw.QuantMatMul):
            qa, qb = m.quant_a.act_quant, m.quant_b.act_quant
            a = self._requant(ins[0], exponent(qa.scale(), name)[0], int(qa.bit_width()), f"{name}.a", values[0].shape)
            b = self._requant(ins[1], exponent(qb.scale(), name)[0], int(qb.bit_width()), f"{name}.b", values[1].shape)
            return self._emit("IntMatMul", [a.name, b.name], name, a.exp + b.exp, 0, a.bound * b.bound * values[0].shape[-1], shape)
        if isinstance(m, hw.TimestepTable):
            table = m.table.numpy()
            return self._emit("TableLookup", [ins[0].name, self._init(f"{name}.table", table)], name,
                              exponent(m.scale, name), 1, int(np.abs(table).max()), shape)
        if isinstance(m, (Concat, hw.SplitConcat)):
            (a, b), (va, vb) = ins, values
            if isinstance(m, hw.SplitConcat):  # each input to its own grid first
                a = self._requant(a, exponent(m.quant_a.act_quant.scale(), name)[0], m.bits, f"{name}.a", va.shape)
                b = self._requant(b, exponent(m.quant_b.act_quant.scale(), name)[0], m.bits, f"{name}.b", vb.shape)
            if (a.per_channel and a.axis != 1) or (b.per_channel and b.axis != 1):
                raise ExportError(f"{name}: concatenation expects channel exponents on axis 1")
            exps = np.concatenate([np.broadcast_to(a.exp, (va.shape[1],)), np.broadcast_to(b.exp, (vb.shape[1],))])
            clamp = (min(a.interval[0], b.interval[0]), max(a.interval[1], b.interval[1]))
            return self._emit("Concat", [a.name, b.name], name, exps, 1, max(a.bound, b.bound), shape, clamp, axis=1)
        if isinstance(m, nn.Upsample):
            if m.mode != "nearest" or float(m.scale_factor) != 2.0:
                raise ExportError(f"{name}: only nearest x2 upsampling is supported")
            src = ins[0]
            return self._emit("Upsample", [src.name], name, src.exp, src.axis, src.bound, shape, src.clamp, factor=2)
        raise ExportError(f"{name}: unsupported module {type(m).__name__}")

    def _lower_layer(self, name: str, m, src, value: torch.Tensor, out: torch.Tensor) -> IntTensor:
        e_in = exponent(m.input_quant.scale(), name)[0]
        bits = int(m.input_quant.bit_width())
        q = self._requant(src, e_in, bits, name, value.shape)
        wq = m.quant_weight()
        w_scale = wq.scale.detach().double()
        w_int = torch.round(wq.value.detach().double() / w_scale).to(torch.int64).numpy()
        acc_scale = w_scale.reshape(-1) * 2.0 ** float(e_in)
        bias = m.bias.detach().double() if m.bias is not None else torch.zeros(w_int.shape[0], dtype=torch.float64)
        b_int = torch.round(bias / acc_scale).to(torch.int64).numpy()
        bound = int((np.abs(w_int.reshape(w_int.shape[0], -1)).sum(axis=1) * 2 ** (bits - 1) + np.abs(b_int)).max())
        inputs = [q.name, self._init(f"{name}.weight", w_int), self._init(f"{name}.bias", b_int)]
        exps, shape = e_in + exponent(wq.scale, name), tuple(out.shape)
        if isinstance(m, QuantConv2d) or isinstance(m, hw.GroupQuantLayer) and m.is_conv:
            if getattr(m, "groups", 1) != 1 or tuple(getattr(m, "dilation", (1, 1))) != (1, 1) or isinstance(m.padding, str):
                raise ExportError(f"{name}: grouped, dilated or string-padded convolutions are not supported")
            ph, pw = m.padding
            return self._emit("IntConv", inputs, name, exps, 1, bound, shape, strides=list(m.stride), pads=[ph, pw, ph, pw])
        if q.per_channel:
            raise ExportError(f"{name}: a Linear input must have one scale")
        return self._emit("IntLinear", inputs, name, exps, out.ndim - 1, bound, shape)

    def _lower_integer_input(self, name: str, m: hw.IntegerInputLayer, src, value: torch.Tensor,
                             out: torch.Tensor) -> IntTensor:
        """Float scales and zero points as integer steps: input times ``in_mult`` (absent when 1),
        round-shift and clamp to ``[qmin, qmax]``, the integers the inner layer reads (scale 1),
        the layer, times ``out_mult`` per output channel (absent when all 1)."""
        qmin, qmax = m.qmin, m.qmax
        if isinstance(src, str):  # the float image
            q = self._emit("QuantInput", [src], name, [0], 1, max(-qmin, qmax), value.shape, exponent=-m.in_exp,
                           multiplier=m.in_mult, qmin=qmin, qmax=qmax)
        else:
            if int(src.bound).bit_length() + m.in_mult.bit_length() > 53:
                raise ExportError(f"{name}: input values up to {src.bound} times {m.in_mult} exceed float64's exact range")
            scaled = src
            if m.in_mult != 1:
                mult = self._init(f"{name}.in_mult", np.array(m.in_mult, dtype=np.int64))
                scaled = self._emit("IntMul", [src.name, mult], name, src.exp, src.axis, src.bound * m.in_mult, src.shape)
            q = self._emit("Requant", [scaled.name], name, [0], src.axis, max(-qmin, qmax), src.shape,
                           shifts=(-m.in_exp - src.exp).tolist(), axis=src.axis, qmin=qmin, qmax=qmax)
        acc = self._lower_layer(name, m.layer, q, value, out)
        if m.mantissa_bits == 0 and bool((m.out_mult == 1).all()):
            return acc
        factor = m.out_mult.numpy().reshape([-1] + [1] * (out.ndim - 1 - acc.axis % out.ndim))
        mult = self._init(f"{name}.out_mult", factor[None])
        return self._emit("IntMul", [acc.name, mult], name, acc.exp - m.mantissa_bits, acc.axis,
                          acc.bound * int(m.out_mult.max()), tuple(out.shape))

    def call_function(self, target, args, kwargs):
        values, metas = _split(args)
        out = target(*values, **kwargs)
        if not metas or not torch.is_tensor(out):  # shapes and sizes are plain Python values
            return out
        fname = getattr(target, "__name__", str(target))
        if target is operator.add and len(metas) == 1:  # a constant (the DiT's position embedding)
            src = self._per_tensor(metas[0], "add_const")
            const = next(v for a, v in zip(args, values) if torch.is_tensor(v) and _split([a])[1] == [])
            ints = torch.round(const.double() * 2.0 ** -float(src.exp[0]))
            if not torch.equal(ints * 2.0 ** float(src.exp[0]), const.double()):
                raise ExportError("add: the constant is not a multiple of the tensor's scale; quantize it first")
            ints = ints.to(torch.int64).numpy()
            name = self._init("add_const", ints)
            return out, self._emit("IntAdd", [src.name, name], "add_const", src.exp, src.axis,
                                   src.bound + int(np.abs(ints).max()), tuple(out.shape))
        if target is operator.mul and len(metas) == 2:
            a, b = metas
            if a.per_channel and b.per_channel:
                raise ExportError("mul: both operands have per-channel scales")
            axis = a.axis if a.per_channel else b.axis
            return out, self._emit("IntMul", [a.name, b.name], "mul", a.exp + b.exp, axis, a.bound * b.bound, tuple(out.shape))
        if target is operator.add and len(metas) == 2:
            a, b = metas
            if a.per_channel and b.per_channel and len(a.exp) != len(b.exp):
                raise ExportError(f"add: operands with {len(a.exp)} and {len(b.exp)} channel scales")
            exp = np.minimum(a.exp, b.exp)
            axis = a.axis if a.per_channel else b.axis
            a2, b2 = self._align(a, exp, axis, "add"), self._align(b, exp, axis, "add")
            return out, self._emit("IntAdd", [a2.name, b2.name], "add", exp, axis, a2.bound + b2.bound, tuple(out.shape))
        if target is operator.mul:
            scalars = [v for v in values if isinstance(v, (int, float))]
            if scalars in ([1.0], [1]):
                return out, metas[0]
            raise ExportError(f"mul by {scalars}: only the folded attention scale (1.0) is supported")
        if target is operator.getitem:
            src, index = metas[0], values[1]
            if isinstance(index, int):
                t = self._per_tensor(src, "take")
                return out, self._emit("Take", [t.name], "take", t.exp, 0, t.bound, tuple(out.shape), t.clamp,
                                       axis=0, index=index)
            if isinstance(index, tuple) and all(i is None or i == slice(None) for i in index):
                return out, self._emit("Reshape", [src.name], "unsqueeze", src.exp, src.axis, src.bound,
                                       tuple(out.shape), src.clamp, shape=[-1, *out.shape[1:]])
            raise ExportError(f"indexing with {index!r} is not supported")
        raise ExportError(f"unsupported function {fname} on integer tensors")

    def call_method(self, target, args, kwargs):
        values, metas = _split(args)
        out = getattr(values[0], target)(*values[1:], **kwargs)
        if target == "chunk" and metas:
            return self._chunk(metas[0], out, kwargs.get("dim", values[2] if len(values) > 2 else 0))
        if not metas or not torch.is_tensor(out):
            return out
        src = metas[0]
        if target in ("reshape", "view", "flatten"):
            t = self._per_tensor(src, target)
            return out, self._emit("Reshape", [t.name], target, t.exp, 0, t.bound, tuple(out.shape), t.clamp,
                                   shape=[-1, *out.shape[1:]])
        if target in ("transpose", "permute"):
            t = self._per_tensor(src, target)
            ndim = values[0].ndim
            if target == "transpose":
                perm = list(range(ndim))
                i, j = (d % ndim for d in values[1:3])
                perm[i], perm[j] = perm[j], perm[i]
            else:
                perm = [d % ndim for d in values[1:]]
            return out, self._emit("Transpose", [t.name], target, t.exp, 0, t.bound, tuple(out.shape), t.clamp, perm=perm)
        raise ExportError(f"unsupported tensor method .{target}()")

    def _chunk(self, src: IntTensor, pieces, dim: int):
        """``tensor.chunk(k, dim)``: one Slice per piece, each with its share of per-channel exponents."""
        dim = dim % len(src.shape)
        result, start = [], 0
        for piece in pieces:
            end = start + piece.shape[dim]
            exp = src.exp[start:end] if src.per_channel and src.axis == dim else src.exp
            if src.per_channel and src.axis != dim:
                raise ExportError("chunk across a per-channel axis other than the chunked one")
            meta = self._emit("Slice", [src.name], "chunk", exp, src.axis, src.bound, tuple(piece.shape), src.clamp,
                              axis=dim, start=start, end=end)
            result.append((piece, meta))
            start = end
        return tuple(result)

    def output(self, target, args, kwargs):
        value, src = args[0]
        self.nodes.append(ops.make_node("Dequant", [src.name], ["eps"], name="output:Dequant",
                                        exponents=src.exp.tolist(), axis=src.axis))
        self.out_shape = tuple(value.shape)
        return value


def _build(module: nn.Module, x: torch.Tensor, t: torch.Tensor, elide: bool) -> ModelWrapper:
    builder = _Builder(module.double().eval(), elide)
    with torch.no_grad():
        builder.run(x.double(), t)
    graph = helper.make_graph(
        builder.nodes, "hwsim_integer_graph",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", *x.shape[1:]]),
         helper.make_tensor_value_info("t", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("eps", TensorProto.DOUBLE, ["N", *builder.out_shape[1:]])],
        initializer=builder.inits,
    )
    model = helper.make_model(graph, producer_name="hwsim", opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(ops.DOMAIN, 1)])
    wrapper = ModelWrapper(model)
    exps = {}
    for name, tensor in builder.tensors.items():
        wrapper.set_tensor_datatype(name, DataType[f"INT{signed_bits(*tensor.interval)}"])
        exps[name] = {"exp": tensor.exp.tolist(), "axis": tensor.axis}
    for init in builder.inits:
        arr = numpy_helper.to_array(init)
        wrapper.set_tensor_datatype(init.name, DataType[f"INT{signed_bits(int(arr.min()), int(arr.max()))}"])
    onnx.helper.set_model_props(wrapper.model, {ops.EXPONENTS_KEY: json.dumps(exps)})
    return wrapper


def _widen_to_union(graphs: list[ModelWrapper]) -> None:
    """Check the groups' graphs have the same nodes; give every tensor the widest datatype of any group."""
    def skeleton(w):
        return [(n.op_type, list(n.input), list(n.output)) for n in w.graph.node]

    for k, w in enumerate(graphs[1:], 1):
        if len(w.graph.node) != len(graphs[0].graph.node):
            raise ExportError(f"timestep group {k}: {len(w.graph.node)} nodes, group 0 has {len(graphs[0].graph.node)}")
        for a, b in zip(skeleton(graphs[0]), skeleton(w)):
            if a != b:
                raise ExportError(f"timestep group {k}: node {b} differs from group 0's {a}; the groups must share a datapath")
    names = {ann.tensor_name for ann in graphs[0].graph.quantization_annotation}
    for name in names:
        widest = max((w.get_tensor_datatype(name) for w in graphs), key=lambda d: d.bitwidth())
        for w in graphs:
            w.set_tensor_datatype(name, widest)


def group_files(path: str | Path) -> list[Path] | None:
    """The per-group graph files a grouped integer graph names (the first is ``path``), or None."""
    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if ops.GROUPS_KEY not in props:
        return None
    meta = json.loads(props[ops.GROUPS_KEY])
    return [Path(path).parent / f for f in meta["files"]]


def to_integer_graph(module: nn.Module, example_input: tuple[torch.Tensor, torch.Tensor], out_path: str | Path) -> Path:
    """Write the integer graph of a hardware-exact quantized net ``module(x, t)`` to ``out_path``
    (and, for a :class:`TimestepGroupedNet`, one more file per timestep group beside it).

    ``example_input`` is (x [N, C, H, W] float, t [N] int64); it fixes every shape except the batch.
    """
    x, t = example_input
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(module, TimestepGroupedNet):
        _build(module, x, t, elide=True).save(str(out_path))
        return out_path
    graphs = [_build(net, x, t, elide=False) for net in module.nets]
    _widen_to_union(graphs)
    files = [out_path.name] + [f"{out_path.stem}.g{k}{out_path.suffix}" for k in range(1, module.groups)]
    exponents = {p.key: p.value for p in graphs[0].model.metadata_props}[ops.EXPONENTS_KEY]
    onnx.helper.set_model_props(graphs[0].model, {  # replaces the props: the exponents are set again
        ops.EXPONENTS_KEY: exponents,
        ops.GROUPS_KEY: json.dumps({"groups": module.groups, "num_train_timesteps": module.num_train_timesteps, "files": files})})
    for w, name in zip(graphs, files):
        w.save(str(out_path.parent / name))
    return out_path
