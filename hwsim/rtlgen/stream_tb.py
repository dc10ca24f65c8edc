"""A cocotb bench for any one-in, one-out stream block (valid/ready): drive input words, collect
output words, with or without random gaps and back-pressure, and count cycles.

Configured by the JSON file named in ``HWSIM_TB``: ``inputs`` (words, as integers), ``expect``
(the number of output words), ``backpressure`` (bool), ``seed``; it writes the output words and,
without back-pressure, the cycle of every input and output handshake to ``HWSIM_TB_OUT``.
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
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    inputs, outputs = list(cfg["inputs"]), []
    in_cycles, out_cycles = [], []
    cycle, limit = 0, cfg.get("max_cycles", 200000)
    while len(outputs) < cfg["expect"]:
        if cycle > limit:
            raise AssertionError(f"stalled: {len(outputs)} of {cfg['expect']} outputs after {cycle} cycles")
        offer = bool(inputs) and (not gaps or rng.random() < 0.7)
        dut.in_valid.value = int(offer)
        if offer:
            dut.in_data.value = inputs[0]
        dut.out_ready.value = int(not gaps or rng.random() < 0.6)
        await ReadOnly()
        if offer and dut.in_ready.value:
            inputs.pop(0)
            in_cycles.append(cycle)
        if dut.out_valid.value and dut.out_ready.value:
            outputs.append(int(dut.out_data.value))
            out_cycles.append(cycle)
        await RisingEdge(dut.clk)
        cycle += 1
    with open(os.environ["HWSIM_TB_OUT"], "w") as f:
        json.dump({"outputs": outputs, "in_cycles": in_cycles, "out_cycles": out_cycles}, f)
