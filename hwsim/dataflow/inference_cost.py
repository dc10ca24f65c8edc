"""qonnx's inference-cost analysis on hwsim's integer graphs, as an independent count of MACs and
bit operations to hold the dataflow mapping to.

``qonnx-inference-cost`` prices standard ONNX ``Conv``/``MatMul``/``Gemm`` nodes from their shapes
and the qonnx datatypes of their inputs; hwsim's integer graph uses hwsim's own ops, which qonnx
does not know. :func:`standard_view` writes every multiply-accumulating node of an integer graph
as the standard op it is (IntConv -> Conv, IntLinear -> MatMul with the transposed weight,
IntMatMul -> MatMul of two activations), each fed by annotated graph inputs of the exact shapes
and datatypes, so qonnx counts them with its own formulas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.inference_cost import inference_cost

from hwsim.dataflow.mapping import tensor_shapes


def standard_view(integer_graph: str | Path, out: str | Path) -> Path:
    """The integer graph's Conv/MatMul work as a standard, datatype-annotated ONNX graph (batch 1)."""
    integer_graph = Path(integer_graph)
    sim, shapes = tensor_shapes(integer_graph)
    source = ModelWrapper(str(integer_graph))
    nodes, inputs, outputs, inits, annotate = [], [], [], [], {}

    def graph_input(name: str) -> str:
        if name not in annotate:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shapes[name])))
            annotate[name] = source.get_tensor_datatype(name)
        return name

    def weight(name: str, values: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(values.astype(np.float32), name))
        annotate[name] = source.get_tensor_datatype(name.removesuffix("_T"))
        return name

    for name, op, ins, out_name, attrs in sim.nodes:
        kind = op.__name__
        if kind == "IntConv":
            w = sim.consts[ins[1]]
            node = helper.make_node("Conv", [graph_input(ins[0]), weight(ins[1], w)], [out_name], name=name,
                                    kernel_shape=list(w.shape[2:]), strides=list(attrs["strides"]), pads=list(attrs["pads"]))
        elif kind == "IntLinear":
            node = helper.make_node("MatMul", [graph_input(ins[0]), weight(ins[1] + "_T", sim.consts[ins[1]].T)], [out_name],
                                    name=name)
        elif kind == "IntMatMul":
            node = helper.make_node("MatMul", [graph_input(ins[0]), graph_input(ins[1])], [out_name], name=name)
        else:
            continue
        nodes.append(node)
        outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, list(shapes[out_name])))
        annotate[out_name] = source.get_tensor_datatype(out_name)
    model = ModelWrapper(helper.make_model(helper.make_graph(nodes, "standard_view", inputs, outputs, inits)))
    for name, dtype in annotate.items():
        model.set_tensor_datatype(name, DataType[dtype.name])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return out


def qonnx_cost(integer_graph: str | Path, work: str | Path, discount_sparsity: bool = False) -> dict:
    """qonnx-inference-cost's totals (``total_macs``, ``total_bops``, ...) for an integer graph."""
    view = standard_view(integer_graph, Path(work) / "standard_view.onnx")
    return inference_cost(str(view), preprocess=False, discount_sparsity=discount_sparsity)["total_cost"]
