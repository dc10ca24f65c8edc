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
from hwsim.intsim.ops.requant import check_range


class GraphError(RuntimeError):
    """The file is not a valid integer graph for this simulator."""


class Simulator:
    """``Simulator(path).run(x, t)`` -> eps (float64); ``.run_integers(x, t)`` -> every integer tensor."""

    def __init__(self, path: str | Path, saturate: bool = False):
        self.path = Path(path)
        try:
            model = onnx.load(str(self.path))
        except Exception as err:  # protobuf raises several types on corrupt input
            raise GraphError(f"{self.path}: not a readable ONNX file ({type(err).__name__})") from None
        graph = model.graph
        self.saturate = saturate
        self.inputs = [i.name for i in graph.input]
        self.input_shapes = {i.name: [d.dim_value or None for d in i.type.tensor_type.shape.dim] for i in graph.input}
        self.consts = {init.name: numpy_helper.to_array(init).astype(np.int64) for init in graph.initializer}
        self.nodes = []
        for node in graph.node:
            if node.domain != DOMAIN or node.op_type not in OPS:
                raise GraphError(f"{self.path}: node {node.name!r} has unsupported op {node.domain or 'onnx'}:{node.op_type}; "
                                 f"supported: {', '.join(sorted(OPS))}")
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
            value = op.compute([env[i] for i in inputs], attrs)
            if output in self.ranges:
                lo, hi = self.ranges[output]
                value = check_range(value, lo, hi, name, self.saturate)
            env[output] = value
        return {k: v for k, v in env.items() if k not in self.consts}

    def run(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.run_integers(x, t)["eps"]
