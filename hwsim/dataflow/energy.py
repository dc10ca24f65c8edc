"""Energy per denoiser evaluation and per generated image: an ASIC operation-energy model and an
FPGA resource-activity model, each reading a technology YAML whose every constant has its source
(``hwsim/dataflow/tech/*.yaml``).

ASIC (Horowitz, ISSCC 2014, 45 nm): each node's operation counts (:meth:`DataflowNode.op_counts`)
are priced: a multiply by the product of its operand widths (anchored at int8 0.2 pJ, which the
rule carries to 3.2 pJ at int32 against the table's 3.1), an add linearly in its width between the
table's int8 and int32 points, a memory access by word width and by the square root of the
memory's size (anchored at an 8 KB SRAM's 10 pJ per 64-bit read), a host transfer as DRAM traffic.
FPGA: dynamic energy = LUTs x LUT toggle energy x activity + FFs x FF toggle energy x activity
per active cycle, plus multiplier and block-RAM operations, plus static power for the whole time.
Activity defaults to the tech file's ``default_activity`` and can come from the integer
simulator's measured toggle rates (``Simulator.stats``); the RTL's toggle counts replace it
once the RTL exists. Sparsity lowers energy here only through hardware that is built (none yet:
the N:M sparse MVAU and zero-activation gating come with the RTL issue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hwsim.dataflow.nodes.base import DataflowNode, NoEstimate, Op
from hwsim.dataflow.resources import Device, estimate, named_yaml

TECH = Path(__file__).parent / "tech"
PJ = 1e-12


@lru_cache
def load_tech(name: str) -> dict:
    return named_yaml(TECH, name, "technology")


@dataclass(frozen=True)
class AsicModel:
    """Operation energies of one ASIC technology (pJ)."""

    tech: dict

    def add(self, width: int) -> float:
        (w0, e0), (w1, e1) = sorted(self.tech["add_pj"].items())
        if width <= w0:
            return e0 * width / w0
        return e0 + (width - w0) * (e1 - e0) / (w1 - w0)

    def mult(self, a: int, b: int) -> float:
        w0, e0 = min(self.tech["mult_pj"].items())
        return e0 * a * b / (w0 * w0)

    def memory(self, word_bits: int, memory_bits: int) -> float:
        size0, e0 = min(self.tech["sram_read_64b_pj"].items())
        return e0 * math.sqrt(max(memory_bits, 8) / 8 / size0) * word_bits / 64

    def io(self, bits: int) -> float:
        return self.tech["dram_64b_pj"]["default"] * bits / 64

    def price(self, op: Op) -> float:
        if op.kind == "mult":
            return op.count * self.mult(op.a, op.b)
        if op.kind == "add":
            return op.count * self.add(op.a)
        if op.kind in ("mem_read", "mem_write"):
            return op.count * self.memory(op.a, op.b)
        if op.kind == "io":
            return op.count * self.io(op.a)
        raise NoEstimate(f"no ASIC energy for operation kind {op.kind!r}")

    def node_pj(self, node: DataflowNode) -> float:
        return sum(self.price(op) for op in node.op_counts())


@dataclass(frozen=True)
class FpgaModel:
    """Resource-activity energy of one FPGA family (pJ) at ``clock_mhz``."""

    tech: dict
    device: Device
    clock_mhz: float

    def node_pj(self, node: DataflowNode, activity: float | None = None) -> float:
        t, r = self.tech, estimate(node, self.device)
        alpha = t["default_activity"] if activity is None else activity
        cycles = node.get_exp_cycles()
        logic = cycles * alpha * (r.lut * t["lut_toggle_pj"] + r.ff * t["ff_toggle_pj"])
        ops = node.op_counts()
        mults = sum(op.count for op in ops if op.kind == "mult") if r.mult else 0
        accesses = sum(op.count for op in ops if op.kind in ("mem_read", "mem_write")) if r.bram else 0
        io = sum(op.count * op.a for op in ops if op.kind == "io") * t["dram_64b_pj"] / 64
        return logic + mults * t["mult18_op_pj"] * alpha / t["reference_activity"] + accesses * t["bram_access_pj"] + io

    def static_pj(self, cycles: float) -> float:
        return self.tech["static_power_mw"] * 1e-3 * cycles / (self.clock_mhz * 1e6) / PJ


def host_update_pj(pixels: int, asic: AsicModel) -> tuple[float, int]:
    """The sampler's update on the host per step (fp32): quantize x_t, dequantize eps, and the DDIM
    update ``x0 = (x - sqrt(1-a) eps) / sqrt(a); x' = sqrt(a') x0 + sqrt(1-a') eps``: 5 multiplies and
    3 adds per pixel (the per-step constants are precomputed). Returns (pJ, fp32 operations)."""
    mults, adds = 5 * pixels, 3 * pixels
    return mults * asic.tech["fp32_mult_pj"] + adds * asic.tech["fp32_add_pj"], mults + adds
