"""Reading nextpnr's ``--report`` JSON and Yosys' ``stat -json``: Fmax and resource counts.

nextpnr's report is the machine-readable form of what its log prints at the end: per clock the
achieved and constrained frequency from its post-route static timing analysis, per bel type the
used and available count, and the critical paths. Reading it rather than the log keeps the flow
independent of log wording. Yosys' cell statistics give what nextpnr's bel counts do not split
(the iCE40 logic cell holds a LUT and a flip-flop together) and the wrapper's own cost.
"""

from __future__ import annotations

import json
from pathlib import Path

from hwsim.bitstream.devices import Device


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def fmax_mhz(report: dict) -> float:
    """The design's Fmax: the slowest clock's achieved frequency (the wrapper has one clock)."""
    clocks = report.get("fmax", {})
    if not clocks:
        raise ValueError("nextpnr report has no clock (is the design's clock connected?)")
    return min(float(c["achieved"]) for c in clocks.values())


def used(report: dict, bels: tuple[str, ...]) -> int:
    util = report.get("utilization", {})
    return sum(int(util[b]["used"]) for b in bels if b in util)


def utilization(report: dict) -> dict[str, dict[str, int]]:
    """Every bel type the design uses: {type: {used, available}}."""
    return {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in sorted(report.get("utilization", {}).items()) if v["used"]}


def critical_path(report: dict) -> dict | None:
    """The clock-to-clock critical path: start and end cell, delay, and its logic and routing shares."""
    for path in report.get("critical_paths", []):
        if path.get("from", "").startswith("posedge") and path.get("to", "").startswith("posedge") and path["path"]:
            steps = path["path"]
            logic = sum(s["delay"] for s in steps if s["type"] != "routing")
            routing = sum(s["delay"] for s in steps if s["type"] == "routing")
            return {"from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
                    "delay_ns": round(logic + routing, 3), "logic_ns": round(logic, 3),
                    "routing_ns": round(routing, 3), "cells": sum(1 for s in steps if s["type"] == "logic")}
    return None


def cells(stat: dict) -> dict[str, int]:
    """Yosys ``stat -json``: cell counts of the whole design, summed over a kept hierarchy (the
    instances of kept submodules, ``$paramod...`` or ``\\name``, are not cells and are left out)."""
    design = stat.get("design") or next(iter(stat.get("modules", {}).values()), {})
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()
            if not k.startswith(("$scopeinfo", "$paramod", "\\"))}


def yosys_luts_ffs(counts: dict[str, int], device: Device) -> tuple[int, int]:
    """(LUTs, flip-flops) from Yosys cell counts, in nextpnr's units where they differ: on ECP5 a CCU2C
    (two-bit carry) fills two TRELLIS_COMB and a TRELLIS_DPR16X4 distributed RAM two more; on iCE40
    the LUT4s (SB_CARRY shares a LUT's logic cell)."""
    if device.family == "ecp5":
        luts = counts.get("LUT4", 0) + 2 * counts.get("CCU2C", 0) + 2 * counts.get("TRELLIS_DPR16X4", 0)
        ffs = counts.get("TRELLIS_FF", 0)
    else:
        luts = counts.get("SB_LUT4", 0)
        ffs = sum(v for k, v in counts.items() if k.startswith("SB_DFF"))
    return luts, ffs
