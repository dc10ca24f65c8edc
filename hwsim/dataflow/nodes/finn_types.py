"""Node types FINN also has, with FINN's names, attributes and cycle formulas (finn-plus 1.6.1).

Each ``get_exp_cycles`` is FINN's formula for the same attributes (checked against finn-plus in
tests/dataflow/test_finn_equality.py); hwsim adds what FINN leaves out: operation counts for the
energy models, stored bits, and an estimate for every node (FINN's base class returns 0).
Source of each formula: the same-named class in ``finn.custom_op.fpgadataflow``.
"""

from __future__ import annotations

import math

from hwsim.dataflow.nodes.base import FINN_DOMAIN, DataflowNode, FoldingError, NoEstimate, Op, bits, divisors


def acc_bits(node: DataflowNode) -> int:
    return node.dt("accDataType")


def group_attrs(group: int, q_bits: int, shift_bits: int) -> dict[str, int]:
    """An MVAU's group-shifted weights (hwsim's attributes; rtl/mvau's WGROUP): every weight is a
    ``q_bits``-bit integer shifted left by its group's ``shift_bits``-bit shift, one per ``group``
    consecutive inputs of a row."""
    return {"weightGroupSize": group, "groupWeightBits": q_bits, "groupShiftBits": shift_bits}


