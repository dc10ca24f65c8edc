"""Resource estimates per node for an ECP5 (LUT4, FF, MULT18X18D, DP16KD) and a Xilinx 7-series part
(LUT6, FF, DSP48E1, RAMB18), and the device-fit check.

Xilinx: FINN-R's formulas (Blott et al., "FINN-R", ACM TRETS 2018), as finn-plus implements them
for its HLS MVAU (``MVAU_hls.lut_estimation``, ``MVAU.bram_estimation``, ``MVAU_hls.dsp_estimation``);
tests/dataflow/test_finn_equality.py checks hwsim's numbers equal finn-plus's on the MVAU.
ECP5, calibrated against Yosys (synth_ecp5) and nextpnr on every node type's rtl/ block
(experiments/resource_calibration.py): MULT18X18D and DP16KD counted by the rules synth_ecp5 applies
to each multiply and memory of the block, LUTs and FFs a per-node-type linear model over structural
features, all read off the RTL in :mod:`hwsim.dataflow.ecp5`; the coefficients are the calibration's,
in the device YAML (``coefficients.fitted``).
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

from hwsim.dataflow.ecp5 import _memory_parts, borrowed_features, borrowed_lut, ecp5_parts, fifo_parts, single_shift, stream_word
from hwsim.dataflow.nodes.base import DataflowNode, NoEstimate

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
    w, x = node.weight_width(), node.dt("inputDataType")
    mult = 0 if a.get("resType") == "dsp" else q * (2 * math.ceil((w + x) / 6) - 1) * (w + x)
    adder_tree = (w + x) * (2 * q - 1)
    alpha = math.log(mw, 2) + w + x - 1 - int(a["inputDataType"].startswith("INT"))
    acc = min(node.dt("accDataType"), math.ceil(alpha + math.log(1 + 2 ** -alpha, 2) + 1))
    lut = int(300 + 1.1 * (p * (mult + adder_tree + acc)))
    dsp = int(p * q * math.ceil((w + x) / 48)) if a.get("resType") == "dsp" else 0
    return Resources(lut=lut, mult=dsp) + weight_memory(node, dev) + group_shifters(node, dev)


def weight_memory(node: DataflowNode, dev: Device) -> Resources:
    """An MVAU's weight memory: PE*SIMD weights per word, MW*MH/(PE*SIMD) words (FINN-R's layout);
    group-shifted weights add their shifts' memory (rtl/mvau WGROUP)."""
    a = node.attrs
    width, words = a["PE"] * a["SIMD"] * node.weight_width(), a["MW"] * a["MH"] // (a["PE"] * a["SIMD"])
    store = [(width, words)]
    if node.group_shift():
        store.append(node.group_shift_memory())
    if dev.family == "xilinx7":
        return Resources(bram=sum(_finn_bram(w, d) for w, d in store))
    return sum((memory(w, d, dev) for w, d in store), Resources())


