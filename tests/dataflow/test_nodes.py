"""Every node type's formulas on a small case computed by hand; a node without an estimate raises."""

from dataclasses import dataclass, replace

import pytest

from hwsim.dataflow.nodes import DataflowNode, FoldingError, NoEstimate, make_node
from hwsim.dataflow.ecp5 import features
from hwsim.dataflow.resources import Resources, ecp5_table, estimate, load_device


def node(op_type, **attrs):
    return make_node(op_type, "n", attrs, inputs=["a", "b", "c"][: attrs.pop("_inputs", 1)], outputs=["y"])


def generic(dev):
    """The device without its fitted tables: every node priced from the generic building blocks."""
    return replace(dev, coefficients={k: v for k, v in dev.coefficients.items() if k != "fitted"})


def calibrated_lut(dev, table: str, lut_features: dict) -> float:
    """LUTs of the fitted ECP5 model: the memories' coefficients shared by all types, the rest the type's."""
    fitted = dev.coefficients["fitted"]
    own, shared = fitted[table]["lut"], fitted["shared"]["lut"]
    return sum((shared if k in shared else own).get(k, 0.0) * v for k, v in lut_features.items())


def test_mvau():
    n = node("MVAU", MW=8, MH=4, PE=2, SIMD=4, numInputVectors=[3], inputDataType="INT8", weightDataType="INT4",
             outputDataType="INT16", accDataType="INT16", resType="lut", noActivation=1)
    assert n.get_exp_cycles() == (4 // 2) * (8 // 4) * 3 == 12
    assert n.first_output_delay() == 8 // 4 + 5 + 2  # one input vector, 5 registers, log2(SIMD) adder tree
    assert n.get_latency() == 12 + 5 + 2  # the last input word, then the same pipeline
    assert (n.macs(), n.bitops(), n.weight_bits(), n.buffer_bits()) == (96, 96 * 8 * 4, 8 * 4 * 4, 0)
    dev = load_device("ecp5-85f")
    # generic building blocks by hand: base 100 LUT/100 FF; 8 LUT multipliers of 4x8 bits (256 LUT); a
    # 4-input adder tree per PE (2 x 3 adders of 4+8+2 bits: 84 LUT); 2 accumulators of 16 bits (32 LUT);
    # registers 2 x (4 x 12 + 2 x 16) = 160 FF; weights 32 bits wide x 4 deep in LUT RAM (32 LUT)
    assert estimate(n, generic(dev)) == Resources(lut=100 + 256 + 84 + 32 + 32, ff=100 + 160)
    # calibrated ECP5, rtl/mvau's structure by hand: 256 product bits, the same adder trees (84), two
    # 16-bit accumulators; 1 + 1 address bits (2 channel groups, 2 input words); LUT ROMs of the
    # weights (32 bits x 4 words) and of the bias read by 2 lanes (2 x 16 bits x 4): a LUT4 per 16
    # entries, at least one per bit and port, 64; the input buffer replayed for the second channel
    # group (32 bits x 2 words) in 8 DPR16X4 (cheaper than 64 bits of flip-flops); no multiplier
    # block (LUT products), no block RAM; the two-stage multipliers' sum of the partial products,
    # 8 x (4 + 8) bits
    assert features(n, every=True)["lut"] == {"base": 1.0, "act_base": 0.0, "mult": 256, "psum": 96, "tree": 84, "acc": 32,
                                              "act": 0, "act_fixed": 0, "sparse": 0, "ctrl": 2, "rom": 64.0, "lutram": 8.0}
    # the fit prices the features ecp5.LUT_FEATURES chose for the MVAU (no fused requant here) and the memories
    lut = features(n)["lut"]
    assert lut == {"ctrl": 2, "mult": 256, "tree": 84, "acc": 32, "rom": 64.0, "lutram": 8.0}
    got = estimate(n, dev)
    assert (got.lut, got.mult, got.bram) == (pytest.approx(calibrated_lut(dev, "MVAU", lut), abs=0.05), 0, 0)
    assert got.lut > 8 * 6  # the DPR16X4 alone: 6 TRELLIS_COMB each as nextpnr packs them
    n.set_folding(PE=1, SIMD=8)
    assert n.get_exp_cycles() == 4 * 1 * 3
    with pytest.raises(FoldingError, match="SIMD=3 must divide MW=8"):
        n.set_folding(SIMD=3)


def test_dynamic_mvau_holds_its_operand():
    n = node("MVAU", MW=4, MH=6, PE=1, SIMD=1, numInputVectors=[6, 2], inputDataType="INT8", weightDataType="INT8",
             outputDataType="INT8", accDataType="INT20", mem_mode="dynamic", heads=2, _inputs=2)
    assert n.get_exp_cycles() == 2 * 4 * 6 + 6 * 4 * 12  # the operand taken first (rtl/mvau), then the compute
    assert (n.weight_bits(), n.buffer_bits()) == (0, 4 * 6 * 2 * 8)


def test_sliding_window_and_padding():
    swg = node("ConvolutionInputGenerator_rtl", ConvKernelDim=[3, 3], IFMChannels=4, IFMDim=[6, 6], OFMDim=[4, 4],
               SIMD=2, Stride=[1, 1], Dilation=[1, 1], inputDataType="INT8")
    buffer_min = (2 * 6 + 2 + 1) * 2  # (k-1) rows and k pixels of the padded input, 2 words per pixel
    assert swg.get_exp_cycles() == buffer_min + 4 * max(4 * 9 * 2, 6 * 2) == 318
    # rtl/swg's buffer: (k + s - 1) rows plus k + s pixels of 2 words, rounded up to a power of two
    assert swg.buffer_bits() == 64 * 2 * 8 and ((3 + 1 - 1) * 6 + 3 + 1) * 2 == 44
    pad = node("FMPadding", ImgDim=[4, 4], Padding=[1, 1, 1, 1], NumChannels=4, SIMD=2, inputDataType="INT8")
    assert pad.get_exp_cycles() == 6 * 6 * 2


@pytest.mark.parametrize("op_type, attrs, cycles", [
    ("Requant", dict(NumChannels=8, numInputVectors=[2, 3], PE=4, inputDataType="INT16", outputDataType="INT8"), 12),
    ("DuplicateStreams", dict(NumChannels=8, numInputVectors=[3], PE=2, NumOutputStreams=2, inputDataType="INT8"), 12),
    ("StreamingSplit", dict(ChannelsPerStream=[4, 4], SIMD=2, numInputVectors=[3], inputDataType="INT8"), 12),
    ("StreamingConcat", dict(ChannelsPerStream=[4, 8], SIMD=4, numInputVectors=[2, 2], inputDataTypes=["INT8"] * 2), 12),
    ("UpsampleNearestNeighbour", dict(HI=2, WI=2, HO=4, WO=4, NumChannels=8, SIMD=2, inputDataType="INT8"), 64),
    ("HostInput", dict(NumChannels=1, numInputVectors=[8, 8], PE=1, outputDataType="INT8"), 64),
    ("LutActivation", dict(NumChannels=8, numInputVectors=[5], PE=2, inputDataType="INT8", outputDataType="INT8"), 20),
    ("TimestepTable", dict(EmbeddingDim=16, PE=4, NumSteps=50, EmbeddingType="INT12"), 4),
])
def test_streaming_cycles(op_type, attrs, cycles):
    assert node(op_type, **attrs).get_exp_cycles() == cycles


def test_tables_and_lookups():
    lut = node("LutActivation", NumChannels=8, numInputVectors=[5], PE=2, inputDataType="INT8", outputDataType="INT8")
    assert lut.weight_bits() == 2 * 256 * 8  # one 256-entry table per lane
    dev = load_device("ecp5-85f")
    # generic: 2,048 bits exceed the LUT-RAM threshold, one DP16KD per lane
    assert estimate(lut, generic(dev)) == Resources(lut=20, ff=20 + 2 * 8, bram=2)
    # calibrated: rtl/lut's table is one ROM read by both lanes; memory_libmap prices it at 2048 / 16 =
    # 128 in logic against 128 + 2 x 2 (one DP16KD, both ports, two emulation points): LUT ROM, no block
    # RAM, priced at the type's own coefficients (an activation table is not a random ROM): ROM bits / 16
    # and output bits x sqrt(entries), per lane
    assert features(lut, every=True)["lut"] == {"base": 1.0, "out": 16, "table": 2 * 8 * 256 / 16,
                                                "table_sqrt": 2 * 8 * 16}
    # three lanes: a two-port ROM and a one-port one
    lut3 = node("LutActivation", NumChannels=6, numInputVectors=[5], PE=3, inputDataType="INT8", outputDataType="INT8")
    assert features(lut3, every=True)["lut"]["table"] == 3 * 8 * 256 / 16
    f = features(lut)["lut"]
    assert f == {"table": 2 * 8 * 256 / 16, "table_sqrt": 2 * 8 * 16}  # the features ecp5.LUT_FEATURES keeps
    got = estimate(lut, dev)
    assert (got.lut, got.bram) == (pytest.approx(calibrated_lut(dev, "LutActivation", f), abs=0.05), 0)
    table = node("TimestepTable", EmbeddingDim=16, PE=4, NumSteps=50, EmbeddingType="INT12")
    assert table.weight_bits() == 50 * 16 * 12  # one row per sampler step


def test_groupnorm_two_passes_and_whole_map():
    attrs = dict(NumChannels=4, groups=2, numInputVectors=[2, 2], PE=1, ft=12, inputDataType="INT8",
                 outputDataType="INT8", gammaBits=16, betaBits=26)
    gn = node("GroupNorm", **attrs)
    solve = 2 * (7 + 63 + 32 + 1) + 4  # per group: set-up, division, square root, store; 4 phase cycles
    assert gn.get_exp_cycles() == 16 + solve + 16  # single buffer: take the map, solve, emit it
    assert gn.first_output_delay() == 16 + solve + 7  # EMIT: seven pipeline stages after the buffer read
    assert (gn.buffer_bits(), gn.weight_bits()) == (16 * 8, 4 * (16 + 26))
    double = node("GroupNorm", **attrs, doubleBuffer=1)
    assert (double.get_exp_cycles(), double.buffer_bits()) == (solve, 2 * 16 * 8)


def test_groupnorm_statistics_ports():
    """rtl/groupnorm's statistics register file: lanes of one group, or of a power-of-two count of whole
    groups, share a port; other lanes each have one, reaching every group (ecp5._groupnorm_stats)."""
    from hwsim.dataflow.ecp5 import groupnorm_ports

    def gn(c, g, pe):
        return node("GroupNorm", NumChannels=c, groups=g, numInputVectors=[4, 4], PE=pe, ft=12, inputDataType="INT8",
                    outputDataType="INT8", gammaBits=16, betaBits=26)

    # (C, G, PE): ports. A word in one group (C/G a multiple of PE); in 2 or 4 whole groups; in 3
    # whole groups (not a power of two) or straddling groups (C/G = 3, PE = 2 or 4): a port a lane (0)
    cases = {(64, 8, 4): 1, (8, 2, 1): 1, (8, 4, 4): 2, (16, 8, 8): 4, (12, 6, 6): 0, (12, 4, 2): 0, (12, 4, 4): 0}
    assert {k: groupnorm_ports(gn(*k), k[2]) for k in cases} == cases
    # N = 16 pixels x C/G channels: S has 8 + 5 + 1 bits, Q 16 + 5 + 1, k is 0 (D < 2^32, KB = 1): the
    # solver's read over G groups, and a port's read-modify-write and EMIT read over the G/ports it reaches
    f = features(gn(16, 8, 8), every=True)["lut"]  # N = 32: LOGN 6, SB 15, QB 23
    assert f["stat_mux"] == 4 * (15 + 23 + 15 + 32 + 1) * (2 - 1) + (15 + 23) * (8 - 1)
    assert f["stat_add"] == 4 * (15 + 23 + (2 - 1) * 3 * 8)
    apart = features(gn(12, 4, 2), every=True)["lut"]  # N = 48: LOGN 6, SB 15, QB 23; two lanes, each every group
    assert apart["stat_mux"] == 2 * (15 + 23 + 15 + 32 + 1) * (4 - 1) + (15 + 23) * (4 - 1)


def test_row_nodes():
    sm = node("IntSoftmax", NumChannels=4, numInputVectors=[3], PE=1, inputDataType="INT8", outputDataType="INT8",
              tableEntries=32, tableBits=16)
    # rtl/softmax: load and sum passes (2 x 4 words), out bits + 4 stages; an unsigned 15-bit table;
    # 2 + ceil(3/4) = 3 row slots of 8-bit scores
    assert (sm.get_exp_cycles(), sm.first_output_delay(), sm.weight_bits(), sm.buffer_bits()) == (12, 8 + 8 + 4, 480, 96)
    ln = node("AdaLayerNorm", NumChannels=8, numInputVectors=[4], PE=2, ft=12, inputDataType="INT8",
              outputDataType="INT8", scaleBits=16, shiftBits=16, _inputs=3)
    # rtl/adaln: 4 words a token, but the rsqrt solve needs ceil(95/16) + 2 = 8 cycles even at the
    # largest unroll the model picks (16), so a token costs 8; first output after load, solve, 3 stages
    assert ln.unroll() == 16 and (ln.get_exp_cycles(), ln.first_output_delay()) == (4 * 8, 4 + 8 + 3)
    assert ln.buffer_bits() == 2 * 4 * 2 * 8 + 2 * 8 * 32  # two tokens of words, two banks of rows
    assert node("AdaLayerNorm", NumChannels=64, numInputVectors=[4], PE=1, ft=12, inputDataType="INT8",
                outputDataType="INT8", scaleBits=16, shiftBits=16, _inputs=3).unroll() == 2  # 50 <= 64 words
    reorder = node("StreamReorder", NumChannels=1, numInputVectors=[4, 4], PE=1, bufferDepth=6,
                   inputDataType="INT8", outputDataType="INT8")
    assert (reorder.get_exp_cycles(), reorder.get_latency(), reorder.buffer_bits()) == (16, 6 + 2 + 16 - 1, 48)


def test_elementwise_broadcast_and_constant():
    add = node("ElementwiseAdd", PE=4, lhs_shape=[1, 4, 4, 8], rhs_shape=[1, 1, 1, 8], out_shape=[1, 4, 4, 8],
               lhs_dtype="INT16", rhs_dtype="INT12", out_dtype="INT17", _inputs=2)
    assert (add.get_exp_cycles(), add.buffer_bits(), add.weight_bits()) == (32, 8 * 12, 0)
    const = node("ElementwiseAdd", PE=4, lhs_shape=[1, 4, 8], rhs_shape=[1, 4, 8], out_shape=[1, 4, 8],
                 lhs_dtype="INT8", rhs_dtype="INT8", out_dtype="INT9", rhs_style="const")
    assert (const.buffer_bits(), const.weight_bits()) == (0, 32 * 8)
    with pytest.raises(FoldingError):
        node("StreamingConcat", ChannelsPerStream=[4, 8], SIMD=8, numInputVectors=[1], inputDataTypes=["INT8"] * 2)


@dataclass
class Mystery(DataflowNode):
    op_type = "Mystery"


def test_a_node_without_an_estimate_raises():
    n = Mystery("m", {})
    for call in (n.get_exp_cycles, n.op_counts, lambda: estimate(n, load_device("ecp5-85f"))):
        with pytest.raises(NoEstimate, match="Mystery"):
            call()
    with pytest.raises(NoEstimate, match="no dataflow node type 'Mystery'"):
        make_node("Mystery", "m", {})


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'ice9'"):
        load_device("ice9")


def test_requant_logic_follows_its_shifts():
    """One shift for the whole tensor (per-tensor scales) is a fixed rounding position with its own
    coefficient table (rtl's SHIFT_CONST); a table of shifts a choice among constant-shift requantizers,
    on a Requant and an MVAU alike."""
    attrs = dict(NumChannels=16, PE=2, numInputVectors=[4], inputDataType="INT20", outputDataType="INT8")
    assert ecp5_table(node("Requant", **attrs, shifts=[3])) == "Requant (const)"
    assert ecp5_table(node("Requant", **attrs, shifts=[3] * 16)) == "Requant (const)"
    assert ecp5_table(node("Requant", **attrs, shifts=[3, 4] * 8)) == "Requant"
    assert ecp5_table(node("Requant", **attrs)) == "Requant"  # no shifts known: a table
    # timestep groups: one group's shifts say nothing of the others'; per-group shifts do
    assert ecp5_table(node("Requant", **attrs, shifts=[3], timestepGroups=4)) == "Requant"
    assert ecp5_table(node("Requant", **attrs, shifts=[[3]] * 4, timestepGroups=4)) == "Requant (const)"
    assert ecp5_table(node("Requant", **attrs, shifts=[[3], [4], [3], [3]], timestepGroups=4)) == "Requant"
    mvau = dict(MW=16, MH=8, PE=2, SIMD=1, numInputVectors=[4], inputDataType="INT8", weightDataType="INT8",
                accDataType="INT20", outputDataType="INT8", noActivation=0)
    fixed = features(node("MVAU", **mvau, shifts=[5]), every=True)["lut"]
    table = features(node("MVAU", **mvau), every=True)["lut"]
    assert (fixed["act_fixed"], table["act_fixed"]) == (2 * 20, 0)
    # ecp5.requant_lut's parts: an output select per requantizer; one shift: saturation over the 15-bit
    # floor, rounding above bit 5, sticky bits below it; no shifts known: each lane's four shifts -1..2,
    # a constant-shift requantizer each (floors of 20, 20, 19, 18 bits) and a choice among them
    assert (fixed["actc_out"], table["act_out"]) == (2 * 8, 2 * 4 * 8)
    assert (fixed["actc_sat"], fixed["actc_round"], fixed["actc_sticky"]) == (2 * 15, 2 * 15, 2 * 4)
    assert (table["act_sat"], table["act_select"]) == (2 * (20 + 20 + 19 + 18), 2 * 8 * 3)
    # the requantizers are rtl/requant's requantize: priced at Requant (const)'s coefficients, the
    # one-shift block, not the MVAU's; a table's choice among them at a fixed price (ecp5.FIXED)
    dev = load_device("ecp5-85f")
    coef = dev.coefficients["fitted"]["Requant (const)"]["lut"]
    for n, parts, prefix in ((node("MVAU", **mvau), table, "act_"), (node("MVAU", **mvau, shifts=[5]), fixed, "actc_")):
        lent = sum(c * parts.get(prefix + k, 0.0) for k, c in coef.items())
        own = features(n)["lut"]
        assert lent > 0 and not any(k.startswith(prefix) and k != "act_select" for k in own)
        assert estimate(n, dev).lut == pytest.approx(calibrated_lut(dev, "MVAU", own) + lent, abs=0.1)
    assert features(node("MVAU", **mvau))["lut"]["act_select"] == 2 * 8 * 3


def test_requant_stores_a_shift_table_per_timestep_group():
    one = node("Requant", NumChannels=16, PE=2, numInputVectors=[4], inputDataType="INT20", outputDataType="INT8")
    four = node("Requant", NumChannels=16, PE=2, numInputVectors=[4], inputDataType="INT20", outputDataType="INT8",
                timestepGroups=4)
    assert (one.weight_bits(), four.weight_bits()) == (16 * 8, 4 * 16 * 8)
    assert one.get_exp_cycles() == four.get_exp_cycles()  # the table is chosen per evaluation: no cycles
