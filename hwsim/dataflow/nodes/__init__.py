"""Dataflow node types: FINN's where FINN has the op, hwsim's for the rest."""

from hwsim.dataflow.nodes.base import DataflowNode, FoldingError, NoEstimate, Op
from hwsim.dataflow.nodes.finn_types import FINN_NODE_TYPES
from hwsim.dataflow.nodes.hwsim_types import HWSIM_NODE_TYPES

NODE_TYPES: dict[str, type[DataflowNode]] = {cls.op_type: cls for cls in FINN_NODE_TYPES + HWSIM_NODE_TYPES}


def make_node(op_type: str, name: str, attrs: dict, **kwargs) -> DataflowNode:
    if op_type not in NODE_TYPES:
        raise NoEstimate(f"{name}: no dataflow node type {op_type!r}; known: {', '.join(sorted(NODE_TYPES))}")
    return NODE_TYPES[op_type](name=name, attrs=dict(attrs), **kwargs)


__all__ = ["NODE_TYPES", "DataflowNode", "FoldingError", "NoEstimate", "Op", "make_node"]