def group_shifters(node: DataflowNode, dev: Device) -> Resources:
    """rtl/mvau's left shift of each group's sum (WGROUP): shift-bits stages of 2:1 multiplexers over
    the sum's bits, priced as that many adders of the sum's width (a LUT per bit and stage either way)."""
    if not node.group_shift():
        return Resources()
    a = node.attrs
    g, wq, sb = node.group_shift()
    width = wq + node.dt("inputDataType") + _log2(min(g, a["SIMD"]))
    return adder(width, dev, a["PE"] * max(1, a["SIMD"] // g) * sb) + registers(a["PE"] * max(1, a["SIMD"] // g) * sb * 3)


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
    w, x, acc = node.weight_width(), node.dt("inputDataType"), node.dt("accDataType")
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
        store = weight_memory(node, dev) + group_shifters(node, dev)
    return Resources(lut=c["mvau_base_luts"], ff=c["mvau_base_ffs"]) + lanes + store


def _stream_node(node: DataflowNode, dev: Device, lanes_lut: float, lanes_ff: float) -> Resources:
    c = dev.coefficients
    return Resources(lut=c["node_base_luts"] + lanes_lut, ff=c["node_base_ffs"] + lanes_ff)


def estimate(node: DataflowNode, dev: Device) -> Resources:
    """The node's LUT/FF/multiplier/block-RAM cost on ``dev``."""
    t = node.op_type
    if dev.family == "ecp5" and t in ECP5_TABLES and (dev.coefficients.get("fitted") or {}).get(ecp5_table(node)):
        return _ecp5(node, dev)
    if t == "MVAU":
        if node.attrs.get("mem_mode") == "external":  # weights streamed from DRAM: no weight memory
            return estimate(make_internal(node), dev) - weight_memory(node, dev)
        return _mvau_xilinx(node, dev) if dev.family == "xilinx7" and not node.dynamic() else _mvau(node, dev)
    lanes, width = stream_word(node)
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
# structural features (hwsim.dataflow.ecp5), its coefficients fitted by experiments/resource_calibration.py and
# stored in the device YAML (``coefficients.fitted``).
ECP5_TABLES = {"MVAU": "MVAU", "ConvolutionInputGenerator_rtl": "ConvolutionInputGenerator_rtl",
               "FMPadding": "FMPadding", "Requant": "Requant", "Thresholding": "Thresholding",
               "LutActivation": "LutActivation", "ElementwiseAdd": "ElementwiseAdd", "ElementwiseMul": "ElementwiseMul",
               "DuplicateStreams": "DuplicateStreams", "StreamingConcat": "StreamingConcat",
               "StreamingSplit": "StreamingSplit", "UpsampleNearestNeighbour": "UpsampleNearestNeighbour",
               "GroupNorm": "GroupNorm", "AdaLayerNorm": "AdaLayerNorm", "IntSoftmax": "IntSoftmax",
               "TimestepTable": "TimestepTable", "StreamReorder": "StreamReorder",
               "StreamingDataWidthConverter": "StreamingDataWidthConverter"}


def _linear(coef: dict, feats: dict, shared: dict | None = None) -> float:
    """Coefficient x feature summed; the memory features take the coefficients shared by every
    node type (``shared``), the others the node type's own."""
    return sum((shared or {}).get(k, 0.0) * v if k in (shared or {}) else coef.get(k, 0.0) * v for k, v in feats.items())


def _shared(dev: Device, target: str) -> dict:
    return ((dev.coefficients.get("fitted") or {}).get("shared") or {}).get(target, {})


def ecp5_table(node: DataflowNode) -> str:
    """The coefficient table of a node: its type, the MVAU's sparse and dynamic variants and the
    Requant with one shift for the tensor apart."""
    if node.op_type == "MVAU" and node.dynamic():
        return "MVAU (dynamic)"
    if node.op_type == "MVAU" and node.sparse():
        return "MVAU (sparse)"
    if node.op_type == "Requant" and single_shift(node):
        return "Requant (const)"  # one shift for the tensor, as exports have it: no table, its own fit
    return ECP5_TABLES[node.op_type]


def _ecp5(node: DataflowNode, dev: Device) -> Resources:
    mults, mems, lut, ff = ecp5_parts(node)
    bram, _, _ = _memory_parts(mems)
    fitted, name = dev.coefficients["fitted"], ecp5_table(node)
    table, lent = fitted[name], borrowed_features(name)
    own = {k: v for k, v in lut.items() if k not in lent}
    return Resources(lut=round(_linear(table["lut"], own, _shared(dev, "lut")) + borrowed_lut(name, lut, fitted), 1),
                     ff=round(_linear(table["ff"], ff, _shared(dev, "ff")), 1), mult=mults, bram=bram)


def fifo(width: int, depth: int, dev: Device, registered: bool = True) -> Resources:
    """rtl/fifo of WIDTH x DEPTH on ``dev`` (calibrated ECP5), else a memory of its size;
    ``registered``: with its write and output registers (OUTREG = INREG = 1, as stitching puts FIFOs on edges)."""
    table = (dev.coefficients.get("fitted") or {}).get("FIFO") if dev.family == "ecp5" else None
    if not table:
        return memory(width, depth, dev)
    mems, lut, ff = fifo_parts(width, depth, registered)
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
