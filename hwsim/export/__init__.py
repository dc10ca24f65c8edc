"""Brevitas -> QONNX -> the all-integer graph the simulator runs (docs/numerics.md).

Public API: ``hwsim.export.to_integer_graph(module, example_input, out_path)``
(:func:`hwsim.export.intgraph.to_integer_graph`), loaded on first use: it needs torch and
Brevitas, which the simulator (importing :mod:`hwsim.export.ops`) must not.
"""

__all__ = ["to_integer_graph"]


def __getattr__(name: str):
    if name == "to_integer_graph":
        from hwsim.export.intgraph import to_integer_graph

        return to_integer_graph
    raise AttributeError(f"module 'hwsim.export' has no attribute {name!r}")
