"""Execute a streamlined FINN-dialect graph without onnxruntime, FINN or qonnx execution.

The input is the output of :func:`hwsim.export.finn.to_finn_dialect`, before any to-HW
conversion. The result must equal qonnx's ``execute_onnx`` on the same graph bit for bit: that
is FINN's python execution (qonnx's numpy ``MultiThreshold`` and ``Im2Col``, onnxruntime in
float32 for the standard ops). Hence every tensor stays float32 as there, elementwise ops are
single IEEE float32 operations (correctly rounded, so any implementation agrees), and MatMul
runs in float64 only when its operands are integers whose partial sums stay below 2^24: then
every float32 summation order gives the same exact result, and so does ours. A MatMul outside
that bound is refused rather than approximated.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import onnx
from onnx import helper, numpy_helper

FLOAT32_EXACT = 2**24


def multithreshold_ref(v: np.ndarray, thresholds: np.ndarray, channel_axis: int = 1) -> np.ndarray:
    """Number of thresholds each element is >= to (int64); thresholds (C, B) or (1, B), any order."""
    vm = np.expand_dims(np.moveaxis(v, channel_axis, -1), -1)
    return np.moveaxis(np.count_nonzero(vm >= thresholds, axis=-1), -1, channel_axis).astype(np.int64)


@numba.njit(cache=True)
def multithreshold_kernel(x: np.ndarray, thr_sorted: np.ndarray) -> np.ndarray:
    """Numba twin of :func:`multithreshold_ref` on x [M, C] with thresholds sorted per row.

    A binary search counts the thresholds t <= x. NaN thresholds sort last and NaN inputs
    compare false, as with numpy's ``>=``.
    """
    m, c = x.shape
    nb = thr_sorted.shape[1]
    out = np.empty((m, c), dtype=np.int64)
    for j in range(c):
        t = thr_sorted[0] if thr_sorted.shape[0] == 1 else thr_sorted[j]
        for i in range(m):
            v = x[i, j]
            lo, hi = 0, nb
            while lo < hi:
                mid = (lo + hi) // 2
                if t[mid] <= v:
                    lo = mid + 1
                else:
                    hi = mid
            out[i, j] = lo
    return out


def multithreshold(v: np.ndarray, thresholds: np.ndarray, channel_axis: int = 1) -> np.ndarray:
    """:func:`multithreshold_ref` through the kernel (float64 holds every float32 exactly)."""
    moved = np.moveaxis(v, channel_axis, -1)
    flat = np.ascontiguousarray(moved.reshape(-1, moved.shape[-1]), dtype=np.float64)
    thr = np.sort(np.asarray(thresholds, dtype=np.float64).reshape(thresholds.shape[0], -1), axis=1)
    return np.moveaxis(multithreshold_kernel(flat, thr).reshape(moved.shape), -1, channel_axis)


def im2col_nhwc(x: np.ndarray, kernel, stride, pads, dilations, pad_value: float = 0) -> np.ndarray:
    """qonnx Im2Col: [N, H, W, C] -> [N, OH, OW, KH*KW*C], patch order (kh, kw, c)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilations
    xp = np.pad(x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)), constant_values=pad_value)
    oh = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    cols = [xp[:, u * dh : u * dh + sh * (oh - 1) + 1 : sh, v * dw : v * dw + sw * (ow - 1) + 1 : sw, :]
            for u in range(kh) for v in range(kw)]
    return np.stack(cols, axis=3).reshape(x.shape[0], oh, ow, -1)


def exact_matmul(a: np.ndarray, b: np.ndarray, node: str) -> np.ndarray:
    """float32 MatMul computed exactly in float64; refuses operands it cannot prove exact."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    integral = np.array_equal(a64, np.round(a64)) and np.array_equal(b64, np.round(b64))
    bound = np.abs(a64) @ np.abs(b64)
    if not integral or (bound.size and bound.max() >= FLOAT32_EXACT):
        raise ValueError(f"MatMul node {node!r}: operands are not integers with partial sums below 2^24, "
                         "so the float32 result would depend on the summation order")
    return (a64 @ b64).astype(np.float32)


def _mt_channel_axis(layout: str, rank: int) -> int:
    """The channel axis qonnx's MultiThreshold.execute_node picks (layout attr, else by rank)."""
    if not layout and rank < 5:
        layout = {2: "NC", 3: "NWC", 4: "NCHW"}.get(rank)
    return layout.index("C") if layout and "C" in layout else 1


def _reshape(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    shape = [x.shape[i] if s == 0 else int(s) for i, s in enumerate(shape)]  # ONNX: 0 copies the dim
    return x.reshape(shape)


def _multithreshold(node, ins, a):
    v, thr = ins
    counts = multithreshold(v, thr, _mt_channel_axis(a.get("data_layout", ""), v.ndim)).astype(v.dtype)
    return v.dtype.type(a.get("out_scale", 1.0)) * counts + v.dtype.type(a.get("out_bias", 0.0))


def _im2col(node, ins, a):
    return im2col_nhwc(ins[0], a["kernel_size"], a["stride"], a.get("pad_amount", [0, 0, 0, 0]),
                       a.get("dilations", [1, 1]), a.get("pad_value", 0))


OPS = {
    "MultiThreshold": _multithreshold,
    "Im2Col": _im2col,
    "MatMul": lambda node, ins, a: exact_matmul(ins[0], ins[1], node.name),
    "Mul": lambda node, ins, a: np.multiply(ins[0], ins[1]),
    "Add": lambda node, ins, a: np.add(ins[0], ins[1]),
    "Sub": lambda node, ins, a: np.subtract(ins[0], ins[1]),
    "Transpose": lambda node, ins, a: np.transpose(ins[0], a.get("perm")),
    "Reshape": lambda node, ins, a: _reshape(ins[0], ins[1]),
}


class UnsupportedNode(NotImplementedError):
    """The graph holds a node type :class:`FinnSimulator` does not implement."""


class FinnSimulator:
    """Runs a streamlined FINN-dialect ONNX graph node by node with the references above."""

    def __init__(self, path: str | Path):
        self.model = onnx.load(str(path))
        graph = self.model.graph
        for node in graph.node:
            if node.op_type not in OPS:
                raise UnsupportedNode(f"node {node.name!r} has op type {node.op_type!r}, "
                                      f"not one of the supported {sorted(OPS)}")
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.attrs = [{at.name: _attr(at) for at in n.attribute} for n in graph.node]
        self.outputs = [o.name for o in graph.output]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = dict(self.consts)
        env.update({k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()})
        for node, a in zip(self.model.graph.node, self.attrs):
            env[node.output[0]] = OPS[node.op_type](node, [env[i] for i in node.input], a)
        return {name: env[name] for name in self.outputs}


def _attr(at):
    value = helper.get_attribute_value(at)
    return value.decode() if isinstance(value, bytes) else value
