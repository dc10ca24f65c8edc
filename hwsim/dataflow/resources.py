"""Resource estimates per node for an ECP5 (LUT4, FF, MULT18X18D, DP16KD) and a Xilinx 7-series part
(LUT6, FF, DSP48E1, RAMB18), and the device-fit check.

Xilinx: FINN-R's formulas (Blott et al., "FINN-R", ACM TRETS 2018), as finn-plus implements them
for its HLS MVAU (``MVAU_hls.lut_estimation``, ``MVAU.bram_estimation``, ``MVAU_hls.dsp_estimation``);
tests/dataflow/test_finn_equality.py checks hwsim's numbers equal finn-plus's on the MVAU.
ECP5, calibrated against Yosys (synth_ecp5) and nextpnr on every node type's rtl/ block
(experiments/resource_calibration.py): MULT18X18D and DP16KD counted by the rules synth_ecp5 applies
to each multiply (:func:`mult18`) and memory (:func:`ecp5_memory`, memory_libmap's costs) of the
block, LUTs and FFs a per-node-type linear model over structural features (:func:`ecp5_parts`) whose
coefficients the calibration fits and writes into the device YAML (``coefficients.fitted``).
Without fitted coefficients (the Xilinx part, or a node type not calibrated) every non-MVAU node is
priced from generic building blocks: adders, registers, multipliers, and memories mapped to block
RAM by the best aspect ratio (or to LUT RAM when small).
A node type without a formula raises :class:`NoEstimate`; nothing counts as zero by default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from hwsim.dataflow.nodes.base import DataflowNode, NoEstimate, bits

DEVICES = Path(__file__).parent / "devices"


@dataclass(frozen=True)
class Resources:
    lut: float = 0
    ff: float = 0
    mult: float = 0  # MULT18X18D or DSP48E1
    bram: float = 0  # DP16KD or RAMB18

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.lut + other.lut, self.ff + other.ff, self.mult + other.mult, self.bram + other.bram)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.lut - other.lut, self.ff - other.ff, self.mult - other.mult, self.bram - other.bram)

    def to_dict(self) -> dict:
        return {k: int(math.ceil(v)) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Device:
    name: str
    family: str
    part: str
    lut_inputs: int
    budget: Resources
    mult_a: int
    mult_b: int
    bram_shapes: tuple[tuple[int, int], ...]
    lutram_bits: int
    coefficients: dict

    def fits(self, used: Resources) -> bool:
        return all(getattr(used, k) <= getattr(self.budget, k) for k in ("lut", "ff", "mult", "bram"))

    def utilization(self, used: Resources) -> dict:
        return {k: getattr(used, k) / getattr(self.budget, k) for k in ("lut", "ff", "mult", "bram")}


def named_yaml(folder: Path, name: str, kind: str) -> dict:
    """``folder/name.yaml``, or an error listing the known names (devices, technologies)."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
    return yaml.safe_load(path.read_text())


@lru_cache
def load_device(name: str) -> Device:
    d = named_yaml(DEVICES, name, "device")
    b = d["budget"]
    return Device(d["name"], d["family"], d["part"], d["lut_inputs"], Resources(b["lut"], b["ff"], b["mult"], b["bram"]),
                  d["mult_width_a"], d["mult_width_b"], tuple(tuple(s) for s in d["bram_shapes"]),
                  d["distributed_ram_bits_per_lut"], d["coefficients"])


# --- building blocks ------------------------------------------------------------------------------
def memory(width: int, depth: int, dev: Device) -> Resources:
    """A width x depth memory: LUT RAM when small, else block RAM in its cheapest aspect ratio."""
    if width <= 0 or depth <= 0:
        return Resources()
    if width * depth <= dev.coefficients["lutram_max_bits"]:
        return Resources(lut=width * math.ceil(depth / dev.lutram_bits))
    return Resources(bram=min(math.ceil(width / w) * math.ceil(depth / d) for w, d in dev.bram_shapes))


def adder(bits: int, dev: Device, count: int = 1) -> Resources:
    return Resources(lut=count * bits * dev.coefficients["lut_per_adder_bit"])


def registers(bits: int) -> Resources:
    return Resources(ff=bits)


def multipliers(count: int, w: int, a: int, res_type: str, dev: Device) -> Resources:
    if res_type == "dsp":
        per = math.ceil(max(w, a) / dev.mult_a) * math.ceil(min(w, a) / dev.mult_b)
        return Resources(mult=count * per)
    return Resources(lut=count * w * a * dev.coefficients["lut_per_mult_bit2"])


def _log2(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


# --- per node type ------------------------------------------------------------------------------------
def _mvau_xilinx(node: DataflowNode, dev: Device) -> Resources:
    """FINN-R, as finn-plus's MVAU_hls implements it (internal_decoupled weights, thresholds in BRAM)."""
    a = node.attrs
    p, q, mw = a["PE"], a["SIMD"], a["MW"]
    w, x = node.dt("weightDataType"), node.dt("inputDataType")
    mult = 0 if a.get("resType") == "dsp" else q * (2 * math.ceil((w + x) / 6) - 1) * (w + x)
    adder_tree = (w + x) * (2 * q - 1)
    alpha = math.log(mw, 2) + w + x - 1 - int(a["inputDataType"].startswith("INT"))
    acc = min(node.dt("accDataType"), math.ceil(alpha + math.log(1 + 2 ** -alpha, 2) + 1))
    lut = int(300 + 1.1 * (p * (mult + adder_tree + acc)))
    dsp = int(p * q * math.ceil((w + x) / 48)) if a.get("resType") == "dsp" else 0
    return Resources(lut=lut, mult=dsp) + weight_memory(node, dev)


def weight_memory(node: DataflowNode, dev: Device) -> Resources:
    """An MVAU's weight memory: PE*SIMD weights per word, MW*MH/(PE*SIMD) words (FINN-R's layout)."""
    a = node.attrs
    width, words = a["PE"] * a["SIMD"] * node.dt("weightDataType"), a["MW"] * a["MH"] // (a["PE"] * a["SIMD"])
    if dev.family == "xilinx7":
        return Resources(bram=_finn_bram(width, words))
    return memory(width, words, dev)


def _finn_bram(width: int, depth: float) -> int:
    """RAMB18 count of FINN's MVAU.bram_estimation (SDP mode, UG573 Table 1-10)."""
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / 4)
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / 9)
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / 18)
    return math.ceil(depth / 512) * math.ceil(width / 36)


