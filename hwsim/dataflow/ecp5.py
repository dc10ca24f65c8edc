"""The ECP5 structure of every rtl/ block as Yosys synth_ecp5 and nextpnr see it: the MULT18X18D of
each multiply (:func:`mult18`), where each memory goes by memory_libmap's own costs
(:func:`ecp5_memory`), and each node type's structural LUT/FF features (:func:`ecp5_parts`). The
calibration (experiments/resource_calibration.py) fits coefficients to these features and
:mod:`hwsim.dataflow.resources` prices nodes with them: the rules read off the RTL live here, the
pricing there."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.dataflow.nodes.base import DataflowNode, NoEstimate, bits


def stream_word(node: DataflowNode) -> tuple[int, int]:
    """(lanes, bits per lane) of the node's main stream."""
    lanes = node.attrs.get("PE", node.attrs.get("SIMD", 1))
    for attr in ("inputDataType", "lhs_dtype", "EmbeddingType", "outputDataType"):
        if attr in node.attrs:
            return lanes, node.dt(attr)
    if "inputDataTypes" in node.attrs:
        return lanes, max(bits(d) for d in node.attrs["inputDataTypes"])
    raise NoEstimate(f"{node.name} ({node.op_type}): no stream datatype")


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
        # a point per read port (its data register); a read that sees the word being written needs
        # that transparency emulated too, three points per write port (Yosys' `debug memory_libmap`)
        emu = m.reads * (1 + (3 * m.writes if m.sync and m.new_data else 0))
        c, n, a = _geometry(m, 4, 4, (4,), 0, m.reads, range(1), emu)
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


