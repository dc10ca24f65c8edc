"""Benches of the RTL blocks against hwsim's integer reference and its cycle model.

Each bench draws a random case for a block configuration, computes the expected integers with
the integer graph's numpy references (:mod:`hwsim.export.ops`), writes the memory files, runs the
block through :func:`hwsim.rtlgen.simulate.run_stream` and compares. With ``backpressure=False``
two evaluations run back to back and the handshake cycles give the measured II (first output of
evaluation 2 minus that of evaluation 1) and latency (first input to last output of evaluation 1),
set beside the dataflow node's ``get_exp_cycles`` and ``get_latency``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwsim.dataflow.nodes import make_node
from hwsim.dataflow.nodes.finn_types import group_attrs
from hwsim.export.ops import IntLinear, Requant
from hwsim.intsim.ops.norm import modulate_ref, normalize_last_axis_ref
from hwsim.intsim.ops.softmax import build_exp_table, softmax_ref
from hwsim.rtlgen.memfiles import (group_shift_words, mvau_memories, nm_compress, operand_loops, pack, shift_params, threshold_table, unpack,
                                    write_banks, write_mem)
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
    N: int = 1  # N:M sparse weights when M > 1
    M: int = 1
    LUT_MULT: bool = False  # products in LUTs (resType "lut") instead of inferred multiplier blocks
    SHIFT_CONST: bool = False  # one requantizing shift for every channel, no table (as exports have it)
    WBANK: int = 0  # weights in banks of WBANK words (a power of two), each word registered twice
    WGROUP: int = 0  # group-shifted weights: WBITS-bit q << a GSBITS-bit shift per group of WGROUP inputs
    GSBITS: int = 3


def mvau_node(cfg: MvauConfig):
    """The dataflow node the cost model prices for this block configuration."""
    return make_node("MVAU", "mvau", {"MW": cfg.MW, "MH": cfg.MH, "PE": cfg.PE, "SIMD": cfg.SIMD,
                                      "numInputVectors": [cfg.NIV], "inputDataType": f"INT{cfg.ABITS}",
                                      "weightDataType": f"INT{cfg.WBITS}", "accDataType": "INT32",
                                      "noActivation": int(not cfg.ACTIVATION), "sparsityN": cfg.N, "sparsityM": cfg.M,
                                      "weightBankWords": cfg.WBANK,
                                      **(group_attrs(cfg.WGROUP, cfg.WBITS, cfg.GSBITS) if cfg.WGROUP else {})})


def bench_mvau(cfg: MvauConfig, build_dir: str | Path, sim: str = "icarus", backpressure: bool = True,
               seed: int = 0, shift_range: tuple[int, int] | None = None) -> dict:
    """Random weights, inputs, biases and shifts per channel; ``shift_range``: the SHIFT_MIN, SHIFT_MAX
    declared to the block (default the table's own; a narrower one must stop the simulation)."""
    rng = np.random.default_rng(seed)
    evaluations = 1 if backpressure else 2
    vectors = cfg.NIV * evaluations
    w = rng.integers(-(1 << (cfg.WBITS - 1)), 1 << (cfg.WBITS - 1), size=(cfg.MH, cfg.MW))
    q = w
    if cfg.WGROUP:  # the weights the reference multiplies: q shifted by its group's shift
        gshifts = rng.integers(0, 1 << cfg.GSBITS, size=(cfg.MH, cfg.MW // cfg.WGROUP))
        w = q << np.repeat(gshifts, cfg.WGROUP, axis=1)
    if cfg.M > 1:  # keep N random weights of every group of M (some may be zero anyway)
        keep = np.argsort(rng.random((cfg.MH, cfg.MW // cfg.M, cfg.M)), axis=-1) < cfg.N
        w = w * keep.reshape(w.shape)
    lo, hi = (-(1 << (cfg.ABITS - 1)), (1 << (cfg.ABITS - 1)) - 1) if cfg.SIGNED_IN else (0, (1 << cfg.ABITS) - 1)
    x = rng.integers(lo, hi + 1, size=(vectors, cfg.MW))
    b = rng.integers(-200, 200, size=cfg.MH)
    shifts = rng.integers(-1, 7, size=cfg.MH)
    if cfg.SHIFT_CONST:
        shifts = np.full(cfg.MH, shifts[0])
    acc = IntLinear.compute([x, w, b], {})
    accbits = max(int(np.abs(acc).max()).bit_length() + 2, 10)
    qmin, qmax = -128, 127
    expect = Requant.compute([acc], {"shifts": shifts.tolist(), "axis": 1, "qmin": qmin, "qmax": qmax}) if cfg.ACTIVATION else acc
    params = dict(MW=cfg.MW, MH=cfg.MH, PE=cfg.PE, SIMD=cfg.SIMD, ABITS=cfg.ABITS, WBITS=cfg.WBITS, BBITS=10,
                  ACCBITS=accbits, OBITS=8 if cfg.ACTIVATION else accbits, SHBITS=8, SIGNED_IN=int(cfg.SIGNED_IN),
                  ACTIVATION=int(cfg.ACTIVATION), QMIN=qmin, QMAX=qmax, LUT_MULT=int(cfg.LUT_MULT),
                  **(shift_params(shifts) if cfg.ACTIVATION else {}),
                  **({"WBANK": cfg.WBANK} if cfg.WBANK else {}),
                  **({"WGROUP": cfg.WGROUP, "GSBITS": cfg.GSBITS} if cfg.WGROUP else {}))
    if shift_range:
        params.update(SHIFT_MIN=shift_range[0], SHIFT_MAX=shift_range[1])
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    if cfg.M > 1:
        values, positions = nm_compress(w, cfg.N, cfg.M)
        mem = mvau_memories(values, b, shifts, cfg.PE, cfg.SIMD)
        write_mem(build / "index.mem", mvau_memories(positions, b, shifts, cfg.PE, cfg.SIMD)["weights"],
                  max(1, (cfg.M - 1).bit_length()), signed=False)
        params.update(N=cfg.N, M=cfg.M)
    else:
        mem = mvau_memories(q, b, shifts, cfg.PE, cfg.SIMD)
    if cfg.WGROUP:
        write_mem(build / "gshift.mem", group_shift_words(gshifts, cfg.PE, cfg.SIMD, cfg.WGROUP), cfg.GSBITS, signed=False)
    write_mem(build / "weights.mem", mem["weights"], cfg.WBITS)
    if cfg.WBANK:
        write_banks(build / "weights.mem", mem["weights"], cfg.WBITS, cfg.WBANK)
    write_mem(build / "bias.mem", mem["bias"], params["BBITS"])
    write_mem(build / "shift.mem", mem["shift"], params["SHBITS"])
    inputs = [pack(row, cfg.ABITS, cfg.SIGNED_IN) for vec in x for row in vec.reshape(-1, cfg.SIMD)]
    nf = cfg.MH // cfg.PE
    result = run_stream([RTL / "mvau" / "mvau.v"], "mvau", params, {"in": inputs}, {"out": vectors * nf}, build, sim,
                        backpressure, seed)
    got = np.array([unpack(word, cfg.PE, params["OBITS"]) for word in result["outputs"]["out"]]).reshape(vectors, -1)
    report = {"node": "MVAU", "config": asdict(cfg), "sim": sim, "bit_exact": bool(np.array_equal(got, expect)),
              "values": int(expect.size)}
    if not backpressure:
        per_eval = cfg.NIV * nf
        outs, ins = result["out_cycles"]["out"], result["in_cycles"]["in"]
        node = mvau_node(cfg)
        report["measured"] = {"ii": outs[per_eval] - outs[0], "latency": outs[per_eval - 1] - ins[0]}
        report["modelled"] = {"ii": node.get_exp_cycles(), "latency": node.get_latency()}
    return report


@dataclass(frozen=True)
class DynamicMvauConfig:
    """Attention's matmul A[h, L, K] x B[h, K, M]: A token-major (a vector per token and head), the
    operand B streamed token by token as K^T ("kt", QK^T: K rows of every token) or V ("v", AV)."""

    K: int
    M: int
    PE: int
    SIMD: int
    HEADS: int = 2
    L: int = 3
    ORDER: str = "kt"
    ABITS: int = 8
    WBITS: int = 8
    SIGNED_IN: bool = True
    ACTIVATION: bool = True


def operand_order(cfg: DynamicMvauConfig) -> tuple[int, ...]:
    """The axes of the operand [N, h, K, M] as streamed: K^T token by token ("kt"), or V's rows."""
    return (0, 3, 1, 2) if cfg.ORDER == "kt" else (0, 2, 1, 3)


def dynamic_mvau_node(cfg: DynamicMvauConfig):
    return make_node("MVAU", "mvau", {"MW": cfg.K, "MH": cfg.M, "PE": cfg.PE, "SIMD": cfg.SIMD, "mem_mode": "dynamic",
                                      "heads": cfg.HEADS, "numInputVectors": [cfg.L, cfg.HEADS],
                                      "operandOrder": list(operand_order(cfg)),
                                      "inputDataType": f"INT{cfg.ABITS}", "weightDataType": f"INT{cfg.WBITS}",
                                      "accDataType": "INT32", "noActivation": int(not cfg.ACTIVATION)})


def bench_dynamic_mvau(cfg: DynamicMvauConfig, build_dir, sim="icarus", backpressure=True, seed=0) -> dict:
    """A and B random (extremes included), expected = IntMatMul then a per-tensor Requant."""
    rng = np.random.default_rng(seed)
    h, n_tok = cfg.HEADS, cfg.L
    a_lo = -(1 << (cfg.ABITS - 1)) if cfg.SIGNED_IN else 0
    a_hi = (1 << (cfg.ABITS - 1)) - 1 if cfg.SIGNED_IN else (1 << cfg.ABITS) - 1
    a = rng.integers(a_lo, a_hi + 1, size=(1, h, n_tok, cfg.K))
    a[0, 0, 0] = a_lo
    b = rng.integers(-(1 << (cfg.WBITS - 1)), 1 << (cfg.WBITS - 1), size=(1, h, cfg.K, cfg.M))
    b[0, -1, :, 0] = -(1 << (cfg.WBITS - 1))
    acc = np.matmul(a, b)  # [1, h, L, M]
    accbits = int(np.abs(acc).max()).bit_length() + 2
    shift = int(rng.integers(2, 8))
    out = Requant.compute([acc], {"shifts": [shift], "axis": 1, "qmin": -128, "qmax": 127}) if cfg.ACTIVATION else acc
    obits = 8 if cfg.ACTIVATION else accbits
    # operand order as the mapping streams it: K^T = B [N, h, K=d, M=L] token by token -> axes (0, 3, 1, 2);
    # V = B [N, h, K=L, M=d] token by token -> axes (0, 2, 1, 3)
    order = operand_order(cfg)
    operand = np.transpose(b, order).reshape(-1)
    params = dict(MW=cfg.K, MH=cfg.M, PE=cfg.PE, SIMD=cfg.SIMD, ABITS=cfg.ABITS, WBITS=cfg.WBITS, BBITS=8,
                  ACCBITS=accbits, OBITS=obits, SHBITS=8, SIGNED_IN=int(cfg.SIGNED_IN), ACTIVATION=int(cfg.ACTIVATION),
                  QMIN=-128, QMAX=127, DYNAMIC=1, HEADS=h, VECTORS=n_tok * h, OLANES=cfg.SIMD,
                  **(shift_params([shift]) if cfg.ACTIVATION else {}), **operand_loops(order, b.shape, cfg.SIMD))
    report = _bench("mvau", "mvau/mvau.v", params,
                    {"in": (_words(a.transpose(0, 2, 1, 3).reshape(-1), cfg.SIMD), cfg.ABITS, cfg.SIGNED_IN),
                     "op": (_words(operand, cfg.SIMD), cfg.WBITS, True)},
                    {"out": (_words(out.transpose(0, 2, 1, 3).reshape(-1), cfg.PE), obits, True)},
                    dynamic_mvau_node(cfg), build_dir, sim, backpressure, seed,
                    memories={"shift.mem": (np.full((cfg.M, 1), shift), 8)})
    report["config"] = asdict(cfg)
    return report


# --- stream blocks with one register stage ---------------------------------------------------------
def _words(values: np.ndarray, lanes: int) -> np.ndarray:
    """[elements] in stream order -> [words, lanes]."""
    return np.asarray(values, dtype=np.int64).reshape(-1, lanes)


def _measure(report: dict, result: dict, node, per_eval: dict[str, int], out_port: str = "out") -> dict:
    """II and latency of evaluation 1 from the handshake cycles (two evaluations back to back)."""
    outs = result["out_cycles"][out_port]
    first_in = min(c[0] for c in result["in_cycles"].values())
    n = per_eval[out_port]
    last = max(result["out_cycles"][p][k - 1] for p, k in per_eval.items())  # of evaluation 1, on any port
    report["measured"] = {"ii": outs[n] - outs[0], "latency": last - first_in}
    report["modelled"] = {"ii": node.get_exp_cycles(), "latency": node.get_latency()}
    return report


def _bench(toplevel: str, source: str, params: dict, inputs: dict[str, tuple[np.ndarray, int, bool]],
           outputs: dict[str, tuple[np.ndarray, int, bool]], node, build_dir, sim, backpressure, seed,
           memories: dict[str, tuple[np.ndarray, int]] | None = None, groups: list[int] | None = None) -> dict:
    """Run one block: ``inputs``/``outputs`` map ports to (words [n, lanes], lane bits, signed) for
    one evaluation; without back-pressure the evaluation is streamed twice and timed. With
    ``groups`` (a block with per-timestep-group tables), the words are those of len(groups)
    evaluations one after another, each preceded by its group index on port ``g``."""
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    for name, (values, bits) in (memories or {}).items():
        write_mem(build / name, values, bits)
    reps = 1 if backpressure or groups is not None else 2
    words_in = {p: [pack(row, bits, signed) for row in np.concatenate([w] * reps)] for p, (w, bits, signed) in inputs.items()}
    if groups is not None:
        words_in["g"] = [int(g) for g in groups]
    expect = {p: len(w) * reps for p, (w, _, _) in outputs.items()}
    result = run_stream([RTL / source], toplevel, params, words_in, expect, build, sim, backpressure, seed)
    exact = all(np.array_equal(np.array([unpack(x, w.shape[1], bits, signed) for x in result["outputs"][p]]),
                               np.concatenate([w] * reps)) for p, (w, bits, signed) in outputs.items())
    report = {"node": node.op_type if node is not None else toplevel, "config": params, "sim": sim, "bit_exact": exact}
    if not backpressure and node is not None and groups is None:
        _measure(report, result, node, {p: len(w) for p, (w, _, _) in outputs.items()}, next(iter(outputs)))
    return report


def bench_requant(channels: int, pe: int, vectors: int, build_dir, sim="icarus", backpressure=True, seed=0,
                  shift: int | None = None, shift_range: tuple[int, int] | None = None) -> dict:
    """Random shifts per channel, or (``shift``) that one for every channel with SHIFT_CONST, the
    inputs then led by that shift's rounding ties and saturation edges. ``shift_range``: the
    SHIFT_MIN, SHIFT_MAX declared to the block (default the table's own; a narrower one must stop the
    simulation)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-(1 << 15), 1 << 15, size=(vectors, channels))
    shifts = rng.integers(-1, 9, size=channels)
    if shift is not None:
        shifts = np.full(channels, shift)
        edges = requant_edge_values(shift)
        x = np.concatenate([np.resize(edges, (-(-len(edges) // channels), channels)), x])
        vectors = len(x)
    y = Requant.compute([x], {"shifts": shifts.tolist(), "axis": 1, "qmin": -128, "qmax": 127})
    node = make_node("Requant", "requant", {"NumChannels": channels, "PE": pe, "numInputVectors": [vectors],
                                            "inputDataType": "INT17", "outputDataType": "INT8",
                                            "shifts": shifts.tolist()})
    params = dict(CHANNELS=channels, PE=pe, IBITS=17, OBITS=8, SHBITS=8, QMIN=-128, QMAX=127, **shift_params(shifts))
    if shift_range:
        params.update(SHIFT_MIN=shift_range[0], SHIFT_MAX=shift_range[1])
    return _bench("requant", "requant/requant.v", params, {"in": (_words(x, pe), 17, True)},
                  {"out": (_words(y, pe), 8, True)}, node, build_dir, sim, backpressure, seed,
                  {"shift.mem": (shifts.reshape(-1, 1), 8)})


def requant_edge_values(shift: int) -> list[int]:
    """Inputs at every rounding tie and saturation edge of an INT8 requantization by ``shift``:
    floors next to QMIN and QMAX, each with nothing, less than, exactly and more than a half below."""
    if shift <= 0:
        return [k >> -shift for k in (-260, -258, -256, -254, -2, 0, 2, 252, 254, 256, 258)] + [-1, 1, -(1 << 15), 1 << 15]
    half = 1 << (shift - 1)
    return [k * (1 << shift) + off for k in (-130, -129, -128, -127, -2, -1, 0, 1, 126, 127, 128)
            for off in (0, max(0, half - 1), half, half + 1)]


def bench_requant_edges(build_dir, sim="icarus", pe: int = 2) -> dict:
    """rtl/requant (hence rtl/common/round_shift.vh) on the values where half-to-even rounding and
    saturation decide the result: one channel per shift from -1 to 8."""
    shifts = np.arange(-1, 9)
    columns = [requant_edge_values(int(s)) for s in shifts]
    vectors = max(len(c) for c in columns)
    x = np.array([[c[i % len(c)] for c in columns] for i in range(vectors)])
    y = Requant.compute([x], {"shifts": shifts.tolist(), "axis": 1, "qmin": -128, "qmax": 127})
    params = dict(CHANNELS=len(shifts), PE=pe, IBITS=18, OBITS=8, SHBITS=8, QMIN=-128, QMAX=127, **shift_params(shifts))
    return _bench("requant", "requant/requant.v", params, {"in": (_words(x, pe), 18, True)},
                  {"out": (_words(y, pe), 8, True)}, None, build_dir, sim, False, 0,
                  {"shift.mem": (shifts.reshape(-1, 1), 8)})


def bench_grouped_requant(channels: int, pe: int, vectors: int, groups: int, evaluations: int, build_dir,
                          sim="icarus", backpressure=True, seed=0) -> dict:
    """Per-timestep-group shift tables: each evaluation's group index (random) selects its table."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-(1 << 15), 1 << 15, size=(evaluations, vectors, channels))
    shifts = rng.integers(-1, 9, size=(groups, channels))
    chosen = rng.integers(0, groups, size=evaluations)
    y = np.stack([Requant.compute([x[e]], {"shifts": shifts[g].tolist(), "axis": 1, "qmin": -128, "qmax": 127})
                  for e, g in enumerate(chosen)])
    params = dict(CHANNELS=channels, PE=pe, IBITS=17, OBITS=8, SHBITS=8, QMIN=-128, QMAX=127, GROUPS=groups,
                  VECTORS=vectors, GBITS=8, **shift_params(shifts))
    return _bench("requant", "requant/requant.v", params, {"in": (_words(x, pe), 17, True)},
                  {"out": (_words(y, pe), 8, True)}, None, build_dir, sim, backpressure, seed,
                  {"shift.mem": (shifts.reshape(-1, 1), 8)}, groups=chosen)


def bench_lut(channels: int, pe: int, vectors: int, build_dir, sim="icarus", backpressure=True, seed=0,
              groups: int = 1, evaluations: int = 1) -> dict:
    """A random table; with ``groups`` > 1, one per timestep group, each of ``evaluations`` picking one."""
    from hwsim.export.ops import Lut

    rng = np.random.default_rng(seed)
    tables = rng.integers(-128, 128, size=(groups, 256))
    x = rng.integers(-128, 128, size=(evaluations, vectors, channels))
    chosen = rng.integers(0, groups, size=evaluations)
    y = np.stack([Lut.compute([x[e], tables[g]], {"in_min": -128}) for e, g in enumerate(chosen)])
    node = make_node("LutActivation", "lut", {"NumChannels": channels, "PE": pe, "numInputVectors": [vectors],
                                              "inputDataType": "INT8", "outputDataType": "INT8"})
    params = dict(PE=pe, IBITS=8, OBITS=8, IN_MIN=-128)
    if groups > 1:
        params.update(GROUPS=groups, WORDS=vectors * channels // pe, GBITS=8)
    return _bench("lut_activation", "lut/lut_activation.v", params,
                  {"in": (_words(x, pe), 8, True)}, {"out": (_words(y, pe), 8, True)}, node, build_dir, sim,
                  backpressure, seed, {"table.mem": (tables.reshape(-1, 1), 8)}, groups=chosen if groups > 1 else None)


def bench_elementwise(op: str, channels: int, pe: int, vectors: int, build_dir, sim="icarus", backpressure=True,
                      seed=0) -> dict:
    from hwsim.export.ops import IntAdd, IntMul

    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, size=(vectors, channels))
    b = rng.integers(-512, 512, size=(vectors, channels))
    y = (IntAdd if op == "add" else IntMul).compute([a, b], {})
    obits = 11 if op == "add" else 18
    node = make_node("ElementwiseAdd" if op == "add" else "ElementwiseMul", op,
                     {"PE": pe, "lhs_shape": [1, vectors, channels], "rhs_shape": [1, vectors, channels],
                      "out_shape": [1, vectors, channels], "lhs_dtype": "INT8", "rhs_dtype": "INT10",
                      "out_dtype": f"INT{obits}"})
    params = dict(PE=pe, ABITS=8, BBITS=10, OBITS=obits, OP=0 if op == "add" else 1)
    return _bench("elementwise", "elementwise/elementwise.v", params,
                  {"in0": (_words(a, pe), 8, True), "in1": (_words(b, pe), 10, True)},
                  {"out": (_words(y, pe), obits, True)}, node, build_dir, sim, backpressure, seed)


def bench_elementwise_const(op: str, channels: int, pe: int, vectors: int, build_dir, sim="icarus", backpressure=True,
                            seed=0, broadcast: bool = False, groups: int = 1, evaluations: int = 1) -> dict:
    """A stream plus (or times) a constant tensor in ROM: full shape (the DiT's position embedding)
    or one row repeated over the vectors (``broadcast``); with ``groups`` > 1, one constant per
    timestep group, each of ``evaluations`` picking one."""
    from hwsim.export.ops import IntAdd, IntMul

    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, size=(evaluations, vectors, channels))
    consts = rng.integers(-512, 512, size=(groups, 1 if broadcast else vectors, channels))
    a[0, 0, 0], consts[0, 0, -1] = -128, -512
    chosen = rng.integers(0, groups, size=evaluations)
    y = np.stack([(IntAdd if op == "add" else IntMul).compute([a[e], consts[g]], {}) for e, g in enumerate(chosen)])
    c = consts[0]
    obits = 11 if op == "add" else 18
    node = make_node("ElementwiseAdd" if op == "add" else "ElementwiseMul", op,
                     {"PE": pe, "lhs_shape": [1, vectors, channels], "rhs_shape": [1, *c.shape],
                      "out_shape": [1, vectors, channels], "lhs_dtype": "INT8", "rhs_dtype": "INT10",
                      "out_dtype": f"INT{obits}", "rhs_style": "const"})
    roms = _words(consts, pe)
    params = dict(PE=pe, ABITS=8, BBITS=10, OBITS=obits, OP=0 if op == "add" else 1, WORDS=len(roms) // groups)
    if groups > 1:
        params.update(GROUPS=groups, EVAL_WORDS=vectors * channels // pe, GBITS=8)
    return _bench("elementwise_const", "elementwise/elementwise_const.v", params, {"in": (_words(a, pe), 8, True)},
                  {"out": (_words(y, pe), obits, True)}, node, build_dir, sim, backpressure, seed,
                  memories={"const.mem": (roms, 10)}, groups=chosen if groups > 1 else None)


def bench_duplicate(channels: int, pe: int, vectors: int, build_dir, sim="icarus", backpressure=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    x = _words(rng.integers(-128, 128, size=(vectors, channels)), pe)
    node = make_node("DuplicateStreams", "dup", {"NumChannels": channels, "PE": pe, "numInputVectors": [vectors],
                                                 "NumOutputStreams": 2, "inputDataType": "INT8"})
    return _bench("duplicate", "duplicate/duplicate.v", dict(WIDTH=8 * pe), {"in": (x, 8, True)},
                  {"out0": (x, 8, True), "out1": (x, 8, True)}, node, build_dir, sim, backpressure, seed)


def bench_fmpad(h: int, w: int, channels: int, simd: int, pads: tuple[int, int, int, int], build_dir, sim="icarus",
                backpressure=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(h, w, channels))
    pt, pl, pb, pr = pads
    y = np.pad(x, ((pt, pb), (pl, pr), (0, 0)))
    node = make_node("FMPadding", "pad", {"ImgDim": [h, w], "Padding": list(pads), "NumChannels": channels,
                                          "SIMD": simd, "inputDataType": "INT8"})
    params = dict(H=h, W=w, CHANNELS=channels, SIMD=simd, BITS=8, PT=pt, PL=pl, PB=pb, PR=pr)
    return _bench("fmpad", "fmpad/fmpad.v", params, {"in": (_words(x, simd), 8, True)},
                  {"out": (_words(y, simd), 8, True)}, node, build_dir, sim, backpressure, seed)


def bench_fifo(width: int, depth: int, words: int, build_dir, sim="icarus", backpressure=True, seed=0,
               outreg: int = 0, inreg: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=(words, 1))
    params = dict(WIDTH=width, DEPTH=depth, OUTREG=outreg, INREG=inreg)
    return _bench("fifo", "fifo/fifo.v", params, {"in": (x, width, True)},
                  {"out": (x, width, True)}, None, build_dir, sim, backpressure, seed)


def swg_windows(image: np.ndarray, k: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """[IH, IW, C] channels-last -> [OH*OW, K_H*K_W*C] windows in (ky, kx, c) order (the MVAU's MW)."""
    (kh, kw), (sh, sw) = k, stride
    ih, iw, c = image.shape
    oh, ow = (ih - kh) // sh + 1, (iw - kw) // sw + 1
    return np.stack([image[y * sh:y * sh + kh, x * sw:x * sw + kw].reshape(-1) for y in range(oh) for x in range(ow)])


def bench_swg(ih: int, iw: int, channels: int, simd: int, k: tuple[int, int], stride: tuple[int, int], build_dir,
              sim="icarus", backpressure=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(ih, iw, channels))
    y = swg_windows(x, k, stride)
    oh, ow = (ih - k[0]) // stride[0] + 1, (iw - k[1]) // stride[1] + 1
    node = make_node("ConvolutionInputGenerator_rtl", "swg", {
        "ConvKernelDim": list(k), "IFMChannels": channels, "IFMDim": [ih, iw], "OFMDim": [oh, ow], "SIMD": simd,
        "Stride": list(stride), "Dilation": [1, 1], "inputDataType": "INT8", "outputDataType": "INT8"})
    params = dict(K_H=k[0], K_W=k[1], IH=ih, IW=iw, S_H=stride[0], S_W=stride[1], CHANNELS=channels, SIMD=simd, BITS=8)
    return _bench("swg", "swg/swg.v", params, {"in": (_words(x, simd), 8, True)}, {"out": (_words(y, simd), 8, True)},
                  node, build_dir, sim, backpressure, seed)


def bench_groupnorm(channels: int, groups: int, pe: int, h: int, w: int, build_dir, sim="icarus", backpressure=True,
                    seed=0, extreme=False, visible_t=False, bank: int = 0) -> dict:
    """``bank``: the buffer in banks of that many words (BBANK). ``extreme``: inputs at the ends of INT8 only, and a first group with one 127 among -128s,
    whose z-score sqrt(n - 1) is the largest a group can have (the bound of rtl/groupnorm's widths).
    ``visible_t``: FT = 6, FG = 8, gamma = 2^14 and INT16 outputs, so each output is t plus a rounded
    beta and every bit of t's rounding reaches the output (at the default FT = 12, FG = 10 and INT8
    outputs an error in t's last bit almost never changes an output)."""
    from hwsim.intsim.ops.norm import groupnorm_ref

    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(1, channels, h, w))
    if extreme:
        x = rng.choice([-128, 127], size=x.shape)
        x[:, : channels // groups] = -128
        x[0, 0, 0, 0] = 127
    if seed % 2:
        x[:, : channels // groups] = 7  # a constant group: D = 0
    ft, fg, obits = (6, 8, 16) if visible_t else (12, 10, 8)
    gamma = np.full(channels, 1 << 14) if visible_t else rng.integers(-(1 << 13), 1 << 13, size=channels)
    beta = rng.integers(-(1 << 22), 1 << 22, size=channels)
    qmax = (1 << (obits - 1)) - 1
    y = groupnorm_ref(x, groups, gamma, beta, ft, fg, -qmax - 1, qmax)
    node = make_node("GroupNorm", "gn", {"NumChannels": channels, "groups": groups, "PE": pe, "numInputVectors": [h, w],
                                         "ft": ft, "inputDataType": "INT8", "outputDataType": f"INT{obits}",
                                         "gammaBits": 16, "betaBits": 26, "bufferBankWords": bank})
    params = dict(CHANNELS=channels, GROUPS=groups, PE=pe, PIXELS=h * w, IBITS=8, OBITS=obits, FT=ft, FG=fg, GBITS=16,
                  BBITS=26, QMIN=-qmax - 1, QMAX=qmax, **({"BBANK": bank} if bank else {}))
    stream = lambda a: _words(np.moveaxis(a[0], 0, -1).reshape(-1), pe)  # NCHW -> channels-last words
    return _bench("groupnorm", "groupnorm/groupnorm.v", params, {"in": (stream(x), 8, True)},
                  {"out": (stream(y), obits, True)}, node, build_dir, sim, backpressure, seed,
                  {"gamma.mem": (gamma.reshape(-1, 1), 16), "beta.mem": (beta.reshape(-1, 1), 26)})


def bench_timestep_table(steps: int, dim: int, pe: int, lookups: int, build_dir, sim="icarus", backpressure=True,
                         seed=0) -> dict:
    from hwsim.export.ops import TableLookup

    rng = np.random.default_rng(seed)
    table = rng.integers(-(1 << 11), 1 << 11, size=(steps, dim))
    t = rng.integers(0, steps, size=lookups)
    rows = TableLookup.compute([t, table], {})
    node = make_node("TimestepTable", "table", {"EmbeddingDim": dim, "PE": pe, "NumSteps": steps, "EmbeddingType": "INT12"})
    if backpressure:
        ins, outs = t.reshape(-1, 1), rows.reshape(-1, pe)
    else:  # one lookup per evaluation (streamed twice by _bench)
        ins, outs = t[:1].reshape(1, 1), rows[:1].reshape(-1, pe)
    return _bench("timestep_table", "timestep/timestep_table.v", dict(STEPS=steps, DIM=dim, PE=pe, BITS=12, IBITS=16),
                  {"in": (ins, 16, False)}, {"out": (outs, 12, True)}, node, build_dir, sim, backpressure, seed,
                  {"table.mem": (table.reshape(-1, pe), 12)})


def bench_broadcast(op: str, channels: int, pe: int, vectors: int, build_dir, sim="icarus", backpressure=True,
                    seed=0) -> dict:
    from hwsim.export.ops import IntAdd, IntMul

    if vectors < 2:
        raise ValueError("a row broadcast over one vector is a plain elementwise operation (bench_elementwise)")
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(vectors, channels))
    row = rng.integers(-2048, 2048, size=(1, channels))
    y = (IntAdd if op == "add" else IntMul).compute([x, row], {})
    obits = 13 if op == "add" else 20
    node = make_node("ElementwiseAdd" if op == "add" else "ElementwiseMul", op,
                     {"PE": pe, "lhs_shape": [1, vectors, channels], "rhs_shape": [1, 1, channels],
                      "out_shape": [1, vectors, channels], "lhs_dtype": "INT8", "rhs_dtype": "INT12",
                      "out_dtype": f"INT{obits}"})
    params = dict(PE=pe, FOLDS=channels // pe, VECTORS=vectors, ABITS=8, BBITS=12, OBITS=obits, OP=0 if op == "add" else 1)
    return _bench("broadcast", "elementwise/broadcast.v", params,
                  {"in0": (_words(x, pe), 8, True), "in1": (_words(row, pe), 12, True)},
                  {"out": (_words(y, pe), obits, True)}, node, build_dir, sim, backpressure, seed)


def _channels_last(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x[0], 0, -1).reshape(-1)


def bench_upsample(h: int, w: int, channels: int, simd: int, factor: int, build_dir, sim="icarus", backpressure=True,
                   seed=0) -> dict:
    from hwsim.export.ops import Upsample

    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(1, channels, h, w))
    y = Upsample.compute([x], {"factor": factor})
    node = make_node("UpsampleNearestNeighbour", "up", {"SIMD": simd, "HI": h, "WI": w, "HO": h * factor, "WO": w * factor,
                                                        "NumChannels": channels, "inputDataType": "INT8"})
    params = dict(HI=h, WI=w, FACTOR=factor, CHANNELS=channels, SIMD=simd, BITS=8)
    return _bench("upsample", "upsample/upsample.v", params, {"in": (_words(_channels_last(x), simd), 8, True)},
                  {"out": (_words(_channels_last(y), simd), 8, True)}, node, build_dir, sim, backpressure, seed)


def bench_concat(c0: int, c1: int, simd: int, h: int, w: int, build_dir, sim="icarus", backpressure=True, seed=0,
                 split: bool = False, bits: tuple[int, int] = (8, 8)) -> dict:
    """Concat (or split) of two channels-last streams; a concat's inputs may differ in width (the
    narrower is sign-extended), extremes of both included."""
    from hwsim.export.ops import Concat

    rng = np.random.default_rng(seed)
    (b0, b1), out_bits = bits, max(bits)
    a = rng.integers(-(1 << (b0 - 1)), 1 << (b0 - 1), size=(1, c0, h, w))
    b = rng.integers(-(1 << (b1 - 1)), 1 << (b1 - 1), size=(1, c1, h, w))
    a.flat[0], b.flat[-1] = -(1 << (b0 - 1)), -(1 << (b1 - 1))
    y = Concat.compute([a, b], {"axis": 1})
    parts = {"in0": (_words(_channels_last(a), simd), b0, True), "in1": (_words(_channels_last(b), simd), b1, True)}
    whole = {"out": (_words(_channels_last(y), simd), out_bits, True)}
    op_type = "StreamingSplit" if split else "StreamingConcat"
    attrs = {"SIMD": simd, "ChannelsPerStream": [c0, c1], "numInputVectors": [h, w]}
    attrs.update({"inputDataType": "INT8"} if split else {"inputDataTypes": [f"INT{b0}", f"INT{b1}"]})
    node = make_node(op_type, op_type, attrs)
    params = dict(C0=c0, C1=c1, SIMD=simd, BITS=out_bits) | ({} if split else dict(BITS0=b0, BITS1=b1))
    if split:
        outs = {"out0": parts["in0"], "out1": parts["in1"]}
        return _bench("split", "concat/split.v", params, {"in": whole["out"]}, outs, node, build_dir, sim, backpressure, seed)
    return _bench("concat", "concat/concat.v", params, parts, whole, node, build_dir, sim, backpressure, seed)


# --- integer softmax --------------------------------------------------------------------------------
KINDS = ("uniform", "ties", "far-below", "extremes", "narrow", "constant")


def softmax_scores(rng: np.random.Generator, rows: int, length: int, ibits: int) -> np.ndarray:
    """[rows, length] signed IBITS scores (IBITS >= 2), row r of kind ``KINDS[r % 6]``: 
    Scores are drawn row by row from six kinds, taken in turn (so six rows cover them all): uniform
    over the whole IBITS range, a few distinct values (ties, the maximum among them), one maximum far
    above the rest (the rest index the table's saturated last entry), only the two extreme values, a
    narrow window, and a constant row (every score ties the maximum). The output is the integer
    graph's: the probability at scale 2^-fo as a signed INT(fo+2) (hwsim.export.intgraph declares
    softmax outputs over [0, 2^fo]), so OBITS = fo + 2."""
    lo, hi = -(1 << (ibits - 1)), (1 << (ibits - 1)) - 1
    q = np.empty((rows, length), dtype=np.int64)
    for r in range(rows):
        kind = KINDS[r % len(KINDS)]
        if kind == "uniform":
            row = rng.integers(lo, hi + 1, size=length)
        elif kind == "ties":
            row = rng.choice(rng.integers(lo, hi + 1, size=3), size=length)
            row[rng.integers(length)] = row.max()  # the maximum at least once more where length allows
        elif kind == "far-below":
            row = rng.integers(lo, lo + 4, size=length)
            row[rng.integers(length)] = rng.integers(hi - 3, hi + 1)
        elif kind == "extremes":
            row = rng.choice(np.array([lo, hi]), size=length)
        elif kind == "narrow":
            w = min(8, 1 << (ibits - 2))
            centre = int(rng.integers(lo + w, hi - w + 2))
            row = centre + rng.integers(-w, w, size=length)
        else:
            row = np.full(length, rng.choice(np.array([lo, hi, int(rng.integers(lo, hi + 1))])))
        q[r] = row
    return q


def softmax_node(length: int, pe: int, rows: int, ibits: int, fo: int, entries: int, table_bits: int):
    """The IntSoftmax node the cost model prices for this block (attributes as hwsim.dataflow.mapping sets them:
    the table's type is the integer graph's signed INT of its entries, one bit more than TBITS)."""
    return make_node("IntSoftmax", "softmax", {"NumChannels": length, "numInputVectors": [rows], "PE": pe,
                                               "tableEntries": entries, "tableBits": table_bits + 1,
                                               "inputDataType": f"INT{ibits}", "outputDataType": f"INT{fo + 2}"})


def bench_softmax(length: int, pe: int, rows: int, build_dir: str | Path, sim: str = "icarus",
                  backpressure: bool = True, seed: int = 0, fo: int = 8, in_scale: float = 1 / 16, fe: int = 12,
                  ibits: int = 8, table_entries: int = 64) -> dict:
    """One random case of ``rows`` rows of ``length`` scores (PE lanes per word) through rtl/softmax.

    The exp table has ``table_entries`` entries ``round(exp(-k * in_scale) * 2^fe)`` (a table shorter
    than 2^ibits saturates: scores more than ``table_entries - 1`` below the maximum read the last
    entry). Without back-pressure the case is streamed twice and the report carries the measured II
    and latency beside the IntSoftmax node's ``get_exp_cycles`` and ``get_latency``."""
    if length % pe:
        raise ValueError(f"PE={pe} must divide the row length {length}")
    if fo < 1:
        raise ValueError("rtl/softmax needs fo >= 1")
    rng = np.random.default_rng(seed)
    q = softmax_scores(rng, rows, length, ibits)
    table = build_exp_table(in_scale, fe, table_entries)
    expect = softmax_ref(q, table, fo)
    tbits = max(1, int(table.max()).bit_length())
    obits = fo + 2
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    write_mem(build / "table.mem", table.reshape(-1, 1), tbits, signed=False)
    params = {"LENGTH": length, "PE": pe, "IBITS": ibits, "OBITS": obits, "FO": fo, "TBITS": tbits,
              "TABLE_ENTRIES": table_entries}
    node = softmax_node(length, pe, rows, ibits, fo, table_entries, tbits)
    report = _bench("softmax", "softmax/softmax.v", params, {"in": (_words(q, pe), ibits, True)},
                    {"out": (_words(expect, pe), obits, True)}, node, build, sim, backpressure, seed)
    report["values"] = int(expect.size)
    report["saturated"] = int((q.max(axis=1, keepdims=True) - q >= table_entries - 1).sum())
    return report


# --- DiT's adaLN ------------------------------------------------------------------------------------
def adaln_tokens(rng: np.random.Generator, images: int, tokens: int, channels: int, ibits: int) -> np.ndarray:
    """[images, tokens, channels] random tokens with the corner cases in fixed places."""
    lo, hi = -(1 << (ibits - 1)), (1 << (ibits - 1)) - 1
    x = rng.integers(lo, hi + 1, size=(images, tokens, channels))
    corners = [np.full(channels, 7),                                   # constant: D = 0
               np.where(np.arange(channels) % 2, hi, lo),              # alternating extremes: the largest D
               np.where(np.arange(channels) == channels // 2, hi, lo),  # one outlier: the largest |z|, sqrt(C - 1)
               (np.arange(channels) == 0).astype(np.int64)]            # D = C - 1: the smallest D > 0
    for j, row in enumerate(corners[:tokens]):
        x[0, j] = row
    if images > 1:
        x[1, -1] = hi  # constant at the other end of the range
    return x


def adaln_rows(rng: np.random.Generator, images: int, channels: int, sbits: int, hbits: int,
               tie: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-image scale and shift rows: full range, then a negative scale row, with the extremes.
    ``tie``: a shift worth half an output step (2^(e_out - e_shift - 1)), put where 1 + scale = 0 so
    that the output rounds a tie (+0.5 and -1.5 steps: half to even gives 0 and -2)."""
    smin, smax = -(1 << (sbits - 1)), (1 << (sbits - 1)) - 1
    hmin, hmax = -(1 << (hbits - 1)), (1 << (hbits - 1)) - 1
    scale = rng.integers(smin, smax + 1, size=(images, channels))
    shift = rng.integers(hmin, hmax + 1, size=(images, channels))
    scale[0, :2] = [smin, smax][:channels]  # 1 + scale = 0 at e_scale = 1 - sbits, and the largest
    shift[0, :2] = [hmax, hmin][:channels]
    if tie is not None and channels > 2 and 3 * tie <= hmax:
        scale[0, [0, channels - 1]] = smin
        shift[0, [0, channels - 1]] = [tie, -3 * tie]
    scale[0, channels // 2] = smax  # under the outlier token's outlier (it clamps)
    if images > 1:
        scale[1] = rng.integers(smin, 0, size=channels)  # negative: 1 + scale in [0, 1)
    return scale, shift


def _ties(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, ft: int, e_scale: int, e_shift: int, e_out: int) -> int:
    """How many outputs round an exact tie (modulate_ref's ``total`` halfway between two steps)."""
    z = normalize_last_axis_ref(x, ft)
    e_prod = e_scale - ft
    e_min = min(e_prod, e_shift)
    total = ((z * (scale[:, None] + (1 << -e_scale))) << (e_prod - e_min)) + (shift[:, None] << (e_shift - e_min))
    step = e_out - e_min
    return int(np.count_nonzero(total & ((1 << step) - 1) == 1 << (step - 1))) if step > 0 else 0


def adaln_node(channels: int, pe: int, tokens: int, ibits: int, obits: int, sbits: int, hbits: int, ft: int,
               unroll: int = 1):
    """The AdaLayerNorm dataflow node the cost model prices for this block configuration."""
    return make_node("AdaLayerNorm", "adaln", {"NumChannels": channels, "numInputVectors": [tokens], "PE": pe, "ft": ft,
                                               "inputDataType": f"INT{ibits}", "outputDataType": f"INT{obits}",
                                               "scaleBits": sbits, "shiftBits": hbits, "solveUnroll": unroll})


def bench_adaln(channels: int, pe: int, tokens: int, build_dir, sim: str = "icarus", backpressure: bool = True,
                seed: int = 0, images: int | None = None, unroll: int = 1, buffer: int = 0, ibits: int = 8,
                obits: int = 8, sbits: int = 16, hbits: int = 16, ft: int = 12, e_scale: int = -15,
                e_shift: int = -15, e_out: int | None = None) -> dict:
    """Bench of rtl/adaln (DiT's integer adaLN) against :func:`hwsim.intsim.ops.norm.modulate_ref`.
    
    Random
    tokens with a constant one (D = 0) and extreme ones (alternating QMIN/QMAX, one outlier, D = C - 1),
    per-image scale/shift rows (full range, a negative one, the extremes, shifts that make the output
    round a tie), at the exported DiT's exponents: ft = 12, e_scale = e_shift = -15, e_out = -4 or -5
    (what ``hwsim.export.intgraph`` writes for the tiny DiT's Modulate nodes, whose table rows fit
    INT16), or e_out = -7, where the outlier clamps. With ``backpressure=False`` one image runs twice
    back to back and the report holds the measured II, latency and first-output delay beside the
    AdaLayerNorm node's ``get_exp_cycles``/``get_latency``/``first_output_delay``.

    Run rtl/adaln on ``images`` images of ``tokens`` x ``channels`` (default 2 under back-pressure,
    so that both row banks are used; 1 without, streamed twice and timed). ``e_out`` defaults to the
    DiT's -4 or -5, or -7 (an output range of +-1, where the outlier token clamps), by seed."""
    if images is None:
        images = 2 if backpressure else 1
    if channels % pe:
        raise ValueError(f"PE={pe} must divide {channels} channels")
    rng = np.random.default_rng(seed)
    e_out = (-4, -5, -7)[seed % 3] if e_out is None else e_out
    qmin, qmax = -(1 << (obits - 1)), (1 << (obits - 1)) - 1
    x = adaln_tokens(rng, images, tokens, channels, ibits)
    tie = 1 << (e_out - e_shift - 1) if e_out > e_shift and e_scale == 1 - sbits else None
    scale, shift = adaln_rows(rng, images, channels, sbits, hbits, tie)
    y = modulate_ref(x, scale[:, None], shift[:, None], ft, e_scale, e_shift, e_out, qmin, qmax)
    node = adaln_node(channels, pe, tokens, ibits, obits, sbits, hbits, ft, unroll)
    params = {"CHANNELS": channels, "PE": pe, "TOKENS": tokens, "IBITS": ibits, "OBITS": obits, "SBITS": sbits,
              "HBITS": hbits, "FT": ft, "E_SCALE": e_scale, "E_SHIFT": e_shift, "E_OUT": e_out, "QMIN": qmin,
              "QMAX": qmax, "UNROLL": unroll, "BUFFER": buffer}
    inputs = {"in": (_words(x.reshape(-1), pe), ibits, True), "scale": (_words(scale.reshape(-1), pe), sbits, True),
              "shift": (_words(shift.reshape(-1), pe), hbits, True)}
    report = _bench("adaln", "adaln/adaln.v", params, inputs, {"out": (_words(y.reshape(-1), pe), obits, True)}, node,
                    build_dir, sim, backpressure, seed)
    report["values"] = int(y.size)
    report["clamped"] = int(np.count_nonzero((y == qmin) | (y == qmax)))
    report["ties"] = _ties(x, scale, shift, ft, e_scale, e_shift, e_out)
    if not backpressure:  # the first output's cycle, from the handshakes run_stream left in the build directory
        result = json.loads((Path(build_dir) / "tb_out.json").read_text())
        first_in = min(c[0] for c in result["in_cycles"].values() if c)
        report["measured"]["first_output_delay"] = result["out_cycles"]["out"][0] - first_in
        report["modelled"]["first_output_delay"] = node.first_output_delay()
    return report


# --- data-width converter ---------------------------------------------------------------------------
def _check(in_lanes: int, out_lanes: int, elements: int | None = None) -> None:
    if in_lanes < 1 or out_lanes < 1:
        raise ValueError(f"lanes must be >= 1 (got IN={in_lanes}, OUT={out_lanes})")
    if elements is not None and (elements < 1 or elements % in_lanes or elements % out_lanes):
        raise ValueError(f"IN={in_lanes} and OUT={out_lanes} must both divide the {elements} elements of an evaluation")


def dwc_size(in_lanes: int, out_lanes: int, bits: int) -> dict:
    """rtl/dwc's storage and data multiplexing for IN -> OUT lanes of ``bits`` bits, G = gcd(IN, OUT):

    - ``buffer_elements`` = IN + OUT - G, ``buffer_bits`` = that x BITS (the data flip-flops);
    - ``count_bits`` = ceil(log2((IN + OUT) / G)) (the fill counter, in units of G elements);
    - ``ff_bits`` = buffer_bits + count_bits: every flip-flop of the block (Yosys agrees);
    - ``mux_input_bits`` = BITS x (IN x OUT / G + IN - G): the buffer's multiplexer data inputs
      (:func:`hwsim.dataflow.ecp5.dwc_data_inputs`) summed over its bits.
    The block's cycles are the StreamingDataWidthConverter node's (hwsim.dataflow.nodes)."""
    _check(in_lanes, out_lanes)
    g = math.gcd(in_lanes, out_lanes)
    cap = in_lanes + out_lanes - g
    count_bits = max(1, math.ceil(math.log2((in_lanes + out_lanes) // g)))
    return {"gcd": g, "buffer_elements": cap, "buffer_bits": cap * bits, "count_bits": count_bits,
            "ff_bits": cap * bits + count_bits, "mux_input_bits": bits * (in_lanes * out_lanes // g + in_lanes - g)}


def dwc_node(in_lanes: int, out_lanes: int, elements: int, bits: int):
    """The StreamingDataWidthConverter node the cost model prices for this block configuration."""
    _check(in_lanes, out_lanes, elements)
    return make_node("StreamingDataWidthConverter", "dwc", {"inWidth": in_lanes * bits, "outWidth": out_lanes * bits,
                                                            "dataType": f"INT{bits}", "numElements": elements})


def dwc_values(rng: np.random.Generator, count: int, bits: int) -> np.ndarray:
    """``count`` random signed BITS-bit elements with both extremes (and -1, 0) among them."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = rng.integers(lo, hi + 1, size=count)
    corners = [lo, hi, -1, 0] if bits > 1 else [lo, hi]
    for j, v in enumerate(corners[:count]):
        x[(j * 7919) % count] = v  # spread over the lanes
    return x


def bench_dwc(in_lanes: int, out_lanes: int, elements: int, build_dir, sim: str = "icarus", backpressure: bool = True,
              seed: int = 0, bits: int = 8, evaluations: int = 3) -> dict:
    """Random elements through rtl/dwc (IN -> OUT lanes of ``bits`` bits); expected: the same element
    sequence regrouped OUT to a word. Under back-pressure ``evaluations`` evaluations of ``elements``
    run back to back with random input gaps and output stalls; without, one evaluation is streamed
    twice and the report's ``measured`` (II, latency, first-output delay) stands beside ``modelled``
    (the StreamingDataWidthConverter node's)."""
    _check(in_lanes, out_lanes, elements)
    rng = np.random.default_rng(seed)
    reps = evaluations if backpressure else 1  # _bench repeats it twice when timing
    x = dwc_values(rng, elements * reps, bits)
    model = dwc_node(in_lanes, out_lanes, elements, bits)
    params = dict(IN=in_lanes, OUT=out_lanes, BITS=bits)
    report = _bench("dwc", "dwc/dwc.v", params, {"in": (_words(x, in_lanes), bits, True)},
                    {"out": (_words(x, out_lanes), bits, True)}, model, build_dir, sim, backpressure, seed)
    report.update(elements=elements, evaluations=reps if backpressure else 2, size=dwc_size(in_lanes, out_lanes, bits))
    if not backpressure:  # the first output's cycle, from the handshakes run_stream left in the build directory
        result = json.loads((Path(build_dir) / "tb_out.json").read_text())
        report["measured"]["first_output_delay"] = result["out_cycles"]["out"][0] - result["in_cycles"]["in"][0]
        report["modelled"]["first_output_delay"] = model.first_output_delay()
        ins = result["in_cycles"]["in"]  # the slower side at full rate: no gaps between its handshakes
        outs = result["out_cycles"]["out"]
        slow = ins if in_lanes <= out_lanes else outs
        report["slow_side_gaps"] = int(sum(b - a - 1 for a, b in zip(slow, slow[1:])))
    return report


def bench_thresholding(channels: int, pe: int, vectors: int, build_dir, sim: str = "icarus", backpressure: bool = True,
                       seed: int = 0, ibits: int = 8, signed_in: bool = True, steps: int = 15, obits: int = 4,
                       per_channel: bool = True, groups: int = 1, evaluations: int = 1) -> dict:
    """rtl/thresholding against qonnx's MultiThreshold (the field's reference): sorted thresholds with
    repeats and values below and above the input range, inputs that hit thresholds exactly; with
    ``groups`` > 1, each of ``evaluations`` picks a random table at run time."""
    from qonnx.custom_op.general.multithreshold import multithreshold

    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (ibits - 1)), (1 << (ibits - 1)) - 1) if signed_in else (0, (1 << ibits) - 1)
    rows = channels if per_channel else 1
    thresholds = np.sort(rng.integers(lo - 4, hi + 6, size=(groups, rows, steps)), axis=-1)
    bias = -(1 << (obits - 1))
    x = rng.integers(lo, hi + 1, size=(evaluations, vectors, channels))
    hits = thresholds[0].reshape(-1)[rng.integers(0, thresholds[0].size, size=x.size // 3)]
    x.reshape(-1)[: hits.size] = np.clip(hits, lo, hi)  # exact ties: x >= T counts
    chosen = rng.integers(0, groups, size=evaluations)
    y = np.stack([multithreshold(x[e].astype(np.float64), np.broadcast_to(thresholds[g], (channels, steps)) * 1.0,
                                 out_bias=bias) for e, g in enumerate(chosen)]).astype(np.int64)
    mem = threshold_table(thresholds, lo, hi)
    node = make_node("Thresholding", "thresholding", {
        "NumChannels": channels, "PE": pe, "numSteps": steps, "numInputVectors": [vectors],
        "inputDataType": f"{'' if signed_in else 'U'}INT{ibits}", "outputDataType": f"INT{obits}", "ActVal": bias,
        "thresholdRows": rows, "timestepGroups": groups})
    params = dict(CHANNELS=channels, PE=pe, IBITS=ibits, SIGNED_IN=int(signed_in), TBITS=mem["TBITS"],
                  STAGES=mem["STAGES"], OBITS=obits, OUT_BIAS=bias, ROWS=rows, GROUPS=groups, VECTORS=vectors)
    return _bench("thresholding", "thresholding/thresholding.v", params,
                  {"in": (_words(x, pe), ibits, signed_in)}, {"out": (_words(y, pe), obits, True)}, node,
                  build_dir, sim, backpressure, seed, {"thresholds.mem": (mem["table"], mem["TBITS"])},
                  groups=chosen if groups > 1 else None)
