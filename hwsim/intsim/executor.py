"""Run an integer graph: every node in order, every result checked against its declared datatype.

No torch and no onnxruntime: the graph is read with onnx, the ops are hwsim's own. A value
outside its tensor's declared datatype is an :class:`AccumulatorOverflow` naming the node
(or is saturated, if the simulator was built with ``saturate=True``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from hwsim.export.intgraph import EXPONENTS_KEY
from hwsim.export.ops import DOMAIN, OPS
from hwsim.intsim import kernels
from hwsim.intsim.ops.requant import check_range


def _fast(op_type: str, inputs: list[np.ndarray], a: dict, bound: int):
    """The Numba/BLAS kernel of an op, or None to use the numpy reference."""
    if op_type == "IntConv":
        return kernels.int_conv(*inputs, a["strides"], a["pads"], bound)
    if op_type == "IntLinear":
        x, w, b = inputs
        return kernels.int_matmul(x, w.T, bound) + b
    if op_type == "IntMatMul":
        return kernels.int_matmul(inputs[0], inputs[1], bound)
    if op_type == "Requant":
        return kernels.requant(inputs[0], list(a["shifts"]), a["axis"], a["qmin"], a["qmax"])
    if op_type == "GroupNorm":
        return kernels.groupnorm(*inputs, a)
    if op_type == "Lut":
        q = inputs[0]
        lo, hi = a["in_min"], a["in_min"] + len(inputs[1]) - 1
        if q.size and (q.min() < lo or q.max() > hi):
            raise ValueError(f"LUT input outside its domain [{lo}, {hi}]")
        return kernels.lut(q, inputs[1], a["in_min"])
    if op_type == "Modulate":
        return kernels.modulate(*inputs, a)
    if op_type == "Softmax":
        return kernels.softmax(inputs[0], inputs[1], a["fo"])
    return None


class GraphError(RuntimeError):
    """The file is not a valid integer graph for this simulator."""


class Simulator:
    """``Simulator(path).run(x, t)`` -> eps (float64); ``.run_integers(x, t)`` -> every integer tensor."""

    def __init__(self, path: str | Path, saturate: bool = False, reference: bool = False):
        """``reference=True`` runs every op's numpy reference instead of the fast kernels."""
        self.path = Path(path)
        self.reference = reference
        try:
            model = onnx.load(str(self.path))
        except Exception as err:  # protobuf raises several types on corrupt input
            raise GraphError(f"{self.path}: not a readable ONNX file ({type(err).__name__})") from None
        graph = model.graph
        self.saturate = saturate
        self.inputs = [i.name for i in graph.input]
        self.input_shapes = {i.name: [d.dim_value or None for d in i.type.tensor_type.shape.dim] for i in graph.input}
        self.consts = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            if not np.issubdtype(array.dtype, np.integer):
                raise GraphError(f"{self.path}: tensor {init.name!r} is {array.dtype}; the integer graph carries integers only")
            self.consts[init.name] = array.astype(np.int64)
        float_ok = {("QuantInput", i.name) for i in graph.input if i.type.tensor_type.elem_type in (1, 11)}
        dequantized = {n.output[0] for n in graph.node if n.op_type == "Dequant"}
        self.nodes = []
        for node in graph.node:
            if node.domain != DOMAIN or node.op_type not in OPS:
                raise GraphError(f"{self.path}: node {node.name!r} has unsupported op {node.domain or 'onnx'}:{node.op_type}; "
                                 f"supported: {', '.join(sorted(OPS))}")
            for name in node.input:
                is_float_input = name in self.input_shapes and (node.op_type, name) not in float_ok and name != "t"
                if is_float_input or name in dequantized:
                    raise GraphError(f"{self.path}: node {node.name!r} reads float tensor {name!r}; only QuantInput may")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            op = OPS[node.op_type]
            full = {k: attrs.get(k, spec[2]) for k, spec in op.ATTRS.items()}
            full = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in full.items()}
            self.nodes.append((node.name, op, list(node.input), node.output[0], full))
        self.ranges = {}
        for ann in graph.quantization_annotation:
            for kv in ann.quant_parameter_tensor_names:
                if kv.key == "finn_datatype" and kv.value.startswith("INT"):
                    bits = int(kv.value[3:])
                    self.ranges[ann.tensor_name] = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        props = {p.key: p.value for p in model.metadata_props}
        self.exponents = json.loads(props.get(EXPONENTS_KEY, "{}"))

    def _check_input(self, name: str, value: np.ndarray) -> None:
        expect = self.input_shapes[name]
        if value.ndim != len(expect) or any(e is not None and e != v for e, v in zip(expect, value.shape)):
            raise GraphError(f"input {name!r}: shape {tuple(value.shape)} does not match the graph's {expect} (None = any)")

    def run_integers(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        x, t = np.asarray(x), np.asarray(t, dtype=np.int64)
        if not np.issubdtype(x.dtype, np.floating):
            raise GraphError(f"input 'x' must be a float array, got {x.dtype}")
        self._check_input("x", x)
        self._check_input("t", t)
        env: dict[str, np.ndarray] = {"x": x.astype(np.float64), "t": t, **self.consts}
        for name, op, inputs, output, attrs in self.nodes:
            args = [env[i] for i in inputs]
            lo, hi = self.ranges.get(output, (None, None))
            value = None if self.reference or hi is None else _fast(op.__name__, args, attrs, hi)
            if value is None:
                value = op.compute(args, attrs)
            if hi is not None:
                value = check_range(value, lo, hi, name, self.saturate)
            env[output] = value
        return {k: v for k, v in env.items() if k not in self.consts}

    def run(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.run_integers(x, t)["eps"]
