"""A cocotb bench for any stream block (valid/ready ports named ``<port>_valid``, ``<port>_ready``,
``<port>_data``): drive every input port's words, collect every output port's, with or without
random gaps and back-pressure, and record the cycle of every handshake.

Configured by the JSON file named in ``HWSIM_TB``: ``inputs`` (port -> words, as integers),
``outputs`` (port -> number of words to collect), ``backpressure`` (bool), ``seed``, and optionally
``probes`` (internal stream bundles of a stitched top, e.g. ``s_x``: their words' bit toggles are
counted, the RTL's own activity for the FPGA energy model); it writes the output words, the
handshake cycles per port and the probes' toggle counts to ``HWSIM_TB_OUT``.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


@cocotb.test()
async def stream(dut):
    cfg = json.loads(open(os.environ["HWSIM_TB"]).read())
    rng = random.Random(cfg["seed"])
    gaps = cfg["backpressure"]
    pending = {port: list(words) for port, words in cfg["inputs"].items()}
    wanted = dict(cfg["outputs"])
    got = {port: [] for port in wanted}
    in_cycles = {port: [] for port in pending}
    out_cycles = {port: [] for port in wanted}
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in pending:
        getattr(dut, f"{port}_valid").value = 0
    for port in wanted:
        getattr(dut, f"{port}_ready").value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    cycle, limit = 0, cfg.get("max_cycles", 500000)
    probes = {name: [getattr(dut, f"{name}_valid"), getattr(dut, f"{name}_ready"), getattr(dut, f"{name}_data")]
              for name in cfg.get("probes", [])}
    toggles = {name: {"words": 0, "toggles": 0, "width": len(h[2]), "last": None} for name, h in probes.items()}
    while any(len(got[p]) < n for p, n in wanted.items()):
        if cycle > limit:
            raise AssertionError(f"stalled after {cycle} cycles: got {({p: len(v) for p, v in got.items()})} of {wanted}; "
                                 f"inputs left {({p: len(q) for p, q in pending.items()})}")
        offered = {}
        for port, queue in pending.items():
            offered[port] = bool(queue) and (not gaps or rng.random() < 0.7)
            getattr(dut, f"{port}_valid").value = int(offered[port])
            if offered[port]:
                getattr(dut, f"{port}_data").value = queue[0]
        for port in wanted:
            getattr(dut, f"{port}_ready").value = int(not gaps or rng.random() < 0.6)
        await ReadOnly()
        for port, queue in pending.items():
            if offered[port] and getattr(dut, f"{port}_ready").value:
                queue.pop(0)
                in_cycles[port].append(cycle)
        for port in wanted:
            if getattr(dut, f"{port}_valid").value and getattr(dut, f"{port}_ready").value:
                got[port].append(int(getattr(dut, f"{port}_data").value))
                out_cycles[port].append(cycle)
        for name, (valid, ready, data) in probes.items():
            if valid.value and ready.value:
                t, word = toggles[name], int(data.value)
                t["words"] += 1
                t["toggles"] += 0 if t["last"] is None else bin(t["last"] ^ word).count("1")
                t["last"] = word
        await RisingEdge(dut.clk)
        cycle += 1
    with open(os.environ["HWSIM_TB_OUT"], "w") as f:
        json.dump({"outputs": got, "in_cycles": in_cycles, "out_cycles": out_cycles,
                   "toggles": {k: {x: v[x] for x in ("words", "toggles", "width")} for k, v in toggles.items()}}, f)
