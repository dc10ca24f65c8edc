"""Benches of the RTL blocks against hwsim's integer reference and its cycle model.

Each bench draws a random case for a block configuration, computes the expected integers with
the integer graph's numpy references (:mod:`hwsim.export.ops`), writes the memory files, runs the
block through :func:`hwsim.rtlgen.simulate.run_stream` and compares. With ``backpressure=False``
two evaluations run back to back and the handshake cycles give the measured II (first output of
evaluation 2 minus that of evaluation 1) and latency (first input to last output of evaluation 1),
set beside the dataflow node's ``get_exp_cycles`` and ``get_latency``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwsim.dataflow.nodes import make_node
from hwsim.export.ops import IntLinear, Requant
from hwsim.rtlgen.memfiles import mvau_memories, pack, unpack, write_mem
from hwsim.rtlgen.simulate import RTL, run_stream


@dataclass(frozen=True)
class MvauConfig:
    MW: int
    MH: int
    PE: int
    SIMD: int
    WBITS: int = 4
    ABITS: int = 8
    ACTIVATION: bool = True
    SIGNED_IN: bool = True
    NIV: int = 3  # input vectors per evaluation


def mvau_node(cfg: MvauConfig):
    """The dataflow node the cost model prices for this block configuration."""
    return make_node("MVAU", "mvau", {"MW": cfg.MW, "MH": cfg.MH, "PE": cfg.PE, "SIMD": cfg.SIMD,
                                      "numInputVectors": [cfg.NIV], "inputDataType": f"INT{cfg.ABITS}",
                                      "weightDataType": f"INT{cfg.WBITS}", "accDataType": "INT32",
                                      "noActivation": int(not cfg.ACTIVATION)})


def bench_mvau(cfg: MvauConfig, build_dir: str | Path, sim: str = "icarus", backpressure: bool = True,
               seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    evaluations = 1 if backpressure else 2
    vectors = cfg.NIV * evaluations
    w = rng.integers(-(1 << (cfg.WBITS - 1)), 1 << (cfg.WBITS - 1), size=(cfg.MH, cfg.MW))
    lo, hi = (-(1 << (cfg.ABITS - 1)), (1 << (cfg.ABITS - 1)) - 1) if cfg.SIGNED_IN else (0, (1 << cfg.ABITS) - 1)
    x = rng.integers(lo, hi + 1, size=(vectors, cfg.MW))
    b = rng.integers(-200, 200, size=cfg.MH)
    shifts = rng.integers(-1, 7, size=cfg.MH)
    acc = IntLinear.compute([x, w, b], {})
    accbits = max(int(np.abs(acc).max()).bit_length() + 2, 10)
    qmin, qmax = -128, 127
    expect = Requant.compute([acc], {"shifts": shifts.tolist(), "axis": 1, "qmin": qmin, "qmax": qmax}) if cfg.ACTIVATION else acc
    params = dict(MW=cfg.MW, MH=cfg.MH, PE=cfg.PE, SIMD=cfg.SIMD, ABITS=cfg.ABITS, WBITS=cfg.WBITS, BBITS=10,
                  ACCBITS=accbits, OBITS=8 if cfg.ACTIVATION else accbits, SHBITS=8, SIGNED_IN=int(cfg.SIGNED_IN),
                  ACTIVATION=int(cfg.ACTIVATION), QMIN=qmin, QMAX=qmax)
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    mem = mvau_memories(w, b, shifts, cfg.PE, cfg.SIMD)
    write_mem(build / "weights.mem", mem["weights"], cfg.WBITS)
    write_mem(build / "bias.mem", mem["bias"], params["BBITS"])
    write_mem(build / "shift.mem", mem["shift"], params["SHBITS"])
    inputs = [pack(row, cfg.ABITS, cfg.SIGNED_IN) for vec in x for row in vec.reshape(-1, cfg.SIMD)]
    nf = cfg.MH // cfg.PE
    result = run_stream([RTL / "mvau" / "mvau.v"], "mvau", params, inputs, vectors * nf, build, sim, backpressure, seed)
    got = np.array([unpack(word, cfg.PE, params["OBITS"]) for word in result["outputs"]]).reshape(vectors, -1)
    report = {"node": "MVAU", "config": asdict(cfg), "sim": sim, "bit_exact": bool(np.array_equal(got, expect)),
              "values": int(expect.size)}
    if not backpressure:
        per_eval = cfg.NIV * nf
        outs, ins = result["out_cycles"], result["in_cycles"]
        node = mvau_node(cfg)
        report["measured"] = {"ii": outs[per_eval] - outs[0], "latency": outs[per_eval - 1] - ins[0]}
        report["modelled"] = {"ii": node.get_exp_cycles(), "latency": node.get_latency()}
    return report