class MVAU(DataflowNode):
    """Matrix-vector unit: MH x MW weights (or a dynamic MH x MW operand for attention),
    PE output rows and SIMD input columns per cycle; requantization fused when ``noActivation=0``
    (by power-of-two shift: round half to even and saturate, docs/numerics.md)."""

    op_type = "MVAU"
    domain = FINN_DOMAIN
    FOLD = {"PE": "MH", "SIMD": "MW"}
    PIPELINE_DEPTH = 5  # rtl/mvau: operand read, operand register, half products, products, accumulator; the
    # requantizer is the output register

    def dynamic(self) -> bool:
        return self.attrs.get("mem_mode") == "dynamic"

    def in_lanes(self, index: int = 0) -> int:  # the vector and a dynamic operand: SIMD per word
        return int(self.attrs["SIMD"])

    def out_lanes(self) -> int:
        return int(self.attrs["PE"])

    def fold_limit(self, attr: str) -> int:
        """A convolution's SIMD must also divide the channels its sliding window streams; a sparse
        one's must divide both the input length and the stored (compressed) row length; a dynamic
        one's the operand stream's innermost loop."""
        if attr != "SIMD":
            return super().fold_limit(attr)
        limit = int(self.attrs.get("SIMDLimit", self.attrs["MW"]))
        if self.dynamic() and "operandOrder" in self.attrs:  # rtl/mvau takes SIMD operand elements a beat
            a, order = self.attrs, self.attrs["operandOrder"]
            shape = (1, a.get("heads", 1), a["MW"], a["MH"]) if len(order) == 4 else (1, a["MW"], a["MH"])
            limit = math.gcd(limit, shape[order[-1]])  # along the operand stream's innermost loop
        return math.gcd(limit, self.stored_row()) if self.sparse() else limit

    def fold_options(self) -> dict[str, list[int]]:
        """Group-shifted weights: SIMD divides the group or is a multiple of it (rtl/mvau WGROUP)."""
        options = super().fold_options()
        if self.group_shift():
            g = self.group_shift()[0]
            options["SIMD"] = [d for d in options["SIMD"] if g % d == 0 or d % g == 0]
        return options

    def check_folding(self) -> None:
        super().check_folding()
        if self.group_shift():
            g, simd = self.group_shift()[0], int(self.attrs["SIMD"])
            if g % simd and simd % g:
                raise FoldingError(f"{self.name} (MVAU): SIMD={simd} must divide its weight group of {g} inputs or be a multiple of it")

    def group_shift(self) -> tuple[int, int, int] | None:
        """(inputs per group, q bits, shift bits) of group-shifted weights (:func:`group_attrs`), else None."""
        a = self.attrs
        if not a.get("weightGroupSize"):
            return None
        return int(a["weightGroupSize"]), int(a["groupWeightBits"]), int(a["groupShiftBits"])

    def weight_width(self) -> int:
        """Bits of one stored weight and of the multipliers' weight operand: the group's q when the
        weights are group-shifted, else the weight type's."""
        return self.group_shift()[1] if self.group_shift() else self.dt("weightDataType")

    def group_shift_memory(self) -> tuple[int, int]:
        """(word bits, words) of rtl/mvau's group shifts: PE x max(1, SIMD/group) shifts a word, one word
        per weight word or per group of words."""
        a = self.attrs
        g, _, sb = self.group_shift()
        return a["PE"] * max(1, a["SIMD"] // g) * sb, a["MW"] * a["MH"] // (a["PE"] * max(a["SIMD"], g))

    def group_shift_bits(self) -> int:
        """Bits of the group shifts' memory (MH x MW / group shifts)."""
        if not self.group_shift():
            return 0
        g, _, sb = self.group_shift()
        return self.attrs["MH"] * self.attrs["MW"] // g * sb

    def weight_bank_words(self) -> int:
        """rtl/mvau's WBANK: static dense weights in block RAM deeper than one address chunk are
        banked at the chunk's depth (one cycle more; ``weightBankWords`` overrides, 0 for none)."""
        a = self.attrs
        if self.dynamic() or self.sparse() or self.external():
            return 0
        if "weightBankWords" in a:
            bank = int(a["weightBankWords"])
        else:
            from hwsim.dataflow.ecp5 import bank_words  # the block RAM geometry synth_ecp5 maps to

            bank = bank_words(a["PE"] * a["SIMD"] * self.dt("weightDataType"), self.weight_words())
        return bank if bank and self.weight_words() > bank else 0

    def weight_words(self) -> int:
        """Words of the weight memory: MH/PE x (stored row)/SIMD."""
        a = self.attrs
        return a["MH"] // a["PE"] * (self.stored_row() // a["SIMD"])

    def sparse(self) -> bool:
        """N:M sparse weights (``sparsityN``/``sparsityM``, hwsim's attributes; rtl/mvau with M > 1)."""
        return self.attrs.get("sparsityM", 1) > 1

    def stored_row(self) -> int:
        """Weights stored (and multiplied) per output channel: MW, or MW*N/M when sparse."""
        a = self.attrs
        return a["MW"] * a.get("sparsityN", 1) // a.get("sparsityM", 1)

    def break_even_density(self) -> dict[str, float]:
        """The N/M below which sparse weights pay on rtl/mvau: in storage, (W + log2 M) bits per
        stored weight against W per weight; in cycles, MW/SIMD + 1 (taking the vector first) +
        MH/PE * N/M * MW/SIMD against MH/PE * MW/SIMD. Index width taken at this node's M."""
        a = self.attrs
        w, m = self.weight_width(), a.get("sparsityM", 4)
        nf, sfi = a["MH"] // a["PE"], a["MW"] // a["SIMD"]
        return {"storage": w / (w + max(1, (m - 1).bit_length())), "cycles": 1 - (sfi + 1) / (nf * sfi)}

    def index_bits(self) -> int:
        return max(1, (self.attrs.get("sparsityM", 1) - 1).bit_length()) if self.sparse() else 0

    def get_exp_cycles(self) -> int:
        a = self.attrs
        if self.sparse():  # rtl/mvau, M > 1: take the vector (MW/SIMD), then MH/PE groups of stored words, 1 turn-around
            return int(self.n_vectors() * (a["MW"] // a["SIMD"] + (a["MH"] // a["PE"]) * (self.stored_row() // a["SIMD"]) + 1))
        compute = int((a["MH"] / a["PE"]) * (a["MW"] / a["SIMD"]) * self.n_vectors())  # MVAU.get_exp_cycles, TH = 1
        return compute + self.operand_cycles()

    def operand_cycles(self) -> int:
        """rtl/mvau takes a dynamic operand whole (SIMD elements per beat) before computing, and the
        next one only after its last vector: not overlapped with the compute (single buffer)."""
        a = self.attrs
        return a["MW"] * a["MH"] * a.get("heads", 1) // a["SIMD"] if self.dynamic() else 0

    def get_latency(self) -> int:
        """From the first input element (a dynamic operand's first, which comes first) to the last output."""
        return self.operand_cycles() + super().get_latency()

    def first_output_delay(self) -> int:
        """One whole input vector, then the operand, product and accumulator registers (and the
        banked weights' second register) and a log2(SIMD)-deep adder tree (a dynamic operand must be complete first: the schedule waits for it).
        Measured on rtl/mvau (experiments/results/rtl/cycles.json)."""
        a = self.attrs
        tree = self.PIPELINE_DEPTH + math.ceil(math.log2(a["SIMD"])) + (1 if self.weight_bank_words() else 0)
        if self.sparse():  # the whole vector, then the first channel group's stored words
            return a["MW"] // a["SIMD"] + self.stored_row() // a["SIMD"] + tree
        return a["MW"] // a["SIMD"] + tree

    def output_cycles(self) -> int:
        """The first output needs one input vector (MW/SIMD cycles) of the II; the rest follow."""
        a = self.attrs
        if self.sparse():  # minus the first vector's load and first group; its turn-around comes last
            return self.get_exp_cycles() - a["MW"] // a["SIMD"] - self.stored_row() // a["SIMD"] - 1
        return self.get_exp_cycles() - self.operand_cycles() - a["MW"] // a["SIMD"]

    def macs(self) -> int:
        """Multiply-accumulates performed: every stored weight once per vector (zeros of a dense
        row included, the pruned ones of a sparse row not)."""
        return self.stored_row() * self.attrs["MH"] * self.n_vectors()

    def mac_widths(self) -> tuple[int, int]:
        return self.dt("inputDataType"), self.weight_width()

    def external(self) -> bool:
        """Weights streamed from DRAM as they are used (FINN's ``external`` mem_mode)."""
        return self.attrs.get("mem_mode") == "external"

    def weight_bits(self) -> int:
        if self.dynamic() or self.external():
            return 0
        a = self.attrs
        return (self.stored_row() * a["MH"] * (self.weight_width() + self.index_bits()) + self.group_shift_bits()
                + self.groups() * a.get("biasBits", 0) * a["MH"])  # the bias is at the input's scale

    def buffer_bits(self) -> int:
        """A dynamic operand is held whole (one MW x MH matrix per head) while it is used."""
        a = self.attrs
        return a["MW"] * a["MH"] * a.get("heads", 1) * self.dt("weightDataType") if self.dynamic() else 0

    def op_counts(self) -> list[Op]:
        a, w, x, acc = self.attrs, self.weight_width(), self.dt("inputDataType"), acc_bits(self)
        words = self.get_exp_cycles()  # one weight word of PE*SIMD weights per cycle
        mem = self.buffer_bits() or self.weight_bits()
        outputs = a["MH"] * self.n_vectors()
        word = a["PE"] * a["SIMD"] * (w + self.index_bits())
        ops = [Op("mult", self.macs(), x, w), Op("add", self.macs(), acc),
               Op("io", words, word) if self.external() else Op("mem_read", words, word, mem)]
        if self.group_shift():  # a left shift of each group's sum (priced as an add of the accumulator's width)
            g = self.group_shift()[0]
            ops += [Op("add", self.macs() // min(g, a["SIMD"]), acc),
                    Op("mem_read", words * a["SIMD"] // max(g, a["SIMD"]), self.group_shift_memory()[0], self.group_shift_bits())]
        if self.dynamic():  # the operand is written once per head
            ops.append(Op("mem_write", a["MW"] * a["MH"] * a.get("heads", 1) // a["SIMD"], a["SIMD"] * w, mem))
        if a.get("biasBits"):
            ops.append(Op("add", outputs, acc))
        if not a.get("noActivation", 1):
            ops.append(Op("add", outputs, acc))  # round-half-even shift and saturate
        return ops


class ConvolutionInputGenerator(DataflowNode):
    """Sliding-window generator (FINN's RTL SWG, default implementation style, 2D, not depthwise):
    a line buffer that turns a channels-last image stream into the MVAU's k x k x C windows."""

    op_type = "ConvolutionInputGenerator_rtl"
    domain = FINN_DOMAIN + ".rtl"
    FOLD = {"SIMD": "IFMChannels"}

    def _geometry(self):
        a = self.attrs
        (kh, kw), (ih, iw), (oh, ow) = a["ConvKernelDim"], a["IFMDim"], a["OFMDim"]
        (sh, sw), (dh, dw) = a["Stride"], a.get("Dilation", [1, 1])
        return kh, kw, ih, iw, oh, ow, sh, sw, dh, dw, a["IFMChannels"] // a["SIMD"]

    PIPELINE_DEPTH = 1  # rtl/swg: the buffer read is the output register

    def buffer_min(self) -> int:  # FINN's buffer_min_size: the first window's last word
        kh, kw, ih, iw, oh, ow, sh, sw, dh, dw, cf = self._geometry()
        return ((kh - 1) * dh * iw + (kw - 1) * dw + 1) * cf

    def buffer_depth(self) -> int:
        """rtl/swg's circular buffer: the rows the windows of one output row and the next need,
        rounded up to a power of two (FINN's RTL SWG sizes it without the rounding)."""
        kh, kw, ih, iw, oh, ow, sh, sw, dh, dw, cf = self._geometry()
        return 1 << math.ceil(math.log2(((kh + sh - 1) * iw + kw + sw) * cf))

    def get_exp_cycles(self) -> int:  # ConvolutionInputGenerator_rtl.get_exp_cycles, 2D default
        kh, kw, ih, iw, oh, ow, sh, sw, dh, dw, cf = self._geometry()
        if kh == 1 and kw == 1 or ih == 1 or iw == 1:
            raise NoEstimate(f"{self.name}: only 2D windows larger than 1x1 are modelled (FINN's default style)")
        if sh != sw:  # FINN's formula reads stride_w rows per output row; rtl/swg reads stride_h
            raise NoEstimate(f"{self.name}: stride {sh}x{sw}: only square strides are modelled (measured on rtl/swg)")
        return int(self.buffer_min() + oh * max(ow * kw * kh * cf, sw * iw * cf))

    def first_output_delay(self) -> int:  # a frame starts once buffer_min words are in
        return self.buffer_min() + self.PIPELINE_DEPTH

    def output_cycles(self) -> int:
        return self.get_exp_cycles() - self.first_output_delay()

    def buffer_bits(self) -> int:
        return self.buffer_depth() * self.attrs["SIMD"] * self.dt("inputDataType")

    def op_counts(self) -> list[Op]:
        kh, kw, ih, iw, oh, ow, *_, cf = self._geometry()
        width, mem = self.attrs["SIMD"] * self.dt("inputDataType"), self.buffer_bits()
        return [Op("mem_write", ih * iw * cf, width, mem), Op("mem_read", oh * ow * kh * kw * cf, width, mem)]


class FMPadding(DataflowNode):
    """Zero padding around a channels-last image (no arithmetic: a multiplexer)."""

    op_type = "FMPadding"
    domain = FINN_DOMAIN
    FOLD = {"SIMD": "NumChannels"}
    PIPELINE_DEPTH = 1  # rtl/fmpad: one register stage

    def get_latency(self) -> int:
        """First input to last output: the words before the first input's position are padding."""
        w, p = self.attrs["ImgDim"][1], self.attrs["Padding"]
        before = (p[0] * (w + p[1] + p[3]) + p[1]) * self.attrs["NumChannels"] // self.attrs["SIMD"]
        return self.get_exp_cycles() - before

    def padded(self) -> tuple[int, int]:
        (h, w), p = self.attrs["ImgDim"], self.attrs["Padding"]
        return h + p[0] + p[2], w + p[1] + p[3]

    def get_exp_cycles(self) -> int:  # FMPadding.get_exp_cycles
        oh, ow = self.padded()
        return int(self.attrs["NumChannels"] / self.attrs["SIMD"] * self.attrs.get("numInputVectors", 1) * oh * ow)

    def op_counts(self) -> list[Op]:
        return []


class _PerElement(DataflowNode):
    """Nodes whose II is the folded output length: prod(numInputVectors) x channels / PE."""

    CHANNELS = "NumChannels"
    FOLD = {"PE": "NumChannels"}

    def channels(self) -> int:
        return int(self.attrs[self.CHANNELS])

    def elements(self) -> int:
        return self.n_vectors() * self.channels()

    def get_exp_cycles(self) -> int:
        fold = next(iter(self.FOLD))
        return int(self.elements() // self.attrs[fold])


class Requant(_PerElement):
    """A stand-alone requantization (shift, round half to even, saturate) between two streams."""

    op_type = "Requant"
    domain = FINN_DOMAIN
    PIPELINE_DEPTH = 1  # rtl/requant: one register stage
    SHIFT_BITS = 8

    def weight_bits(self) -> int:
        """rtl/requant's shift table: one per channel, and one table per timestep group (``timestepGroups``)."""
        return self.groups() * self.attrs["NumChannels"] * self.SHIFT_BITS

    def op_counts(self) -> list[Op]:
        return [Op("add", self.elements(), self.dt("inputDataType"))]


class Thresholding(_PerElement):
    """Requantization by thresholds (FINN's Thresholding): ``numSteps`` sorted thresholds per row
    (one row, or one per channel), output ``ActVal`` + the count of thresholds the value reaches;
    with ``timestepGroups`` a table per timestep group. rtl/thresholding searches the sorted row,
    one pipeline stage per output bit."""

    op_type = "Thresholding"
    domain = FINN_DOMAIN

    def stages(self) -> int:
        return max(1, int(self.attrs["numSteps"]).bit_length())

    def first_output_delay(self) -> int:
        return self.stages()

    def threshold_bits(self) -> int:
        unsigned = self.attrs["inputDataType"].startswith("UINT")  # signed, holds [in_min, in_max + 1]
        return self.dt("inputDataType") + (2 if unsigned else 1)  # as memfiles.threshold_table

    def weight_bits(self) -> int:
        rows = self.attrs.get("thresholdRows", self.channels())
        return self.groups() * rows * ((1 << self.stages()) - 1) * self.threshold_bits()

    def op_counts(self) -> list[Op]:
        return [Op("add", self.elements() * self.stages(), self.threshold_bits()),
                Op("mem_read", self.elements() * self.stages(), self.threshold_bits(), self.weight_bits())]


class DuplicateStreams(_PerElement):
    """A fork: one stream copied to ``NumOutputStreams`` consumers."""

    op_type = "DuplicateStreams"
    domain = FINN_DOMAIN
    PIPELINE_DEPTH = 1  # rtl/duplicate: one register per output

    def op_counts(self) -> list[Op]:
        return []


class _Elementwise(_PerElement):
    """FINN's ElementwiseBinaryOperation: channels-last shapes, PE along the last axis. A right-hand
    side that broadcasts over the pixels (the per-timestep bias or gate) is held in a row buffer."""

    domain = FINN_DOMAIN
    FOLD = {"PE": "channels"}
    PIPELINE_DEPTH = 1  # rtl/elementwise: one register stage

    def fold_limit(self, attr: str) -> int:
        return self.channels()

    def channels(self) -> int:
        return int(self.attrs["out_shape"][-1])

    def elements(self) -> int:
        return int(math.prod(self.attrs["out_shape"]))

    def n_vectors(self) -> int:
        return int(math.prod(self.attrs["out_shape"][:-1]))

    def rhs_const(self) -> bool:
        return self.attrs.get("rhs_style", "input") == "const"

    def rhs_stored(self) -> bool:
        """A constant right-hand side, or a streamed one that broadcasts, is held in memory."""
        return self.rhs_const() or math.prod(self.attrs["rhs_shape"]) < self.elements()

    def _rhs_bits(self) -> int:
        return int(math.prod(self.attrs["rhs_shape"])) * bits(self.attrs["rhs_dtype"]) if self.rhs_stored() else 0

    def weight_bits(self) -> int:
        return self.groups() * self._rhs_bits() if self.rhs_const() else 0

    def buffer_bits(self) -> int:
        return 0 if self.rhs_const() else self._rhs_bits()

    def get_latency(self) -> int:
        """A streamed row that broadcasts (rtl/elementwise/broadcast.v) loads before the first output;
        in a pipeline the schedule waits for it instead (it is a stored input)."""
        row = self.channels() // self.attrs["PE"] if self.rhs_stored() and not self.rhs_const() else 0
        return row + super().get_latency()

    def _reads(self) -> list[Op]:
        if not self.rhs_stored():
            return []
        word = self.attrs["PE"] * bits(self.attrs["rhs_dtype"])
        return [Op("mem_read", self.get_exp_cycles(), word, self._rhs_bits())]


class ElementwiseAdd(_Elementwise):
    op_type = "ElementwiseAdd"

    def op_counts(self) -> list[Op]:
        return [Op("add", self.elements(), bits(self.attrs["out_dtype"]))] + self._reads()


class ElementwiseMul(_Elementwise):
    op_type = "ElementwiseMul"

    def op_counts(self) -> list[Op]:
        a = self.attrs
        return [Op("mult", self.elements(), bits(a["lhs_dtype"]), bits(a["rhs_dtype"]))] + self._reads()


class UpsampleNearestNeighbour(DataflowNode):
    """Nearest-neighbour upsampling; one input row is buffered and emitted ``HO / HI`` times."""

    op_type = "UpsampleNearestNeighbour"
    domain = FINN_DOMAIN
    FOLD = {"SIMD": "NumChannels"}
    PIPELINE_DEPTH = 1  # rtl/upsample: one register stage

    def get_exp_cycles(self) -> int:  # folded output shape without the SIMD axis
        a = self.attrs
        return int(a.get("batchSize", 1) * a["HO"] * a["WO"] * a["NumChannels"] // a["SIMD"])

    def buffer_bits(self) -> int:
        a = self.attrs
        return a["WI"] * a["NumChannels"] * self.dt("inputDataType")

    def op_counts(self) -> list[Op]:
        a = self.attrs
        width = a["SIMD"] * self.dt("inputDataType")
        return [Op("mem_write", a["HI"] * a["WI"] * a["NumChannels"] // a["SIMD"], width, self.buffer_bits()),
                Op("mem_read", self.get_exp_cycles(), width, self.buffer_bits())]


class _MultiStream(DataflowNode):
    """Concat and split along channels: SIMD must divide every stream's channel count."""

    domain = FINN_DOMAIN
    FOLD = {"SIMD": "ChannelsPerStream"}
    PIPELINE_DEPTH = 1  # rtl/concat: one register stage (per output for the split)

    def fold_limit(self, attr: str) -> int:
        return math.gcd(*self.attrs["ChannelsPerStream"])

    def fold_options(self) -> dict[str, list[int]]:
        return {"SIMD": divisors(self.fold_limit("SIMD"))}

    def get_exp_cycles(self) -> int:
        return int(self.n_vectors() * sum(self.attrs["ChannelsPerStream"]) // self.attrs["SIMD"])

    def op_counts(self) -> list[Op]:
        return []


class StreamingConcat(_MultiStream):
    op_type = "StreamingConcat"


class StreamingSplit(_MultiStream):
    op_type = "StreamingSplit"


class StreamingDataWidthConverter(DataflowNode):
    """Between two nodes folded differently (FINN's StreamingDataWidthConverter): ``inWidth`` and
    ``outWidth`` bits per word of ``dataType`` elements, ``numElements`` per evaluation. rtl/dwc is a
    gearbox over IN + OUT - gcd(IN, OUT) elements; its formulas are measured (tests/rtl/test_dwc.py)."""

    op_type = "StreamingDataWidthConverter"
    domain = FINN_DOMAIN
    PIPELINE_DEPTH = 1

    def lanes(self) -> tuple[int, int]:
        b = self.dt("dataType")
        return self.attrs["inWidth"] // b, self.attrs["outWidth"] // b

    def in_lanes(self, index: int = 0) -> int:
        return self.lanes()[0]

    def out_lanes(self) -> int:
        return self.lanes()[1]

    def get_exp_cycles(self) -> int:  # the slower side moves a word every cycle
        return self.attrs["numElements"] // min(self.lanes())

    def first_output_delay(self) -> int:  # the input words that fill the first output word
        i, o = self.lanes()
        return -(-o // i)

    def output_cycles(self) -> int:
        return self.get_exp_cycles() - self.first_output_delay()

    def buffer_bits(self) -> int:
        i, o = self.lanes()
        return (i + o - math.gcd(i, o)) * self.dt("dataType")

    def op_counts(self) -> list[Op]:
        i, o = self.lanes()
        words = self.attrs["numElements"] // i
        return [Op("mem_write", words, self.attrs["inWidth"], self.buffer_bits()),
                Op("mem_read", self.attrs["numElements"] // o, self.attrs["outWidth"], self.buffer_bits())]


FINN_NODE_TYPES = [MVAU, ConvolutionInputGenerator, FMPadding, Requant, Thresholding, DuplicateStreams, ElementwiseAdd,
                   ElementwiseMul, UpsampleNearestNeighbour, StreamingConcat, StreamingSplit,
                   StreamingDataWidthConverter]