def bank_words(width: int, depth: int, writes: int = 0) -> int:
    """rtl/mvau's WBANK (a ROM) and rtl/groupnorm's BBANK (``writes`` = 1, a RAM) for a memory of
    ``width`` x ``depth`` that synth_ecp5 would cascade over several block-RAM address chunks (0 if
    it would not): the power of two, each bank mapped without a
    cascade, with the fewest block RAMs in all (then the fewest banks). Yosys packs address chunks
    side by side in a wider block RAM (9216 x 8 in four 18-bit ones), so banks can cost a block
    RAM or two more than the cascade: the price of a multiplexer that starts at flip-flops."""
    kind, _, chunks = ecp5_memory(Memory(width, depth, 1, writes))
    if kind != "bram" or chunks <= 1:
        return 0
    best = None
    bank = 1 << max(0, math.ceil(math.log2(-(-depth // chunks))))
    while bank < depth:
        kind, blocks, per_bank = ecp5_memory(Memory(width, bank, 1, writes))
        if kind == "bram" and per_bank == 1:
            total = -(-depth // bank) * blocks
            if best is None or total <= best[0]:
                best = (total, bank)
        bank *= 2
    return best[1] if best else 0


def _banks(width: int, words: int, bank: int, writes: int = 0) -> tuple[list[Memory], float, float]:
    """A memory of ``width`` x ``words``, or its banks of ``bank`` words (rtl/mvau WBANK, rtl/groupnorm
    BBANK): the memories, the bits of the banks' multiplexer (from flip-flops, LUTs priced as
    ``bram_mux``) and of their second registers (flip-flops)."""
    if not bank:
        return [Memory(width, words, 1, writes)], 0.0, 0.0
    count = -(-words // bank)
    return [Memory(width, bank, 1, writes)] * count, float((count - 1) * width), float(count * width)


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


def dwc_data_inputs(in_lanes: int, out_lanes: int) -> list[int]:
    """Data inputs of each buffer unit's next-value multiplexer (a unit is G = gcd(IN, OUT) elements;
    holding excluded, a flip-flop enable): unit u takes input unit u - k for every landing place
    k < OUT/G with 0 <= u - k < IN/G, and, for u < IN/G - 1, the unit OUT/G above it (the shift
    after an output word leaves)."""
    g = math.gcd(in_lanes, out_lanes)
    ki, ko = in_lanes // g, out_lanes // g
    cap = ki + ko - 1
    return [sum(1 for k in range(ko) if 0 <= u - k < ki) + (u + ko < cap) for u in range(cap)]


def dwc_mux(i: int, o: int, bits: int) -> dict[str, float]:
    """rtl/dwc's buffer of KI + KO - 1 units (G = gcd(IN, OUT) elements each): a unit is loaded from
    the input word at each offset k < KO that covers it, or shifted down by KO on a pop, or held.
    A unit with one source besides holding is a flip-flop enable (no LUT); with s > 1 it needs a
    multiplexer under the unit's select (decoded once, rtl/dwc's dwc_select): ``mux`` counts those
    unit bits, ``inputs`` their inputs past the first; ``decode`` = units x count bits, the selects'
    decoding of the landing place."""
    g = math.gcd(i, o)
    ki, ko, width = i // g, o // g, g * bits
    out = {"mux": 0.0, "inputs": 0.0, "decode": float((ki + ko - 1) * _clog2(ki + ko))}
    for sources in dwc_data_inputs(i, o):
        if sources > 1:
            out["mux"] += width
            out["inputs"] += width * (sources - 1)
    return out


def requant_shift_values(node: DataflowNode) -> list[list[int]]:
    """The distinct shifts each lane of a Requant (or an MVAU's fused requant) applies (lane p serves
    channels p, p + PE, ...; every timestep group's table), from the node's ``shifts`` (per channel, or
    one per tensor). Without them, every channel a lane serves is taken to differ, up to the 10 values
    of [-1, 8]."""
    a = node.attrs
    lanes, c, groups = a.get("PE", 1), a.get("NumChannels", a.get("MH")), a.get("timestepGroups", 1)
    shifts = a.get("shifts")
    if shifts is None:
        return [list(range(-1, 9))[:min(groups * c // lanes, 10)]] * lanes
    table = [list(g) for g in shifts] if shifts and isinstance(shifts[0], (list, tuple)) else [list(shifts)]
    table = [g * c if len(g) == 1 else g for g in table]
    return [sorted({int(g[ch]) for g in table for ch in range(p, c, lanes)}) for p in range(lanes)]


def requant_lut(node: DataflowNode, lanes: int | None = None, width: int | None = None) -> dict[str, float]:
    """LUT features of rtl/requant, or of rtl/mvau's fused requant (``lanes`` PE, ``width`` the
    accumulator's), from the shifts the node carries. Every lane: its input word (``word``: lane width).
    Both blocks build one constant-shift requantizer (round_shift.vh's requantize) per shift a lane
    takes, with a table each a module kept apart (rtl/common/shift_requantizer.vh, so that its LUTs do
    not move with the table's values), each priced by its output's saturation select (``out``: output
    bits) and by its shift v: the floor has width - v bits, its two saturation compares are carry chains
    over them, built only when the floor can leave the output range (``sat``); for v > 0 the rounding
    increment over the bits above the rounding position (``round``: width - v) and the test of the
    v - 1 bits below it (``sticky``); and a lane with several shifts chooses among them (``select``:
    output bits x (shifts - 1))."""
    if lanes is None:
        lanes, width = stream_word(node)
    ob = node.dt("outputDataType")
    out = {"word": float(lanes * width), "out": 0.0, "sat": 0.0, "round": 0.0, "sticky": 0.0, "select": 0.0}
    for vs in requant_shift_values(node):
        for v in vs:
            out["out"] += ob
            out["sat"] += width - max(v, 0) if width - v >= ob else 0
            out["round"] += width - v if v > 0 else 0
            out["sticky"] += max(0, v - 1)
        out["select"] += ob * (len(vs) - 1)
    return out


def single_shift(node: DataflowNode) -> bool:
    """One shift for every channel and timestep group: rtl/requant and rtl/mvau then build no
    shift table (SHIFT_CONST, set by hwsim.rtlgen.stitch), a fixed rounding and saturation. With
    timestep groups the mapping's ``shifts`` are one group's (the stitcher sees them all): unless
    they are given per group, a table is assumed, as the stitcher builds one when the groups differ."""
    a = node.attrs
    shifts = a.get("shifts")
    per_group = bool(shifts) and isinstance(shifts[0], (list, tuple))
    if a.get("timestepGroups", 1) > 1 and not per_group:
        return False
    return len({v for vs in requant_shift_values(node) for v in vs}) == 1


def _operand_address_mult18(node: DataflowNode) -> int:
    """MULT18X18D of rtl/mvau's dynamic-operand write address o0*O_S0 + o1*O_S1 + (o2 + lane)*O_S2
    (counters as wide as their ranges, one o2 term per lane); multiplies by powers of two are shifts.
    The read address needs none: wiring when the sizes are powers of two, else a counted base."""
    from hwsim.rtlgen.memfiles import operand_loops

    a = node.attrs
    heads = a.get("heads", 1)
    # the order the mapping streams the operand in; without one, the RAM's own order (h, m, k)
    order = tuple(a.get("operandOrder", (0, 1, 3, 2)))
    shape = (1, heads, a["MW"], a["MH"]) if len(order) == 4 else (1, a["MW"], a["MH"])
    lo, lanes = operand_loops(order, shape, a["SIMD"]), a["SIMD"]
    write = (const_mult18(lo["O_N0"].bit_length(), lo["O_S0"]) + const_mult18(lo["O_N1"].bit_length(), lo["O_S1"])
             + lanes * const_mult18((lo["O_N2"] + lanes).bit_length(), lo["O_S2"]))
    return write


def _group_shift_parts(node: DataflowNode, levels: int, lut_mult: bool) -> dict:
    """rtl/mvau's group-shifted weights (WGROUP): the shifts' memory (PE x groups-per-word shifts a
    word, one word per group of words), a left shifter per PE and group at the tree level where the
    group's sum is complete (``gshift``: its bits x shift stages; ``gshift_m18`` behind multiplier
    blocks, where it maps to fewer LUTs: experiments/group_shift_pairs.py), the adders above that level wider
    by the largest shift, and the shifts' pipeline registers (the read, operand and product registers
    and one per tree level below the shifter)."""
    if not node.group_shift():
        return {}
    a = node.attrs
    g, wq, sb = node.group_shift()
    p, q, x = a["PE"], a["SIMD"], node.dt("inputDataType")
    per_word = max(1, q // g)
    group_level = int(math.log2(g)) if g < q else levels
    width, words = node.group_shift_memory()
    return {"memory": Memory(width, words),
            "lut": {"gshift" if lut_mult else "gshift_m18": p * per_word * (wq + x + group_level) * sb,
                    "tree_wide": p * (per_word - 1) * ((1 << sb) - 1), "ctrl_gaddr": _clog2(words)},
            "ff": {"gshift": width * (3 + group_level)}}


def ecp5_parts(node: DataflowNode) -> tuple[int, list[Memory], dict, dict]:
    """(MULT18X18D, memories, LUT features, FF features) of the node's rtl/ block (see each block's
    Verilog for the multiplies and memories named here)."""
    t, a = node.op_type, node.attrs
    one = {"base": 1.0}
    if t == "MVAU":
        p, q, w, x, acc = a["PE"], a["SIMD"], node.weight_width(), node.dt("inputDataType"), node.dt("accDataType")
        lut_mult = a.get("resType", "lut") == "lut"
        mw, mh = a["MW"], a["MH"]
        nf = mh // p
        sparse, dyn = node.sparse(), node.dynamic()
        sf = node.stored_row() // q if sparse else mw // q
        act = not a.get("noActivation", 1)
        mults = 0 if lut_mult else p * q * mult18(w, x)
        if dyn:
            mults += _operand_address_mult18(node)
        # the weight address nf * SF + sf: wiring when SF is a power of two, else counted (``wcount``)
        wcount = _clog2(nf * sf + 1) if not dyn and nf > 1 and not _pow2(sf) else 0
        fixed = act and single_shift(node)
        if not dyn or (act and not fixed):  # the bias and shift address nf * PE + lane (no shift table: SHIFT_CONST)
            mults += const_mult18(_clog2(nf), p) if nf > 1 else 0
        mems = []
        ocount, bank_mux, bank_ff = 0, 0.0, 0.0
        if dyn:
            heads = a.get("heads", 1)
            # lane (q, r) reads entries (h*MH + n*PE + q)*MW + f*SIMD + r: one PE*SIMD-th of the array
            # each when the sizes are powers of two; otherwise the whole array from a counted base
            # (``ocount``: the base counter and the lanes' adders, address bits each)
            wired = all(_pow2(v) for v in (mw, mh, p, q))
            ocount = 0 if wired else _clog2(heads * mh * mw + 1) * (1 + p * q)
            mems.append(Memory(w, heads * mh * mw, p * q, q, sync=True, lanes=p * q if wired else 1, tag="operand"))
        else:
            if not node.external():  # weights streamed from DRAM (FINN's external mode) take no weight memory
                weights, bank_mux, bank_ff = _banks(p * q * w, nf * sf, node.weight_bank_words())
                mems += weights
                if sparse:
                    mems.append(Memory(p * q * node.index_bits(), nf * sf))
            mems.append(Memory(a.get("biasBits", 16), mh, p, sync=False))
        if act and not fixed:
            mems.append(Memory(8, mh, p, sync=False))  # shifts (none with SHIFT_CONST)
        if sparse:
            # the whole vector (SIMD words written a beat), read by every product at ((sf * SIMD + s) / N)
            # * M + index: with SIMD / N and M powers of two the lane's s is constant address bits, so a
            # product's multiplexer reaches MW * N / SIMD of the entries
            n_, m_ = a.get("sparsityN", 1), a["sparsityM"]
            reach = q // n_ if q % n_ == 0 and _pow2(q // n_) and _pow2(m_) else 1
            mems.append(Memory(x, mw, p * q, q, sync=False, lanes=reach, tag="vector"))
        elif nf > 1:
            # the input buffer replayed for nf > 0, read in the cycle its word is written (transparent)
            mems.append(Memory(q * x, mw // q, 1, 1, new_data=True))
        levels = math.ceil(math.log2(q)) if q > 1 else 0
        group = _group_shift_parts(node, levels, lut_mult)
        if group:
            mems.append(group.pop("memory"))
        bram, ml, mf = _memory_parts(mems)
        if bank_mux:
            ml["bram_mux"] = ml.get("bram_mux", 0.0) + bank_mux
        # the multipliers run in two stages (rtl/mvau): with LUT products, the partial products of the
        # weight's low and high rows are registered apart (``partial``) and summed in the next stage
        # (``psum``); a multiplier block takes the whole product at once and leaves no sum
        half = (w + 2) // 2
        # the fused requant: one shift for the whole tensor (as exports have it) is a fixed rounding and
        # saturation per lane (``act_fixed``); the dynamic MVAU's by its accumulator (``act``)
        lut = {**one, "act_base": 1.0 if act else 0.0, "mult": p * q * w * x if lut_mult else 0,
               "psum": p * q * (w + x) if lut_mult else 0, "tree": p * (q - 1) * (w + x + levels),
               "acc": p * acc, "act": p * acc * _clog2(acc) if act and dyn and not fixed else 0, "act_fixed": p * acc if fixed else 0,
               **group.get("lut", {}),
               "sparse": p * q * x * a.get("sparsityM", 1) if sparse else 0,
               "ctrl": _clog2(nf) + _clog2(sf), **({"ocount": ocount} if ocount else {}),
               # the fused requant's parts (requant_lut), for one shift for the tensor ("actc_") and
               # a shift table ("act_"): rtl/requant's circuits, its requantizers priced at Requant
               # (const)'s coefficients (BORROWED)
               **({("actc_" if fixed else "act_") + k: v for k, v in requant_lut(node, p, acc).items()}
                  if act and not dyn else {}),
               **({"wcount": wcount} if wcount else {}), **ml}
        ff = {**one, "operands": p * q * (w + x), "partial": p * q * (2 * x + w + half if lut_mult else w + x),
              "tree": p * (2 * q - 1) * (w + x + levels) if q > 1 else p * (w + x),
              "acc": p * acc, "out": p * (node.dt("outputDataType") if act else acc),
              **({"wbank": bank_ff} if bank_ff else {}), **group.get("ff", {}), **mf}
        if group:  # the adders above the groups' level are wider by the largest shift; the shifts' address counter
            lut["tree"] += lut.pop("tree_wide")
            lut["ctrl"] += lut.pop("ctrl_gaddr")
        return mults, mems, lut, ff
    if t == "StreamingDataWidthConverter":
        i, o = node.lanes()
        g = math.gcd(i, o)
        b = node.dt("dataType")
        return 0, [], {**one, **dwc_mux(i, o, b)}, {**one, "buffer": (i + o - g) * b, "ctrl": _clog2((i + o) // g)}
    lanes, width = stream_word(node)
    word = lanes * width
    if t == "ConvolutionInputGenerator_rtl":
        # rtl/swg steps its window position and oldest word with adds of constants: no multiplier
        mems = [Memory(word, node.buffer_depth(), 1, 1)]
        bram, ml, mf = _memory_parts(mems)
        return 0, mems, {**one, "word": word, **ml}, {**one, "word": word, **mf}
    if t == "FMPadding":
        # LUTs: the position counters and the interior test (a pad word is the output register's
        # synchronous clear, not a multiplexer per bit); FFs: the output word and the counters
        (h, w), (pt, pl, pb, pr) = a["ImgDim"], a["Padding"]
        ctrl = (h + pt + pb).bit_length() + (w + pl + pr).bit_length() + (a["NumChannels"] // a["SIMD"]).bit_length()
        return 0, [], {**one, "ctrl": ctrl}, {**one, "word": word, "ctrl": ctrl}
    if t == "Requant":
        ob = node.dt("outputDataType")
        single = single_shift(node)
        mems = [] if single else [Memory(8, a["NumChannels"] * a.get("timestepGroups", 1), lanes, sync=False)]
        lut = {**one, **requant_lut(node)}
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
        # one two-port ROM per pair of lanes (rtl/lut), the last one-port for an odd lane count
        depth = 2 ** width * a.get("timestepGroups", 1)
        mems = [Memory(ob, depth, 2)] * (lanes // 2) + [Memory(ob, depth, 1)] * (lanes % 2)
        bram, ml, mf = _memory_parts(mems)
        # the table in LUT ROM priced by the type's own coefficients, not the shared one of random ROMs:
        # a SiLU or GELU table is smooth and maps to fewer LUTs. ``table``: ROM bits / 16 per lane;
        # ``table_sqrt``: output bits x sqrt(entries) per lane, as measured (6- to 8-bit inputs, rtl/lut's
        # pairs kept apart: 27-31, 47-57 and 74-81 LUTs a lane of 8 output bits, far from proportional to
        # the entries), the smooth tables' upper bits changing ever more rarely as the input widens
        if "rom" in ml:
            ml["table"] = ml.pop("rom")
            ml["table_sqrt"] = lanes * ob * math.sqrt(depth)
        lut = {**one, "out": lanes * ob, **ml}
        return 0, mems, lut, {**one, "out": lanes * ob, **mf}
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
        # the row slot (x / FACTOR) * CF + c, x as wide as its range (WO = WI * FACTOR), the product
        # kept to the row's address bits
        xb = (a["WI"] * f).bit_length() - (int(math.log2(f)) if _pow2(f) else 0)
        mults = 0 if _pow2(cf) else mult18(xb, cf.bit_length(), _clog2(a["WI"] * cf))
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


def groupnorm_ports(node: DataflowNode, lanes: int) -> int:
    """The ports of rtl/groupnorm's statistics register file (groupnorm_stats): when a word's lanes fall
    in one group or in a power-of-two count of whole groups, one port a group (its lanes summed first,
    its groups those congruent to it modulo the ports): their count; otherwise (one port a lane) 0."""
    cpg = node.attrs["NumChannels"] // node.attrs["groups"]
    span = 1 if cpg % lanes == 0 else lanes // cpg if lanes % cpg == 0 else 0
    return span if span and _pow2(span) else 0


def _groupnorm_stats(node: DataflowNode, lanes: int, width: int, sb: int, qb: int, db: int) -> dict[str, float]:
    """LUT features of rtl/groupnorm's statistics register file (a module kept apart): S, Q, r and k per
    group. Each port adds its lanes' sum into its group's S and Q (``stat_add``: adder bits, the lanes'
    sums among them), reading them, and EMIT reading S, r and k, through multiplexers over the groups
    the port reaches, the solver reading S and Q over all groups (``stat_mux``: multiplexed bits x
    (entries - 1)); each group's registers are written at its index (``group_regs``)."""
    groups = node.attrs["groups"]
    kmax = (db - 31) // 2 if db > 32 else 0
    kb = 1 if kmax < 2 else _clog2(kmax + 1)
    shared = groupnorm_ports(node, lanes)
    ports = shared or lanes
    reach = groups // ports if shared else groups
    per_port = lanes // ports
    return {"stat_mux": float(ports * (sb + qb + sb + 32 + kb) * (reach - 1) + (sb + qb) * (groups - 1)),
            "stat_add": float(ports * (sb + qb + (per_port - 1) * 3 * width)),
            "group_regs": float((groups - 1) * (sb + qb + 32 + kb))}


def _ecp5_norm(node: DataflowNode, lanes: int, width: int) -> tuple[int, list[Memory], dict, dict]:
    """GroupNorm, AdaLayerNorm and IntSoftmax: fixed-width datapaths per lane (rtl/groupnorm and
    rtl/adaln size their words from the numerics), the group or token statistics and the buffers."""
    t, a = node.op_type, node.attrs
    one = {"base": 1.0}
    c = a["NumChannels"]
    folds = c // lanes
    if t == "GroupNorm":
        groups = a["groups"]
        words = node.elements() // lanes
        # gamma and beta (one table per timestep group) are read into registers beside t's rounding
        # in EMIT, so synchronous tables: a large one becomes a block RAM
        steps = a.get("timestepGroups", 1)
        buffer, bank_mux, bank_ff = _banks(lanes * width, words, node.buffer_bank_words(), writes=1)
        mems = [*buffer, Memory(a["gammaBits"], c * steps, lanes), Memory(a["betaBits"], c * steps, lanes)]
        n = node.group_size()
        # rtl/groupnorm sizes its registers from the numerics (LOGN = bits of N): S has IBITS + LOGN + 1
        # bits, Q 2 IBITS + LOGN + 1, N*x - S IBITS + LOGN + 2, t FT + (LOGN + 1) / 2 + 3. LOAD x*x per
        # lane; SOLVE N*Q - S*S; EMIT per lane N*x - S, (that) * r (r: 32 bits, zero-extended) and t * gamma
        logn = n.bit_length()
        sb, qb, cb, tb = width + logn + 1, 2 * width + logn + 1, width + logn + 2, a["ft"] + (logn + 1) // 2 + 3
        # SOLVE's N*Q and S*S over 17-bit halves (lo: 18 bits with a zero sign bit; hi = x >> 17: the
        # remaining bits, the sign among them, one bit when there are none), products modulo 2^DB
        db = 2 * logn + 2 * width
        hi_s, hi_q = max(1, sb - 17), max(1, qb - 17)
        mults = lanes * mult18(width, width) + const_mult18(18, n) + const_mult18(hi_q, n) \
            + mult18(18, 18, db) + mult18(18, hi_s, db) + mult18(hi_s, hi_s, db) \
            + lanes * (const_mult18(width, n) + mult18(cb, 33) + mult18(tb, a["gammaBits"]))
        # the channel fold * PE of the gamma and beta read, and of the group index in LOAD and EMIT's
        # first stage unless the lanes count their groups (shared by the lanes; a shift when PE is a
        # power of two)
        counted = not _pow2(c // groups)
        mults += (1 if counted else 3) * const_mult18(folds.bit_length(), lanes)
        bram, ml, mf = _memory_parts(mems)
        if bank_mux:
            ml["bram_mux"] = ml.get("bram_mux", 0.0) + bank_mux
        # with groups of a non-power-of-two size each lane counts its group and its offset in the
        # group in LOAD and in EMIT (rtl/common/channel_groups.vh; ``group_count``: their bits)
        count_bits = 2 * lanes * (_clog2(groups + 1) + _clog2(c // groups + 1)) if counted else 0
        # LUTs (fitted on the narrowed RTL; see experiments/results/resource_calibration): the groups'
        # statistics register file (_groupnorm_stats); per lane a datapath growing with log2 N (the
        # widths of S, n*q - S and t); per lane the variable rounding shift of t, and once the solver's
        # normalizing shift of D with its leading-one search, both built only when D can exceed 32 bits
        # (k > 0); the solver's width (log2 N); the lanes' group counters
        shift = 1 if db > 32 else 0
        # gamma and beta in logic (not block RAM): a read multiplexer per lane over the entries its
        # address fold * PE + lane reaches: FOLDS per table when PE is a power of two (the lane is the
        # address's low bits), the whole table otherwise (``table``: multiplexed bits / 16)
        reach = (folds if _pow2(lanes) else c) * steps
        table = sum(lanes * m.width * max(1.0, reach / 16) for m in mems[len(buffer):] if ecp5_memory(m)[0] != "bram")
        return mults, mems, {**one, **_groupnorm_stats(node, lanes, width, sb, qb, db), "lane_logn": lanes * logn,
                             "table": table, "lane_shift": lanes * shift * (cb + 33), "solver_shift": shift * db,
                             "logn": logn, "group_count": count_bits}, \
            {**one, "lanes": lanes, "groups": groups, "group_count": count_bits,
             **({"bbank": bank_ff} if bank_ff else {}), **mf}
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
    # the slot addresses s * FOLDS + i of LOAD, SUM and EMIT need no multiplier (wiring when FOLDS is
    # a power of two, else counted); the per-slot registers written at a variable offset,
    # total_of[s * TW +: TW] and max_of[s * IBITS +: IBITS], do when the width is even and not a
    # power of two (measured: odd widths and powers of two need none)
    sum_bits = tbits + (_clog2(c) if c > 1 else 0)
    tw = max(sum_bits, node.dt("outputDataType") - 1)
    mults = sum(mult18(3, k.bit_length()) for k in (tw, width) if k % 2 == 0 and not _pow2(k))
    bram, ml, mf = _memory_parts(mems)
    div = lanes * node.dt("outputDataType") * (tbits + _clog2(c))  # the pipelined restoring dividers
    return mults, mems, {**one, "div": div, "rom": ml.get("rom", 0.0)}, {**one, "div": div, **mf}


def node_adaln_depth(node: DataflowNode) -> int:
    f = node.folds()
    solve = node._solve(node.unroll())
    return 2 * f if solve > f else f + solve + 1


def features(node: DataflowNode, dev=None, every: bool = False) -> dict[str, dict[str, float]]:
    """The node's ECP5 LUT and FF features ({"lut": {...}, "ff": {...}}), as the fit and the model use
    them: of a table's own LUT features, those in :data:`LUT_FEATURES` where it lists the table
    (``every``: all of them, the candidates of that choice, and the features the table prices at
    another's coefficients, BORROWED)."""
    from hwsim.dataflow.resources import ecp5_table

    _, _, lut, ff = ecp5_parts(node)
    keep = LUT_FEATURES.get(ecp5_table(node))
    if keep is not None and not every:
        lut = {k: v for k, v in lut.items() if k in keep or k in SHARED["lut"] or k in FIXED["lut"]}
    elif not every:  # a table without a choice fits every own feature, but not those it borrows
        lut = {k: v for k, v in lut.items() if k not in borrowed_features(ecp5_table(node))}
    return {"lut": lut, "ff": ff}


def fifo_parts(width: int, depth: int, registered: bool = True) -> tuple[list[Memory], dict, dict]:
    """rtl/fifo, WIDTH x DEPTH. ``registered`` (OUTREG = INREG = 1, every FIFO a stitched design puts
    on an edge): the word is written from a WIDTH-bit write register (``wdata``), the RAM is read
    into a read register (a block RAM's own output latch, else WIDTH flip-flops: ``rdata``) and the
    word leaves from a WIDTH-bit output register (``out``); the read never meets a write
    (no_rw_check), so no bypass. First-word fall-through (OUTREG = 0, the group
    index queues): read at the registered read pointer, which Yosys turns into a synchronous read port;
    in block RAM the read must see the word written in the same cycle, so Yosys adds a WIDTH-bit
    bypass register and multiplexer (``bypass``); in LUT RAM the read stays asynchronous (no data
    flip-flops); at depth 2 the words are registers (memory_libmap: cheaper than a DPR16X4)."""
    mems = [Memory(width, depth, 1, 1, new_data=not registered)]
    kind = ecp5_memory(mems[0])[0]
    _, ml, mf = _memory_parts(mems)
    if kind == "lutram":
        mf.pop("ram_ff", None)
    one = {"base": 1.0}
    if registered:
        regs = {"out": float(width), "wdata": float(width), "rdata": float(width) if kind != "bram" else 0.0}
        return mems, {**one, "ctrl": _clog2(depth), **ml}, {**one, "ctrl": _clog2(depth), **regs, **mf}
    bypass = {"bypass": float(width)} if kind == "bram" else {}
    return mems, {**one, "ctrl": _clog2(depth), **bypass, **ml}, {**one, "ctrl": _clog2(depth), **bypass, **mf}


def fifo_features(width: int, depth: int, dev=None, registered: bool = True) -> dict[str, dict[str, float]]:
    _, lut, ff = fifo_parts(width, depth, registered)
    return {"lut": lut, "ff": ff}


SHARED = {"lut": ("rom", "ram_rd", "ram_wr", "lutram", "lutram_mux", "bram_mux"), "ff": ("ram_ff",)}
# Shared coefficients known from the architecture or a direct measurement rather than fitted: nextpnr
# packs a TRELLIS_DPR16X4 into two RAM-mode slices (4 TRELLIS_COMB) and a RAMW slice (2 more). An MVAU's
# counted weight address (``wcount``, per bit): the 11 calibration MVAUs whose address went from a
# multiplier and an adder to a counter (f79f5e4) changed by a median of +3.4 LUT per counter bit, the
# adder it replaced being about one more; fitted freely, the coefficient (51) absorbed other misfit and
# took the residual block from +20% to +42%. An MVAU's banked weights (``wbank``): one flip-flop per
# bit of every bank's second register (rtl/mvau WBANK), by construction; GroupNorm's banked buffer
# (``bbank``, rtl/groupnorm BBANK) the same. An MVAU's group shifters (rtl/mvau WGROUP, per bit and shift
# stage): grouped MVAUs against the same blocks with the same memories and accumulator and no shifts
# (experiments/group_shift_pairs.py, none of them a grid row) took, after the other features' difference,
# 1.45 to 1.84 LUTs more per unit with LUT products (four pairs, median 1.6: ``gshift``) and 0.71 to 1.31
# behind multiplier blocks (three, median 0.96: ``gshift_m18``); the grid has too few grouped rows to fit
# them. Their registers (``gshift`` FF) one flip-flop per bit by construction (measured 1.03-1.17). The
# choice among an MVAU's fused requantizers (``act_select``, per output bit and further requantizer): one
# LUT by construction, shift_table.vh's chain of 2:1 multiplexers; the fit cannot tell it from the
# MVAU's datapath (leave-one-out leaves it out of the MVAU's own features, session 31).
FIXED = {"lut": {"lutram": 6.0, "wcount": 4.0, "gshift": 1.6, "gshift_m18": 0.96, "act_select": 1.0},
         "ff": {"wbank": 1.0, "bbank": 1.0, "gshift": 1.0}}

# Features a table prices at another table's fitted LUT coefficients rather than its own: rtl/mvau's
# fused requant is rtl/requant's Verilog (round_shift.vh's requantize), so an MVAU's requantizers are
# priced at Requant (const)'s coefficients, the one-shift block that is a requantizer a lane and
# little else: its ``actc_`` + k features (one shift for the tensor) all of them, its ``act_`` + k ones
# (a shift table: one requantizer module a shift a lane takes, shift_requantizer.vh) the
# requantizers' parts. The choice among them (``act_select``, shift_table.vh) is priced by
# construction (FIXED): Requant's ``select`` coefficient also carries that block's table decoding, and
# priced at Requant's coefficients the MVAU's requant cost about twice what it takes (sessions 30-31:
# 32 x 16, PE=2, MULT18 products, 887 LUTs at Requant's price for requantizer modules that pack in
# about 620). Measured alone on the
# Requant grid, not fitted again among an MVAU's datapath features, where a few rows with tables
# decided them (experiments/resource_calibration.py fits the borrowing tables with these parts as an
# offset).
REQUANTIZER_PARTS = ("out", "sat", "round", "sticky")
REQUANT_PARTS = ("word", *REQUANTIZER_PARTS, "select")
_FUSED = {"act_": ("Requant (const)", REQUANTIZER_PARTS), "actc_": ("Requant (const)", REQUANT_PARTS)}
BORROWED = {"MVAU": _FUSED, "MVAU (sparse)": _FUSED}


def borrowed_lut(table: str, lut: dict[str, float], fitted: dict) -> float:
    """The LUTs of ``lut``'s features that ``table`` prices at other tables' coefficients (BORROWED),
    from ``fitted`` (the device YAML's ``coefficients.fitted``)."""
    total = 0.0
    for prefix, (source, parts) in BORROWED.get(table, {}).items():
        coef = fitted.get(source, {}).get("lut", {})
        total += sum(coef.get(k, 0.0) * lut.get(prefix + k, 0.0) for k in parts)
    return total


def borrowed_features(table: str) -> set[str]:
    return {prefix + k for prefix, (_, parts) in BORROWED.get(table, {}).items() for k in parts}


# The own LUT features a coefficient table's fit uses where not all that ecp5_parts gives (the others
# get no coefficient, so they price at zero; the shared memory features always count), chosen by
# leave-one-out cross-validation over the table's fit rows only (the held-out rows play no part): of
# every subset of the candidates, the smallest whose RMS error (LUTs over max(LUTs, 50)) is within a
# point of the lowest (experiments/resource_calibration.py --select; its README lists the choices).
LUT_FEATURES = {"MVAU": ("acc", "ctrl", "mult", "tree"),
                "MVAU (sparse)": ("psum", "vector_rd"),
                "Requant": ("base", "sat", "select"),
                "LutActivation": ("table", "table_sqrt"),
                "Requant (const)": ("out", "round", "sticky", "sat"),
                "GroupNorm": ("base", "lane_logn", "stat_mux"),
                "StreamReorder": ("base", "slots"),
                "StreamingDataWidthConverter": ("decode", "inputs")}
