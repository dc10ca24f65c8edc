"""The integer graph's ops: qonnx CustomOps in hwsim's own domain, each with a numpy reference.

The domain string is this module's path (``hwsim.export.ops``), which is how qonnx's registry
finds the classes (``qonnx.custom_op.registry.getCustomOp``). Every tensor between these ops
holds integers (stored as int64); its power-of-two scale lives in the graph's metadata (see
:mod:`hwsim.export.intgraph`). ``compute`` is the numpy reference that defines each op
(docs/numerics.md); ``execute_node`` wraps it for qonnx's ``execute_onnx``; the Numba
simulator (:mod:`hwsim.intsim.executor`) must equal it.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.custom_op.base import CustomOp

from hwsim.intsim.ops.lut import lut_ref
from hwsim.intsim.ops.norm import groupnorm_ref, modulate_ref
from hwsim.intsim.ops.requant import requant_ref
from hwsim.intsim.ops.softmax import softmax_ref

DOMAIN = "hwsim.export.ops"
# the integer graph's metadata: the tensors' power-of-two exponents, and a timestep-grouped graph's members
EXPONENTS_KEY = "hwsim.exponents"
GROUPS_KEY = "hwsim.timestep_groups"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _IntOp(CustomOp):
    """Attributes are declared once in ATTRS; ``compute(inputs, attrs)`` is the reference."""

    ATTRS: dict[str, tuple] = {}

    def get_nodeattr_types(self):
        return dict(self.ATTRS)

    def attrs(self) -> dict:
        return {name: self.get_nodeattr(name) for name in self.ATTRS}

    def make_shape_compatible_op(self, model):  # shapes are written by the exporter
        raise NotImplementedError(f"{self.onnx_node.op_type}: shapes come from the exporter, not shape inference")

    def infer_node_datatype(self, model):  # datatypes are written by the exporter
        pass

    def verify_node(self):
        return []

    def execute_node(self, context, graph):
        inputs = [context[name] for name in self.onnx_node.input]
        context[self.onnx_node.output[0]] = self.compute(inputs, self.attrs())

    @staticmethod
    def compute(inputs: list[np.ndarray], attrs: dict) -> np.ndarray:
        raise NotImplementedError


def _per_channel(values: list[int], ndim: int, axis: int) -> np.ndarray | int:
    if len(values) == 1:
        return int(values[0])
    shape = [1] * ndim
    shape[axis] = len(values)
    return np.asarray(values, dtype=np.int64).reshape(shape)


def _shift(x: np.ndarray, shifts, qmin: int, qmax: int, axis: int) -> np.ndarray:
    """round_shift with one shift or one per channel along ``axis``, then clamp."""
    s = _per_channel(list(shifts), x.ndim, axis)
    if isinstance(s, int):
        return requant_ref(x, s, qmin, qmax)
    out = np.empty_like(x)
    for c in range(s.size):
        index = [slice(None)] * x.ndim
        index[axis] = c
        out[tuple(index)] = requant_ref(x[tuple(index)], int(s.reshape(-1)[c]), qmin, qmax)
    return out


class QuantInput(_IntOp):
    """float -> int: clamp(round_half_even(x * multiplier * 2^-exponent)); the graph's only float
    input (an integer ``multiplier`` for a float scale; exact in float64 for float32 inputs)."""

    ATTRS = {"exponent": ("i", True, 0), "qmin": ("i", True, 0), "qmax": ("i", True, 0), "multiplier": ("i", False, 1)}

    @staticmethod
    def compute(inputs, a):
        x = np.asarray(inputs[0], dtype=np.float64) * (a["multiplier"] * 2.0 ** -a["exponent"])
        return np.clip(np.round(x), a["qmin"], a["qmax"]).astype(np.int64)


class Requant(_IntOp):
    """Round-half-even shift right (or exact shift left), per tensor or per channel, then saturate."""

    ATTRS = {"shifts": ("ints", True, []), "axis": ("i", False, 1),
             "qmin": ("i", False, INT64_MIN), "qmax": ("i", False, INT64_MAX)}

    @staticmethod
    def compute(inputs, a):
        return _shift(np.asarray(inputs[0], dtype=np.int64), a["shifts"], a["qmin"], a["qmax"], a["axis"])


class Dequant(_IntOp):
    """int -> float: q * 2^exponent (per tensor or per channel along ``axis``)."""

    ATTRS = {"exponents": ("ints", True, []), "axis": ("i", False, 1)}

    @staticmethod
    def compute(inputs, a):
        e = _per_channel(list(a["exponents"]), inputs[0].ndim, a["axis"])
        return inputs[0].astype(np.float64) * np.power(2.0, e)


class IntConv(_IntOp):
    """2D convolution of int64 tensors plus an int64 bias: the exact accumulator."""

    ATTRS = {"strides": ("ints", True, [1, 1]), "pads": ("ints", True, [0, 0, 0, 0])}

    @staticmethod
    def compute(inputs, a):
        x, w, b = inputs
        (sh, sw), (pt, pl, pb, pr) = a["strides"], a["pads"]
        x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
        n, c, h, wd = x.shape
        oc, _, kh, kw = w.shape
        oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
        cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.int64)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = x[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
        acc = np.einsum("nckloh,dckl->ndoh", cols.reshape(n, c, kh, kw, oh, ow), w, optimize=True)
        return acc + b.reshape(1, -1, 1, 1)


class IntLinear(_IntOp):
    """x @ W^T + b over the last axis (int64)."""

    @staticmethod
    def compute(inputs, a):
        x, w, b = inputs
        return np.matmul(x, w.T) + b


class IntMatMul(_IntOp):
    """Activation x activation product (int64)."""

    @staticmethod
    def compute(inputs, a):
        return np.matmul(inputs[0], inputs[1])


class IntAdd(_IntOp):
    """Sum of two integer tensors already aligned to one scale."""

    @staticmethod
    def compute(inputs, a):
        return inputs[0] + inputs[1]


class IntMul(_IntOp):
    """Elementwise product of two integer tensors (broadcasting): the adaLN gate."""

    @staticmethod
    def compute(inputs, a):
        return inputs[0] * inputs[1]


class Modulate(_IntOp):
    """LayerNorm over the last axis, times (1 + scale), plus shift (DiT's adaLN)."""

    ATTRS = {"ft": ("i", True, 0), "e_scale": ("i", True, 0), "e_shift": ("i", True, 0),
             "e_out": ("i", True, 0), "qmin": ("i", True, 0), "qmax": ("i", True, 0)}

    @staticmethod
    def compute(inputs, a):
        q, scale, shift = inputs
        return modulate_ref(q, scale[:, None], shift[:, None], a["ft"], a["e_scale"], a["e_shift"],
                            a["e_out"], a["qmin"], a["qmax"])


class Slice(_IntOp):
    """A contiguous range [start, end) along one axis (chunk)."""

    ATTRS = {"axis": ("i", True, 1), "start": ("i", True, 0), "end": ("i", True, 0)}

    @staticmethod
    def compute(inputs, a):
        index = [slice(None)] * inputs[0].ndim
        index[a["axis"]] = slice(a["start"], a["end"])
        return inputs[0][tuple(index)]


class GroupNorm(_IntOp):
    ATTRS = {"groups": ("i", True, 1), "ft": ("i", True, 0), "fg": ("i", True, 0),
             "qmin": ("i", True, 0), "qmax": ("i", True, 0)}

    @staticmethod
    def compute(inputs, a):
        q, g, b = inputs
        return groupnorm_ref(q, a["groups"], g, b, a["ft"], a["fg"], a["qmin"], a["qmax"])


class Lut(_IntOp):
    ATTRS = {"in_min": ("i", True, 0)}

    @staticmethod
    def compute(inputs, a):
        return lut_ref(inputs[0], inputs[1], a["in_min"])


class Softmax(_IntOp):
    ATTRS = {"fo": ("i", True, 0)}

    @staticmethod
    def compute(inputs, a):
        q, table = inputs
        return softmax_ref(q.reshape(-1, q.shape[-1]), table, a["fo"]).reshape(q.shape)


class TableLookup(_IntOp):
    """Rows of a constant table indexed by the integer timestep (a ROM)."""

    @staticmethod
    def compute(inputs, a):
        t, table = inputs
        t = np.asarray(t, dtype=np.int64)
        if t.min() < 0 or t.max() >= len(table):
            raise ValueError(f"timestep outside the table's range [0, {len(table) - 1}]")
        return table[t]


class Upsample(_IntOp):
    """Nearest-neighbour upsampling of the last two axes by an integer factor."""

    ATTRS = {"factor": ("i", True, 2)}

    @staticmethod
    def compute(inputs, a):
        f = a["factor"]
        return inputs[0].repeat(f, axis=-2).repeat(f, axis=-1)


class Concat(_IntOp):
    ATTRS = {"axis": ("i", True, 1)}

    @staticmethod
    def compute(inputs, a):
        return np.concatenate(inputs, axis=a["axis"])


class Reshape(_IntOp):
    ATTRS = {"shape": ("ints", True, [])}

    @staticmethod
    def compute(inputs, a):
        return inputs[0].reshape([inputs[0].shape[0], *a["shape"][1:]])  # batch size follows the input


class Transpose(_IntOp):
    ATTRS = {"perm": ("ints", True, [])}

    @staticmethod
    def compute(inputs, a):
        return np.transpose(inputs[0], a["perm"])


class Take(_IntOp):
    """One index along an axis (unpacking q, k, v), the axis removed."""

    ATTRS = {"axis": ("i", True, 0), "index": ("i", True, 0)}

    @staticmethod
    def compute(inputs, a):
        return np.take(inputs[0], a["index"], axis=a["axis"])


OPS: dict[str, type[_IntOp]] = {cls.__name__: cls for cls in _IntOp.__subclasses__()}
__all__ = list(OPS)


def make_node(op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> "helper.NodeProto":
    if op_type not in OPS:
        raise KeyError(f"unknown integer op {op_type!r}")
    return helper.make_node(op_type, inputs, outputs, name=name, domain=DOMAIN, **attrs)
