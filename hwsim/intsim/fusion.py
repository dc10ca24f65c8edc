"""Which nodes of an integer graph :meth:`Simulator.run` executes as one fused kernel (:mod:`hwsim.intsim.fused`).

A chain is fused only where nothing observable changes: every tensor inside the chain has its
chain successor as its only reader and is not a graph output, and every node but the last is
exempt from the range check today (self-clamping, or proven inside its declared range from its
inputs' declared ranges, :meth:`Simulator._proven`); the last node's output is checked as
before. So a deliberately narrowed datatype inside a chain un-fuses it and is reported with the
node's name. ``run_integers`` (and runs with statistics) execute node by node and return every
tensor. Shapes are known only at run time: a step whose operands do not fit its kernel falls back
to the nodes one by one.

Chains (node op types, the first one's output read only by the second, and so on):

* ``Requant -> GroupNorm [-> Lut]``, ``GroupNorm -> Lut``: ``gn``
* ``Requant -> Modulate``: ``mod``; ``Requant -> Softmax``: ``softmax``; ``Requant -> Lut``: ``rqlut``
* ``IntLinear -> Requant [-> Lut]``: ``linear``
* ``[Requant ->] IntConv -> IntAdd [-> Requant]``, ``[Requant ->] IntConv [-> Requant]``: ``conv``
  (a Requant before: into the input packing of the VNNI kernel)
* ``Upsample -> Requant``: ``uprq`` (requantize, then upsample: both are per element / per channel)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    kind: str  # "node" or a chain kind above
    nodes: tuple[int, ...]  # indices into Simulator.nodes, in execution order; the last one's output is the step's


def _lut_covers(lut_attrs: dict, table_len: int, lo: int, hi: int) -> bool:
    """The Lut's domain holds every value of [lo, hi], so its domain check cannot fire."""
    return lut_attrs["in_min"] <= lo and hi <= lut_attrs["in_min"] + table_len - 1


def plan(nodes: list, consts: dict, unchecked: set[str], graph_outputs: set[str]) -> list[Step]:
    """Steps covering every node once, in an order that respects the graph: each chain runs where its
    last node ran (every input of the chain is produced before that, and nothing outside the chain
    reads its inner tensors)."""
    readers: dict[str, list[int]] = {}
    for i, (_, _, inputs, _, _) in enumerate(nodes):
        for name in inputs:
            readers.setdefault(name, []).append(i)

    def op(i):
        return nodes[i][1].__name__

    def sole_reader(i):
        """The node that alone reads node i's output, if node i may be fused away (no check, no other use)."""
        name, _, _, out, _ = nodes[i]
        r = readers.get(out, [])
        if name not in unchecked or out in graph_outputs or len(r) != 1 or nodes[r[0]][2].count(out) != 1:
            return None
        return r[0]

    def lut_after(i, lo, hi):
        j = sole_reader(i)
        if j is not None and op(j) == "Lut" and nodes[j][2][0] == nodes[i][3] and nodes[j][2][1] in consts \
                and _lut_covers(nodes[j][4], len(consts[nodes[j][2][1]]), lo, hi):
            return j
        return None

    def conv_tail(i):
        """The IntAdd [-> Requant] or Requant fused after IntConv i (may be none)."""
        j = sole_reader(i)
        if j is None or op(j) not in ("IntAdd", "Requant"):
            return []
        k = sole_reader(j)
        return [j, k] if op(j) == "IntAdd" and k is not None and op(k) == "Requant" else [j]

    def chain_at(i):
        kind, chain = None, [i]
        j = sole_reader(i)
        if op(i) == "Requant" and j is not None and nodes[j][2][0] == nodes[i][3]:
            a = nodes[i][4]
            if op(j) == "GroupNorm":
                kind, chain = "gn", [i, j]
                k = lut_after(j, nodes[j][4]["qmin"], nodes[j][4]["qmax"])
                if k is not None:
                    chain.append(k)
            elif op(j) == "Modulate":
                kind, chain = "mod", [i, j]
            elif op(j) == "Softmax" and len(a["shifts"]) == 1:
                kind, chain = "softmax", [i, j]
            elif op(j) == "Lut" and lut_after(i, a["qmin"], a["qmax"]) == j:
                kind, chain = "rqlut", [i, j]
            elif op(j) == "IntConv":
                kind, chain = "conv", [i, j, *conv_tail(j)]
        elif op(i) == "GroupNorm":
            k = lut_after(i, nodes[i][4]["qmin"], nodes[i][4]["qmax"])
            if k is not None:
                kind, chain = "gn", [i, k]
        elif op(i) == "IntLinear" and j is not None and op(j) == "Requant":
            kind, chain = "linear", [i, j]
            a = nodes[j][4]
            k = lut_after(j, a["qmin"], a["qmax"])
            if k is not None:
                chain.append(k)
        elif op(i) == "IntConv" and conv_tail(i):
            kind, chain = "conv", [i, *conv_tail(i)]
        elif op(i) == "Upsample" and j is not None and op(j) == "Requant":
            kind, chain = "uprq", [i, j]
        if kind is None:
            return Step("node", (i,))
        return Step(kind, tuple(chain))

    steps, done = [], set()
    for i in range(len(nodes)):
        if i in done:
            continue
        step = chain_at(i)
        if any(k in done for k in step.nodes):
            step = Step("node", (i,))
        done.update(step.nodes)
        steps.append(step)
    return sorted(steps, key=lambda step: step.nodes[-1])