def _mvau(node: DataflowNode, dev: Device) -> Resources:
    a = node.attrs
    p, q = a["PE"], a["SIMD"]
    w, x, acc = node.dt("weightDataType"), node.dt("inputDataType"), node.dt("accDataType")
    c = dev.coefficients
    lanes = (multipliers(p * q, w, x, a.get("resType", "lut"), dev)
             + adder(w + x + _log2(q), dev, p * (q - 1)) + adder(acc, dev, p) + registers(p * (q * (w + x) + 2 * acc)))
    if not a.get("noActivation", 1):
        lanes = lanes + adder(acc, dev, p) + registers(p * node.dt("outputDataType"))
    if a.get("biasBits"):
        lanes = lanes + adder(acc, dev, p)
    if node.dynamic():  # the operand buffer, written SIMD wide and read PE*SIMD wide
        store = memory(p * q * w, a["MW"] * a["MH"] // (p * q) * a.get("heads", 1), dev)
    else:
        store = weight_memory(node, dev)
    return Resources(lut=c["mvau_base_luts"], ff=c["mvau_base_ffs"]) + lanes + store


def _stream_node(node: DataflowNode, dev: Device, lanes_lut: float, lanes_ff: float) -> Resources:
    c = dev.coefficients
    return Resources(lut=c["node_base_luts"] + lanes_lut, ff=c["node_base_ffs"] + lanes_ff)


def _word(node: DataflowNode) -> tuple[int, int]:
    """(lanes, bits per lane) of the node's main stream."""
    lanes = node.attrs.get("PE", node.attrs.get("SIMD", 1))
    for attr in ("inputDataType", "lhs_dtype", "EmbeddingType", "outputDataType"):
        if attr in node.attrs:
            return lanes, node.dt(attr)
    if "inputDataTypes" in node.attrs:
        return lanes, max(bits(d) for d in node.attrs["inputDataTypes"])
    raise NoEstimate(f"{node.name} ({node.op_type}): no stream datatype")


def estimate(node: DataflowNode, dev: Device) -> Resources:
    """The node's LUT/FF/multiplier/block-RAM cost on ``dev``."""
    t = node.op_type
    if dev.family == "ecp5" and t in ECP5_TABLES and (dev.coefficients.get("fitted") or {}).get(ecp5_table(node)):
        return _ecp5(node, dev)
    if t == "MVAU":
        if node.attrs.get("mem_mode") == "external":  # weights streamed from DRAM: no weight memory
            return estimate(make_internal(node), dev) - weight_memory(node, dev)
        return _mvau_xilinx(node, dev) if dev.family == "xilinx7" and not node.dynamic() else _mvau(node, dev)
    lanes, width = _word(node)
    buffer = node.buffer_bits()
    if t == "ConvolutionInputGenerator_rtl":
        store = memory(lanes * width, node.buffer_depth(), dev)
        return _stream_node(node, dev, 4 * _log2(node.buffer_depth()), 2 * lanes * width) + store
    if t in ("FMPadding", "DuplicateStreams", "StreamingConcat", "StreamingSplit"):
        outs = max(1, len(node.outputs), len(node.inputs))
        return _stream_node(node, dev, lanes * width * (1 if t == "DuplicateStreams" else outs) / 2, lanes * width * outs)
    if t == "Requant":
        return _stream_node(node, dev, 2 * lanes * width, lanes * node.dt("outputDataType"))
    if t == "Thresholding":  # a comparator and a table read per stage and lane
        stages, tbits = node.stages(), node.threshold_bits()
        table = memory(tbits, node.weight_bits() // tbits, dev)
        return (_stream_node(node, dev, 0, stages * lanes * (width + 2 + stages)) + adder(tbits, dev, stages * lanes)
                + Resources(table.lut * stages * lanes, 0, 0, table.bram * stages * lanes))
    if t in ("ElementwiseAdd", "ElementwiseMul"):
        a = node.attrs
        out = node.dt("out_dtype") if "out_dtype" in a else width
        core = (adder(out, dev, lanes) if t == "ElementwiseAdd"
                else multipliers(lanes, width, node.dt("rhs_dtype"), a.get("resType", "lut"), dev))
        store = memory(lanes * node.dt("rhs_dtype"), math.ceil(math.prod(a["rhs_shape"]) / lanes), dev) if node.rhs_stored() else Resources()
        return _stream_node(node, dev, 0, lanes * out) + core + store
    if t == "UpsampleNearestNeighbour":
        return _stream_node(node, dev, 0, lanes * width) + memory(lanes * width, node.buffer_bits() // (lanes * width), dev)
    if t == "LutActivation":
        table = memory(node.dt("outputDataType"), 2 ** width, dev)
        return _stream_node(node, dev, 0, lanes * node.dt("outputDataType")) + Resources(table.lut * lanes, 0, 0, table.bram * lanes)
    if t == "TimestepTable":
        return _stream_node(node, dev, 0, lanes * width) + memory(lanes * width, node.weight_bits() // (lanes * width), dev)
    if t == "StreamReorder":
        return _stream_node(node, dev, 2 * _log2(node.attrs["bufferDepth"]), lanes * width) + memory(lanes * width, max(1, node.attrs["bufferDepth"] // lanes), dev)
    if t in ("GroupNorm", "AdaLayerNorm"):
        x = width
        sums = 2 * x + _log2(node.elements())
        datapath = (multipliers(lanes, x, x, "lut", dev) + adder(sums, dev, 2 * lanes)  # S and Q
                    + multipliers(lanes, x + _log2(node.elements()), 31, node.attrs.get("resType", "dsp"), dev)
                    + multipliers(lanes, node.attrs["ft"] + 2, 16, node.attrs.get("resType", "dsp"), dev)
                    + adder(2 * sums, dev, 2) + adder(32, dev, 2) + registers(lanes * (sums + 64)))
        return _stream_node(node, dev, 0, 0) + datapath + memory(lanes * x, buffer // (lanes * x), dev)
    if t == "IntSoftmax":
        a = node.attrs
        sum_bits = a["tableBits"] + _log2(a["NumChannels"])
        table = memory(a["tableBits"], a["tableEntries"], dev)
        divider = adder(sum_bits + 1, dev, lanes * node.dt("outputDataType"))  # unrolled restoring division
        return (_stream_node(node, dev, 2 * lanes * width, lanes * (width + sum_bits)) + divider
                + Resources(table.lut * lanes, 0, 0, table.bram * lanes)
                + memory(lanes * a["tableBits"], max(1, buffer // (lanes * a["tableBits"])), dev))
    if t in ("HostInput", "HostOutput"):
        return _stream_node(node, dev, lanes * width, lanes * width)
    raise NoEstimate(f"{node.name} ({t}): no resource estimate for {dev.family}")


# --- ECP5, calibrated against Yosys + nextpnr ---------------------------------------------------------
# Multiplier blocks and block RAMs are counted by the rules synth_ecp5 applies to each multiply and
# memory of the node's rtl/ block (exact); LUTs and FFs are a per-node-type linear model over
# structural features (below), its coefficients fitted by experiments/resource_calibration.py and
# stored in the device YAML (``coefficients.fitted``).
ECP5_TABLES = {"MVAU": "MVAU", "ConvolutionInputGenerator_rtl": "ConvolutionInputGenerator_rtl",
               "FMPadding": "FMPadding", "Requant": "Requant", "Thresholding": "Thresholding",
               "LutActivation": "LutActivation", "ElementwiseAdd": "ElementwiseAdd", "ElementwiseMul": "ElementwiseMul",
               "DuplicateStreams": "DuplicateStreams", "StreamingConcat": "StreamingConcat",
               "StreamingSplit": "StreamingSplit", "UpsampleNearestNeighbour": "UpsampleNearestNeighbour",
               "GroupNorm": "GroupNorm", "AdaLayerNorm": "AdaLayerNorm", "IntSoftmax": "IntSoftmax",
               "TimestepTable": "TimestepTable", "StreamReorder": "StreamReorder",
               "StreamingDataWidthConverter": "StreamingDataWidthConverter"}


def mult18(a: int, b: int, y: int | None = None) -> int:
    """MULT18X18D blocks of one a x b multiply in synth_ecp5 (mul2dsp, 18 x 18, minimum width 2):
    each operand is cut into 18-bit chunks, a last chunk of 1 bit goes to soft logic, one block per
    pair of chunks; an operand under 2 bits makes the whole product soft logic. With the product
    kept to ``y`` bits, pairs whose partial product starts at or above bit y are left out (unused)."""
    def chunks(w: int) -> int:
        return w // 18 + (w % 18 >= 2)
    if min(a, b) < 2:
        return 0
    if y is None:
        return chunks(a) * chunks(b)
    return sum(1 for i in range(chunks(a)) for j in range(chunks(b)) if 18 * (i + j) < y)


def const_mult18(bits: int, k: int) -> int:
    """Blocks of a ``bits``-wide signal times the constant ``k`` (a power of two is a shift)."""
    k = abs(int(k))
    return 0 if k & (k - 1) == 0 else mult18(bits, k.bit_length())


@dataclass(frozen=True)
class Memory:
    """One memory array of a block as Yosys' memory_libmap sees it."""
    width: int
    depth: int
    reads: int = 1         # read ports
    writes: int = 0        # write ports (0: a ROM)
    sync: bool = True      # reads registered (block RAM needs it)
    lanes: int = 1         # read and write ports that each reach only 1/lanes of the entries (their
                           # addresses differ in constant low bits): multiplexers of the whole array
    tag: str = ""          # a RAM in flip-flops priced by the node type's own coefficients (features
                           # "<tag>_rd", "<tag>_wr") rather than the shared ones
    new_data: bool = False  # a registered read that sees the word written in the same cycle (rtl/fifo's
                            # read at a registered pointer); otherwise a synchronous read gets the old word

    @property
    def bits(self) -> int:
        return self.width * self.depth


FACTOR_MUX = FACTOR_DEMUX = 0.5  # Yosys memory_libmap's scores
LOGIC_COST_ROM, LOGIC_COST_RAM = 1 / 16, 1.0


def _geometry(m: Memory, cost: float, abits: int, dbits: tuple[int, ...], byte: int, repl_port: int,
              widths: range, emu: int) -> tuple[float, int, int]:
    """Cheapest (cost, blocks, address chunks) over the base widths (memory_libmap's handle_geom)."""
    best = None
    for b in widths:
        unit = dbits[b]
        eff = 1 if not m.writes else min(byte or unit, unit)
        swizzle = -(-m.width // eff) * eff
        mult_a = -(-m.depth // (1 << (abits - b)))
        repl = -(-(mult_a * swizzle) // unit)
        c = cost * repl * repl_port + FACTOR_MUX * (mult_a - 1) * m.width * m.reads
        c += FACTOR_DEMUX * mult_a * m.writes if mult_a != 1 else 0
        c += 2 * emu
        if best is None or c < best[0]:
            best = (c, repl * repl_port, mult_a)
    return best


def ecp5_memory(m: Memory) -> tuple[str, int, int]:
    """Where synth_ecp5 puts a memory, by memory_libmap's costs: ("logic" | "lutram" | "bram",
    blocks (DP16KD or TRELLIS_DPR16X4), address chunks). Logic costs 1/16 per ROM bit and 1 per RAM
    bit; a DPR16X4 (16 x 4, one write and one asynchronous read port, no ROMs) 4; a DP16KD (two
    ports, 1..18 bits wide) or PDPW16KD (one 36-bit write, one read) 128; read multiplexers over
    address chunks 0.5 per bit; two per emulation point (a read port, a write it is made transparent to)."""
    if m.width <= 0 or m.depth <= 0:
        return "logic", 0, 1
    options = [((LOGIC_COST_RAM if m.writes else LOGIC_COST_ROM) * m.bits, "logic", 0, 1)]
    if m.writes == 1:
        c, n, a = _geometry(m, 4, 4, (4,), 0, m.reads, range(1), m.reads)
        options.append((c, "lutram", n, a))
    if m.sync and m.writes <= 2 and m.reads:
        # emulation score: a point per read port, three more per write port it must be made transparent
        # to, and three per write port for read-first (old word) behaviour (Yosys' `debug memory_libmap`)
        emu = m.reads * (1 + 3 * m.writes) + (0 if m.new_data else 3 * m.writes)
        space = 2 - m.writes
        if space > 0:
            c, n, a = _geometry(m, 128, 14, (1, 2, 4, 9, 18), 9, -(-m.reads // space), range(5), emu)
            options.append((c, "bram", n, a))
        if m.writes <= 1:
            c, n, a = _geometry(m, 128, 14, (1, 2, 4, 9, 18, 36), 9, m.reads, range(3 if m.writes else 0, 6), emu)
            options.append((c, "bram", n, a))
    _, kind, n, a = min(options, key=lambda o: o[0])
    return kind, n, a


def _memory_parts(mems: list[Memory]) -> tuple[int, dict, dict]:
    """(DP16KD, LUT features, FF features) of a block's memories, by where Yosys puts each:
    ``rom``: LUT ROM, a LUT4 per 16 entries per bit and read port; ``ram_rd``/``ram_wr``: a RAM in
    flip-flops, its read multiplexers (bits x read ports) and write enables (bits x write ports);
    ``lutram``: DPR16X4 count, ``lutram_mux``: the read multiplexer over its address chunks (bits);
    ``bram_mux``: the multiplexer over block-RAM address chunks; FF ``ram_ff``: a RAM's flip-flops."""
    bram = 0
    lut = {"rom": 0.0, "ram_rd": 0.0, "ram_wr": 0.0, "lutram": 0.0, "bram_mux": 0.0}
    ff = {"ram_ff": 0.0}
    for m in mems:
        kind, n, chunks = ecp5_memory(m)
        if kind == "bram":
            bram += n
            lut["bram_mux"] += (chunks - 1) * m.width * m.reads
        elif kind == "lutram":
            lut["lutram"] += n
            lut["lutram_mux"] = lut.get("lutram_mux", 0.0) + (chunks - 1) * m.width * m.reads
            ff["ram_ff"] += m.width * m.reads if m.sync else 0
        elif m.writes:
            rd, wr = (f"{m.tag}_rd", f"{m.tag}_wr") if m.tag else ("ram_rd", "ram_wr")
            lut[rd] = lut.get(rd, 0.0) + m.reads / m.lanes * m.bits / 4
            lut[wr] = lut.get(wr, 0.0) + max(1.0, m.writes / m.lanes) * m.bits / 4
            ff["ram_ff"] += m.bits
        else:
            lut["rom"] += m.reads * m.width * max(1, m.depth / 16)
    return bram, {k: v for k, v in lut.items() if v}, {k: v for k, v in ff.items() if v}


def _clog2(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def dwc_mux(i: int, o: int, bits: int) -> dict[str, float]:
    """rtl/dwc's buffer of KI + KO - 1 units (G = gcd(IN, OUT) elements each): a unit is loaded from
    the input word at each offset k < KO that covers it, or shifted down by KO on a pop, or held.
    A unit with one source besides holding is a flip-flop enable (no LUT); with s > 1 it needs a
    multiplexer: ``mux`` counts those unit bits, ``inputs`` their inputs past the first."""
    g = math.gcd(i, o)
    ki, ko, width = i // g, o // g, g * bits
    out = {"mux": 0.0, "inputs": 0.0}
    for u in range(ki + ko - 1):
        sources = sum(1 for k in range(ko) if k <= u < k + ki) + (u + ko < ki + ko - 1)
        if sources > 1:
            out["mux"] += width
            out["inputs"] += width * (sources - 1)
    return out


def requant_shift_values(node: DataflowNode) -> list[list[int]]:
    """The distinct shifts each lane of a Requant applies (lane p serves channels p, p + PE, ...; every
    timestep group's table), from the node's ``shifts`` (per channel, or one per tensor). Without
    them, every channel a lane serves is taken to differ, up to the 10 values of [-1, 8]."""
    a = node.attrs
    lanes, c, groups = a.get("PE", 1), a["NumChannels"], a.get("timestepGroups", 1)
    shifts = a.get("shifts")
    if shifts is None:
        return [list(range(-1, 9))[:min(groups * c // lanes, 10)]] * lanes
    table = [list(g) for g in shifts] if shifts and isinstance(shifts[0], (list, tuple)) else [list(shifts)]
    table = [g * c if len(g) == 1 else g for g in table]
    return [sorted({int(g[ch]) for g in table for ch in range(p, c, lanes)}) for p in range(lanes)]


def ecp5_parts(node: DataflowNode) -> tuple[int, list[Memory], dict, dict]:
    """(MULT18X18D, memories, LUT features, FF features) of the node's rtl/ block (see each block's
    Verilog for the multiplies and memories named here)."""
    t, a = node.op_type, node.attrs
    one = {"base": 1.0}
    if t == "MVAU":
        p, q, w, x, acc = a["PE"], a["SIMD"], node.dt("weightDataType"), node.dt("inputDataType"), node.dt("accDataType")
        lut_mult = a.get("resType", "lut") == "lut"
        mw, mh = a["MW"], a["MH"]
        nf = mh // p
        sparse, dyn = node.sparse(), node.dynamic()
        sf = node.stored_row() // q if sparse else mw // q
        act = not a.get("noActivation", 1)
        mults = 0 if lut_mult else p * q * mult18(w, x)
        mults += const_mult18(_clog2(nf), sf) if nf > 1 else 0   # the weight address nf * SF + sf
        if not dyn or act:  # the bias and shift address nf * PE + lane
            mults += const_mult18(_clog2(nf), p) if nf > 1 else 0
        mems = []
        if dyn:
            heads = a.get("heads", 1)
            # lane (q, r) reads entries (h*MH + n*PE + q)*MW + f*SIMD + r: one PE*SIMD-th of the array each
            mems.append(Memory(w, heads * mh * mw, p * q, q, sync=True, lanes=p * q, tag="operand"))
        else:
            if not node.external():  # weights streamed from DRAM (FINN's external mode) take no weight memory
                mems.append(Memory(p * q * w, nf * sf))
                if sparse:
                    mems.append(Memory(p * q * node.index_bits(), nf * sf))
            mems.append(Memory(a.get("biasBits", 16), mh, p, sync=False))
        if act:
            mems.append(Memory(8, mh, p, sync=False))  # shifts
        if sparse:
            # the whole vector (SIMD words written a beat), read by every product at ((sf * SIMD + s) / N)
            # * M + index: with SIMD / N and M powers of two the lane's s is constant address bits, so a
            # product's multiplexer reaches MW * N / SIMD of the entries
            n_, m_ = a.get("sparsityN", 1), a["sparsityM"]
            reach = q // n_ if q % n_ == 0 and _pow2(q // n_) and _pow2(m_) else 1
            mems.append(Memory(x, mw, p * q, q, sync=False, lanes=reach, tag="vector"))
        elif nf > 1:
            mems.append(Memory(q * x, mw // q, 1, 1))  # the input buffer replayed for nf > 0
        bram, ml, mf = _memory_parts(mems)
        levels = math.ceil(math.log2(q)) if q > 1 else 0
        lut = {**one, "act_base": 1.0 if act else 0.0, "mult": p * q * w * x if lut_mult else 0, "tree": p * (q - 1) * (w + x + levels),
               "acc": p * acc, "act": p * acc * _clog2(acc) if act else 0, "sparse": p * q * x * a.get("sparsityM", 1) if sparse else 0,
               "ctrl": _clog2(nf) + _clog2(sf), **ml}
        ff = {**one, "operands": p * q * (w + x), "tree": p * (2 * q - 1) * (w + x + levels) if q > 1 else p * (w + x),
              "acc": p * acc, "out": p * (node.dt("outputDataType") if act else acc), **mf}
        return mults, mems, lut, ff
    if t == "StreamingDataWidthConverter":
        i, o = node.lanes()
        g = math.gcd(i, o)
        b = node.dt("dataType")
        return 0, [], {**one, **dwc_mux(i, o, b)}, {**one, "buffer": (i + o - g) * b, "ctrl": _clog2((i + o) // g)}
    lanes, width = _word(node)
    word = lanes * width
    if t == "ConvolutionInputGenerator_rtl":
        iw, s = a["IFMDim"][1], a["Stride"]
        cf = a["IFMChannels"] // a["SIMD"]
        # rtl/swg's 32-bit window position p and oldest word: ((oy*S_H + ky)*IW + ox*S_W + kx)*CF + c
        # and (oy*S_H*IW + ox*S_W)*CF; (oy*S_H) and (ox*S_W) shared
        mults = (const_mult18(32, s[0]) + const_mult18(32, s[1]) + 2 * const_mult18(32, iw) + 2 * const_mult18(32, cf))
        mems = [Memory(word, node.buffer_depth(), 1, 1)]
        bram, ml, mf = _memory_parts(mems)
        return mults, mems, {**one, "word": word, "mult": mults, **ml}, {**one, "word": word, **mf}
    if t == "FMPadding":
        return 0, [], {**one, "word": word, "ctrl": _clog2(a["NumChannels"] // a["SIMD"])}, {**one, "word": word}
    if t == "Requant":
        ob = node.dt("outputDataType")
        mems = [Memory(8, a["NumChannels"] * a.get("timestepGroups", 1), lanes, sync=False)]
        # the shift table is a constant ROM that synthesis folds into each lane's datapath: a lane whose
        # channels share one shift v is a fixed shift, its rounding an increment of the width - v bits
        # left (``round``); a lane with d > 1 distinct shifts shifts and rounds at a variable position
        # (``variable``) over d candidates (``shift``). Every lane saturates (``word``). With one fold
        # the fold counter still has a bit, and the lane's address also reaches an (undefined) entry
        # past the table (``one_fold``).
        one_fold = a["NumChannels"] * a.get("timestepGroups", 1) == lanes
        lut = {**one, "word": word, "round": 0.0, "variable": 0.0, "shift": 0.0, "one_fold": word if one_fold else 0}
        for vs in requant_shift_values(node):
            if len(vs) > 1:
                lut["variable"] += width
                lut["shift"] += width * (len(vs) - 1)
            elif vs[0] > 0:
                lut["round"] += max(0, width - vs[0])
        return 0, mems, lut, {**one, "word": word, "out": lanes * ob}
    if t == "Thresholding":
        stages, tbits = node.stages(), node.threshold_bits()
        rows = a.get("thresholdRows", a["NumChannels"]) * a.get("timestepGroups", 1)
        # stage k of a lane compares with one of 2^k entries of its rows, but at a computed address
        # (row * NT + idx): every stage of every lane reads the whole table, a LUT ROM per read port
        # merged with the comparator behind it (``table``, the node type's own coefficient)
        mems = [Memory(tbits, rows * ((1 << stages) - 1), lanes * stages, sync=False)]
        # the table address (row * NT + idx - 1), row = fold * PE + lane, per stage and lane: lane 0's
        # row is the fold (its low bits zero), the others' fold and lane bits
        nt, fb = (1 << stages) - 1, _clog2(a["NumChannels"] // lanes)
        mults = 0
        if a.get("thresholdRows", a["NumChannels"]) > 1 and a.get("timestepGroups", 1) == 1:
            mults = stages * sum(const_mult18(fb if p == 0 else fb + int(math.log2(lanes)), nt) for p in range(lanes))
        # the fold counter has FB = max(1, clog2(folds)) bits, so the address reaches 2^FB * PE rows
        # (past the table with one fold, or folds not a power of two)
        reach = rows
        if a.get("thresholdRows", a["NumChannels"]) > 1:
            reach = max(rows, (1 << _clog2(a["NumChannels"] // lanes)) * lanes * a.get("timestepGroups", 1))
        table = lanes * stages * tbits * max(1.0, reach * ((1 << stages) - 1) / 16)
        addr = lanes * stages * _clog2(rows * nt)  # each stage's table address row * NT + idx - 1
        return mults, mems, {**one, "cmp": lanes * stages * tbits, "addr": addr, "table": table}, \
            {**one, "pipe": lanes * stages * (width + 1 + stages)}
    if t == "LutActivation":
        ob = node.dt("outputDataType")
        mems = [Memory(ob, 2 ** width, lanes)]
        bram, ml, mf = _memory_parts(mems)
        return 0, mems, {**one, "out": lanes * ob, **ml}, {**one, "out": lanes * ob, **mf}
    if t in ("ElementwiseAdd", "ElementwiseMul"):
        ob = node.dt("out_dtype")
        rb = node.dt("rhs_dtype")
        lut_mult = a.get("resType", "lut") == "lut"
        mults = 0 if t == "ElementwiseAdd" or lut_mult else lanes * mult18(width, rb)
        mems = []
        if node.rhs_const():
            # read at a registered address: Yosys moves that register into the read port (a synchronous ROM)
            mems.append(Memory(lanes * rb, math.ceil(math.prod(a["rhs_shape"]) / lanes), 1))
        elif node.rhs_stored():  # a row of the right-hand side, double-buffered
            mems.append(Memory(lanes * rb, 2 * node.channels() // lanes, 1, 1, sync=False))
        bram, ml, mf = _memory_parts(mems)
        style = {"const": 1.0} if node.rhs_const() else {"broadcast": 1.0} if node.rhs_stored() else {}
        lut = {**one, **style, "add": lanes * ob if t == "ElementwiseAdd" else 0,
               "mult": lanes * width * rb if t == "ElementwiseMul" and lut_mult else 0,
               "dsp": lanes * ob if t == "ElementwiseMul" and not lut_mult else 0, **ml}
        return mults, mems, lut, {**one, **style, "out": lanes * ob, **mf}
    if t == "DuplicateStreams":
        return 0, [], {**one, "word": word}, {**one, "word": word}
    if t in ("StreamingConcat", "StreamingSplit"):
        folds = sum(a["ChannelsPerStream"]) // a["SIMD"]
        return 0, [], {**one, "word": word, "ctrl": _clog2(folds)}, {**one, "word": word, "ctrl": _clog2(folds)}
    if t == "UpsampleNearestNeighbour":
        mems = [Memory(word, a["WI"] * a["NumChannels"] // a["SIMD"], 1, 1)]
        bram, ml, mf = _memory_parts(mems)
        f, cf = a["HO"] // a["HI"], a["NumChannels"] // a["SIMD"]
        mults = const_mult18(32 - int(math.log2(f)) if _pow2(f) else 32, cf)  # the row slot (x / FACTOR) * CF + c
        return mults, mems, {**one, "word": word, **ml}, {**one, "word": word, **mf}
    if t in ("GroupNorm", "AdaLayerNorm", "IntSoftmax"):
        return _ecp5_norm(node, lanes, width)
    if t == "TimestepTable":
        mems = [Memory(word, a["NumSteps"] * a["EmbeddingDim"] // lanes)]
        bram, ml, mf = _memory_parts(mems)
        mults = const_mult18(16, a["EmbeddingDim"] // lanes)  # the row's base address: step index (16 bits) * FOLDS
        return mults, mems, {**one, "word": word, "ctrl": _clog2(a["NumSteps"]), **ml}, {**one, "word": word, **mf}
    if t == "StreamReorder":
        slots, n = node.slots(), node.elements() // lanes
        # the sequence ROM holds word indices mod S, all below min(N, S): Yosys drops its constant top bits
        mems = [Memory(word, slots, 1, 1), Memory(max(1, (min(n, slots) - 1).bit_length()), n)]
        bram, ml, mf = _memory_parts(mems)
        # a full flag per slot: set by the write pointer, cleared and tested at the read address
        return 0, mems, {**one, "word": word, "slots": slots, **ml}, {**one, "word": word, "slots": slots, **mf}
    raise NoEstimate(f"{node.name} ({t}): no ECP5 parts")


def _ecp5_norm(node: DataflowNode, lanes: int, width: int) -> tuple[int, list[Memory], dict, dict]:
    """GroupNorm, AdaLayerNorm and IntSoftmax: fixed-width datapaths per lane (rtl/groupnorm and
    rtl/adaln compute in 64 bits), the group or token statistics and the buffers."""
    t, a = node.op_type, node.attrs
    one = {"base": 1.0}
    c = a["NumChannels"]
    folds = c // lanes
    if t == "GroupNorm":
        groups = a["groups"]
        words = node.elements() // lanes
        mems = [Memory(lanes * width, words, 1, 1), Memory(a["gammaBits"], c, lanes, sync=False),
                Memory(a["betaBits"], c, lanes, sync=False)]
        n = node.group_size()
        # rtl/groupnorm computes in 64 bits: LOAD x*x per lane; SOLVE N*Q - S*S (64 x 64 kept to 64);
        # EMIT per lane N*x - S, (that) * r (64 x 65 kept to 64), t * gamma (64 x GBITS)
        mults = lanes * mult18(width, width) + const_mult18(64, n) + mult18(64, 64, 64) \
            + lanes * (const_mult18(width, n) + mult18(64, 65, 64) + mult18(64, a["gammaBits"], 64))
        bram, ml, mf = _memory_parts(mems)
        # each lane adds into (and EMIT reads) the statistics of its group, a multiplexer per lane over
        # the groups its address can reach: channel fold * PE + lane, group = channel / (C / G), so
        # with PE >= C / G the lane's constant bits fix part of the group index (C / PE = folds reach)
        # with groups of a non-power-of-two size the group index (fold * PE + lane) / (C / G) is a
        # division of the 32-bit fold counter by a constant, per lane in LOAD and in EMIT (``div``)
        div = 0 if _pow2(c // groups) else lanes
        return mults, mems, {**one, "lanes": lanes, "groups": groups, "lane_groups": lanes * min(groups, folds),
                             "div": div}, \
            {**one, "lanes": lanes, "groups": groups, **mf}
    if t == "AdaLayerNorm":
        sb, hb = a["scaleBits"], a["shiftBits"]
        mems = [Memory(lanes * width, node_adaln_depth(node), 1, 1), Memory(lanes * sb, 2 * folds, 1, 1),
                Memory(lanes * hb, 2 * folds, 1, 1)]
        # rtl/adaln sizes its words: S has IBITS + CB + 1 bits, Q 2 IBITS + CB, z FT + CB + 2 (CB = log2 C);
        # LOAD x*x per lane; set-up C*Q - S*S; EMIT per lane (C*x - S) * r (r: 32 bits, zero-extended)
        # and z * (scale + 2^-E_SCALE) (the sum one bit over the wider of the two)
        cb = _clog2(c)
        one_bits = max(sb, 2)  # 2^(SBITS - 1) at E_SCALE = 1 - SBITS, as a signed constant
        mults = lanes * mult18(width, width) + const_mult18(2 * width + cb, c) + mult18(width + cb + 1, width + cb + 1) \
            + lanes * (const_mult18(width, c) + mult18(width + cb + 2, 33) + mult18(a["ft"] + cb + 2, max(sb, one_bits + 1) + 1))
        bram, ml, mf = _memory_parts(mems)
        return mults, mems, {**one, "lanes": lanes, "cb": (lanes + 1) * cb}, \
            {**one, "lanes": lanes, "unroll": node.unroll(), **mf}
    # IntSoftmax: a row buffer of SLOTS rows (one write, two reads), the exp table read by 2 x PE
    tbits = a["tableBits"] - 1
    slots = node.slots()
    mems = [Memory(lanes * width, slots * folds, 2, 1), Memory(tbits, a["tableEntries"], 2 * lanes)]
    # the slot addresses s * FOLDS + i (s: 3 bits) of LOAD, SUM and EMIT; and the per-slot registers
    # written at a variable offset, total_of[s * TW +: TW] and max_of[s * IBITS +: IBITS], which Yosys
    # builds with a multiply when the width is even and not a power of two (measured: odd widths and
    # powers of two need none)
    sum_bits = tbits + (_clog2(c) if c > 1 else 0)
    tw = max(sum_bits, node.dt("outputDataType") - 1)
    mults = 3 * const_mult18(3, folds) + sum(mult18(3, k.bit_length()) for k in (tw, width) if k % 2 == 0 and not _pow2(k))
    bram, ml, mf = _memory_parts(mems)
    div = lanes * node.dt("outputDataType") * (tbits + _clog2(c))  # the pipelined restoring dividers
    return mults, mems, {**one, "div": div, "rom": ml.get("rom", 0.0)}, {**one, "div": div, **mf}


def node_adaln_depth(node: DataflowNode) -> int:
    f = node.folds()
    solve = node._solve(node.unroll())
    return 2 * f if solve > f else f + solve + 1


def features(node: DataflowNode, dev: Device | None = None) -> dict[str, dict[str, float]]:
    """The node's ECP5 LUT and FF features ({"lut": {...}, "ff": {...}}), as the fit and the model use them."""
    _, _, lut, ff = ecp5_parts(node)
    return {"lut": lut, "ff": ff}


def fifo_parts(width: int, depth: int) -> tuple[list[Memory], dict, dict]:
    """rtl/fifo: a WIDTH x DEPTH RAM read at the registered read pointer (first-word fall-through),
    which Yosys turns into a synchronous read port (so a deep FIFO takes block RAM). In block RAM the
    read must see the word written in the same cycle: Yosys adds a WIDTH-bit bypass register and
    multiplexer (``bypass``); in LUT RAM the read stays asynchronous at the registered pointer (no
    data flip-flops); at depth 2 the words are registers (memory_libmap: cheaper than a DPR16X4)."""
    mems = [Memory(width, depth, 1, 1, new_data=True)]
    kind = ecp5_memory(mems[0])[0]
    _, ml, mf = _memory_parts(mems)
    if kind == "lutram":
        mf.pop("ram_ff", None)
    one = {"base": 1.0}
    bypass = {"bypass": float(width)} if kind == "bram" else {}
    return mems, {**one, "ctrl": _clog2(depth), **bypass, **ml}, {**one, "ctrl": _clog2(depth), **bypass, **mf}


def fifo_features(width: int, depth: int, dev: Device | None = None) -> dict[str, dict[str, float]]:
    _, lut, ff = fifo_parts(width, depth)
    return {"lut": lut, "ff": ff}


SHARED = {"lut": ("rom", "ram_rd", "ram_wr", "lutram", "lutram_mux", "bram_mux"), "ff": ("ram_ff",)}
# Shared coefficients known from the architecture rather than fitted: nextpnr packs a TRELLIS_DPR16X4
# into two RAM-mode slices (4 TRELLIS_COMB) and a RAMW slice (2 more).
FIXED = {"lut": {"lutram": 6.0}, "ff": {}}


def _linear(coef: dict, feats: dict, shared: dict | None = None) -> float:
    """Coefficient x feature summed; the memory features take the coefficients shared by every
    node type (``shared``), the others the node type's own."""
    return sum((shared or {}).get(k, 0.0) * v if k in (shared or {}) else coef.get(k, 0.0) * v for k, v in feats.items())


def _shared(dev: Device, target: str) -> dict:
    return ((dev.coefficients.get("fitted") or {}).get("shared") or {}).get(target, {})


def ecp5_table(node: DataflowNode) -> str:
    """The coefficient table of a node: its type, the MVAU's sparse and dynamic variants apart."""
    if node.op_type == "MVAU" and node.dynamic():
        return "MVAU (dynamic)"
    if node.op_type == "MVAU" and node.sparse():
        return "MVAU (sparse)"
    return ECP5_TABLES[node.op_type]


def _ecp5(node: DataflowNode, dev: Device) -> Resources:
    mults, mems, lut, ff = ecp5_parts(node)
    bram, _, _ = _memory_parts(mems)
    table = dev.coefficients["fitted"][ecp5_table(node)]
    return Resources(lut=round(_linear(table["lut"], lut, _shared(dev, "lut")), 1),
                     ff=round(_linear(table["ff"], ff, _shared(dev, "ff")), 1), mult=mults, bram=bram)


def fifo(width: int, depth: int, dev: Device) -> Resources:
    """rtl/fifo of WIDTH x DEPTH on ``dev`` (calibrated ECP5), else a memory of its size."""
    table = (dev.coefficients.get("fitted") or {}).get("FIFO") if dev.family == "ecp5" else None
    if not table:
        return memory(width, depth, dev)
    mems, lut, ff = fifo_parts(width, depth)
    bram, _, _ = _memory_parts(mems)
    return Resources(lut=round(_linear(table["lut"], lut, _shared(dev, "lut")), 1),
                     ff=round(_linear(table["ff"], ff, _shared(dev, "ff")), 1), bram=bram)


def make_internal(node: DataflowNode) -> DataflowNode:
    return type(node)(node.name, {**node.attrs, "mem_mode": "internal_decoupled"}, node.inputs, node.outputs, node.source)


def fifo_memory(fifos, dev: Device, lanes: dict[str, int] | None = None) -> Resources:
    """The FIFOs of a schedule (:class:`hwsim.dataflow.schedule.Fifo`), each a memory of its depth.
    On a calibrated ECP5, rtl/fifo as hwsim.rtlgen.stitch instantiates it (control included): a word
    of the producer's lanes (``lanes``: producer name -> lanes per word; 1 if not given) and
    max(2, ceil(depth / lanes)) words."""
    out = Resources()
    calibrated = dev.family == "ecp5" and (dev.coefficients.get("fitted") or {}).get("FIFO")
    for f in fifos:
        if calibrated:
            k = (lanes or {}).get(f.producer, 1)
            out = out + fifo(f.bits // f.depth * k, max(2, math.ceil(f.depth / k)), dev)
        else:
            out = out + memory(f.bits // f.depth, f.depth, dev)
    return out


def total(nodes: list[DataflowNode], dev: Device) -> Resources:
    out = Resources()
    for n in nodes:
        out = out + estimate(n, dev)
    return out
