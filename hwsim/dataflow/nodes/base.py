"""The dataflow node base class: a folded streaming operator that owns its cost formulas.

Each node type is a small class with FINN's attribute names (PE, SIMD, MW, MH, numInputVectors,
inputDataType, ...) and FINN's per-node cost methods (``get_exp_cycles``, resource estimates),
following FINN's HWCustomOp. hwsim does not subclass FINN's classes: those need a ModelWrapper
per node and answer 0 where they have no estimate; here a missing estimate raises
:class:`NoEstimate`, and node types FINN also has are tested equal to FINN's formulas
(tests/dataflow/test_finn_equality.py).

A node's cost is described once, as *operation counts* (:meth:`DataflowNode.op_counts`:
multiplies by operand widths, adds by width, memory reads and writes by memory size), and
*stored bits* (weights, tables, buffers). The energy models (:mod:`hwsim.dataflow.energy`) price
those counts; the resource models (:mod:`hwsim.dataflow.resources`) price the node's datapath.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from qonnx.core.datatype import DataType

FINN_DOMAIN = "finn.custom_op.fpgadataflow"
HWSIM_DOMAIN = "hwsim.dataflow.nodes"


class NoEstimate(NotImplementedError):
    """A node type has no formula for the requested cost; it must never count as zero."""


class FoldingError(ValueError):
    """A folding factor that does not divide the dimension it folds."""


def bits(dtype: str) -> int:
    return DataType[dtype].bitwidth()


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class Op:
    """``count`` operations of one kind: ``mult`` (widths a, b), ``add`` (width a),
    ``mem_read``/``mem_write`` (word width a bits, memory of b bits)."""

    kind: str
    count: int
    a: int
    b: int = 0


@dataclass
class DataflowNode:
    """One folded dataflow operator. ``attrs`` uses FINN's names; subclasses declare which of
    them fold (``FOLD``: attribute -> the attribute whose value it must divide)."""

    name: str
    attrs: dict
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    source: str = ""  # the integer-graph node(s) this came from

    op_type: ClassVar[str] = ""
    domain: ClassVar[str] = HWSIM_DOMAIN
    FOLD: ClassVar[dict[str, str]] = {}
    PIPELINE_DEPTH: ClassVar[int] = 2  # register stages from first input to first output (an
    # estimate where no RTL exists yet; node types with RTL set what their block measures)

    def __post_init__(self) -> None:
        self.check_folding()

    # --- folding -------------------------------------------------------------------------------
    def fold_limit(self, attr: str) -> int:
        return int(self.attrs[self.FOLD[attr]])

    def fold_options(self) -> dict[str, list[int]]:
        return {a: divisors(self.fold_limit(a)) for a in self.FOLD}

    def check_folding(self) -> None:
        for attr in self.FOLD:
            value, limit = int(self.attrs[attr]), self.fold_limit(attr)
            if value < 1 or limit % value:
                raise FoldingError(f"{self.name} ({self.op_type}): {attr}={value} must divide {self.FOLD[attr]}={limit}")

    def set_folding(self, **values: int) -> None:
        self.attrs.update(values)
        self.check_folding()

    # --- cycles --------------------------------------------------------------------------------
    def get_exp_cycles(self) -> int:
        """Steady-state cycles for one denoiser evaluation (FINN's expected cycles)."""
        raise NoEstimate(f"{self.name} ({self.op_type}): no cycle formula")

    def get_latency(self) -> int:
        """Cycles from the first input to the last output of one evaluation, pipeline fill included."""
        return self.first_output_delay() + self.output_cycles()

    def first_output_delay(self) -> int:
        """Cycles from the first input element to the first output element."""
        return self.PIPELINE_DEPTH

    def output_cycles(self) -> int:
        """Cycles from the first to the last output word at full rate (the first is one of the II's)."""
        return self.get_exp_cycles() - 1

    # --- work and storage ----------------------------------------------------------------------
    def macs(self) -> int:
        """Multiply-accumulates per evaluation (as qonnx-inference-cost counts them)."""
        return 0

    def mac_widths(self) -> tuple[int, int] | None:
        """(input bits, weight bits) of the MACs, for bit-operation counts."""
        return None

    def bitops(self) -> int:
        widths = self.mac_widths()
        return 0 if widths is None else self.macs() * widths[0] * widths[1]

    def weight_bits(self) -> int:
        """Constant parameters stored on chip (weights, biases, tables)."""
        return 0

    def groups(self) -> int:
        """Copies of the constants that depend on activation scales: one per timestep group of a
        plan with ``timestep_groups`` (``timestepGroups``), each chosen per evaluation by t's group."""
        return self.attrs.get("timestepGroups", 1)

    def buffer_bits(self) -> int:
        """Activation storage inside the node (line buffers, whole-map buffers, row buffers)."""
        return 0

    def op_counts(self) -> list[Op]:
        """Every arithmetic and memory operation of one evaluation, for the energy models."""
        raise NoEstimate(f"{self.name} ({self.op_type}): no operation counts")

    # --- stream widths ---------------------------------------------------------------------------
    def in_lanes(self, index: int = 0) -> int:
        """Elements per word this node reads on input ``index`` (its folding along the stream)."""
        return int(self.attrs.get("PE", self.attrs.get("SIMD", 1)))

    def out_lanes(self) -> int:
        """Elements per word this node writes."""
        return int(self.attrs.get("PE", self.attrs.get("SIMD", 1)))

    # --- helpers -------------------------------------------------------------------------------
    def dt(self, attr: str) -> int:
        return bits(self.attrs[attr])

    def n_vectors(self) -> int:
        return int(math.prod(self.attrs.get("numInputVectors", [1])))

    def to_dict(self) -> dict:
        return {"name": self.name, "op_type": self.op_type, "domain": self.domain, "attrs": dict(self.attrs),
                "inputs": list(self.inputs), "outputs": list(self.outputs), "source": self.source}
