"""Node types FINN does not have for a diffusion denoiser, in FINN's attribute style.

FINN stops at GroupNorm (no HW op), SiLU (a float PWPolyF for Versal only) and an integer
softmax (its HWSoftmax is float); the timestep tables and stream reordering of a denoiser have no
FINN counterpart either (../shared/STACK.md "FINN"). Their datapaths follow docs/numerics.md so
that the RTL issue can build exactly what is priced here. Cycle formulas use FINN's convention:
the II of one evaluation is the number of folded stream words the node moves.
"""

from __future__ import annotations

import math

from hwsim.dataflow import layout
from hwsim.dataflow.nodes.base import HWSIM_DOMAIN, DataflowNode, Op

RSQRT_ADDS = 32  # a 32-bit integer square root, one add per result bit (docs/numerics.md, GroupNorm)
RSQRT_BITS = 31  # r = isqrt(2^62 // m) has up to 31 significant bits
# rtl/groupnorm solves each group serially: a seven-cycle set-up (S and Q, N*Q's and S*S's partial products,
# their sums, D, D's bit length, k, m), a 63-step
# restoring division of 2^62 by m, a 32-step square root, store; and 4 cycles pass between its phases
# (measured; two of them: the map's last word is squared, then accumulated, in SOLVE's first cycles)
DIVIDE_STEPS = 63
SOLVE_CYCLES = 7 + DIVIDE_STEPS + RSQRT_ADDS + 1
PHASE_CYCLES = 4
EMIT_STAGES = 8  # rtl/groupnorm normalizes in eight pipeline stages: the first output waits seven more cycles, the II does not


class _Stream(DataflowNode):
    """A node streaming ``numInputVectors`` x ``NumChannels`` values, PE per cycle."""

    domain = HWSIM_DOMAIN
    FOLD = {"PE": "NumChannels"}

    def elements(self) -> int:
        return self.n_vectors() * int(self.attrs["NumChannels"])

    def get_exp_cycles(self) -> int:
        return self.elements() // self.attrs["PE"]

    def word(self, dtype_attr: str = "inputDataType") -> int:
        return self.attrs["PE"] * self.dt(dtype_attr)


class LutActivation(_Stream):
    """SiLU/GELU as a table indexed by the integer input (2^inputbits entries), one table per PE lane."""

    op_type = "LutActivation"
    PIPELINE_DEPTH = 1  # rtl/lut: the table read is the register stage

    def weight_bits(self) -> int:
        return self.groups() * self.attrs["PE"] * 2 ** self.dt("inputDataType") * self.dt("outputDataType")

    def op_counts(self) -> list[Op]:
        table = self.groups() * 2 ** self.dt("inputDataType") * self.dt("outputDataType")
        return [Op("mem_read", self.elements(), self.dt("outputDataType"), table)]


class GroupNorm(_Stream):
    """Integer GroupNorm (docs/numerics.md, rtl/groupnorm): the whole map is buffered while the
    per-group sums S and Q accumulate, each group's reciprocal square root is solved serially, then
    the map is read back normalized. Single-buffered (``doubleBuffer=0``, what rtl/groupnorm builds):
    a sampler's steps are sequential, so a second buffer only helps with several images in flight;
    ``doubleBuffer=1`` is priced as an estimate (one pass per evaluation), no RTL yet."""

    op_type = "GroupNorm"

    def group_size(self) -> int:
        return self.elements() // self.attrs["groups"]

    def _pass(self) -> int:
        return self.elements() // self.attrs["PE"]

    def _solve(self) -> int:
        return self.attrs["groups"] * SOLVE_CYCLES + PHASE_CYCLES

    def get_exp_cycles(self) -> int:
        if self.attrs.get("doubleBuffer", 0):
            return max(self._pass(), self._solve())
        return 2 * self._pass() + self._solve() + self._banked()  # the next map waits for the banks' stage

    def first_output_delay(self) -> int:  # the whole map, then the groups' square roots
        return self._pass() + self._solve() + EMIT_STAGES - 1 + self._banked()

    def _banked(self) -> int:
        return 1 if self.buffer_bank_words() else 0

    def buffer_bank_words(self) -> int:
        """rtl/groupnorm's BBANK: a buffer in block RAM deeper than one address chunk is banked at the
        chunk's depth (EMIT one stage longer; ``bufferBankWords`` overrides, 0 for none)."""
        words = self._pass()
        if "bufferBankWords" in self.attrs:
            bank = int(self.attrs["bufferBankWords"])
        else:
            from hwsim.dataflow.ecp5 import bank_words  # the block RAM geometry synth_ecp5 maps to

            bank = bank_words(self.word(), words, writes=1)
        return bank if bank and words > bank else 0

    def output_cycles(self) -> int:
        return self._pass() - 1

    def buffer_bits(self) -> int:
        return (1 + self.attrs.get("doubleBuffer", 0)) * self.elements() * self.dt("inputDataType")

    def weight_bits(self) -> int:
        return self.groups() * self.attrs["NumChannels"] * (self.attrs["gammaBits"] + self.attrs["betaBits"])

    def op_counts(self) -> list[Op]:
        n, x, groups = self.elements(), self.dt("inputDataType"), self.attrs["groups"]
        centered = x + math.ceil(math.log2(self.group_size())) + 1
        sums = 2 * x + math.ceil(math.log2(self.group_size()))
        t = self.attrs["ft"] + 2
        word, mem = self.word(), self.buffer_bits()
        return [Op("add", n, sums), Op("mult", n, x, x), Op("add", n, sums),  # S and Q
                Op("mem_write", n // self.attrs["PE"], word, mem), Op("mem_read", n // self.attrs["PE"], word, mem),
                # per group: the division, the square root, the set-up's sums, D and k
                Op("add", groups * (DIVIDE_STEPS + RSQRT_ADDS + 5), 64),
                Op("add", n, centered), Op("mult", n, centered, RSQRT_BITS), Op("add", n, centered + RSQRT_BITS),
                Op("mult", n, t, self.attrs["gammaBits"]), Op("add", n, self.attrs["betaBits"]),
                Op("add", n, self.attrs["betaBits"])]  # round-half-even shift and clamp


class AdaLayerNorm(_Stream):
    """DiT's adaLN ``LayerNorm(x) * (1 + scale) + shift`` over each token's ``NumChannels`` values;
    scale and shift are the step's table rows (inputs 1 and 2). rtl/adaln overlaps three stages on
    consecutive tokens: load (sums), solve (rsqrt: 95 serial steps, ``solveUnroll`` per cycle, plus
    set-up and store) and emit, so a token costs the slower of C/PE and the solve."""

    op_type = "AdaLayerNorm"
    PIPELINE_DEPTH = 3  # rtl/adaln's emit stages
    SOLVE_STEPS, MAX_UNROLL = 95, 16  # 63 division + 32 square-root steps; the unroll the cost model may choose

    def folds(self) -> int:
        return self.attrs["NumChannels"] // self.attrs["PE"]

    def unroll(self) -> int:
        """``solveUnroll`` if set, else the least (up to MAX_UNROLL) that keeps the solve within C/PE cycles."""
        if self.attrs.get("solveUnroll"):
            return int(self.attrs["solveUnroll"])
        return next((u for u in range(1, self.MAX_UNROLL) if self._solve(u) <= self.folds()), self.MAX_UNROLL)

    def _solve(self, unroll: int) -> int:
        return -(-self.SOLVE_STEPS // unroll) + 2

    def token_cycles(self) -> int:
        return max(self.folds(), self._solve(self.unroll()))

    def get_exp_cycles(self) -> int:
        return self.n_vectors() * self.token_cycles()

    def first_output_delay(self) -> int:
        """Load a token, solve it, three emit stages (measured on rtl/adaln, tests/rtl/test_adaln.py)."""
        return self.folds() + self._solve(self.unroll()) + self.PIPELINE_DEPTH

    def output_cycles(self) -> int:
        return (self.n_vectors() - 1) * self.token_cycles() + self.folds() - 1

    def buffer_bits(self) -> int:
        """rtl/adaln's token buffer (the least that never stalls) and two banks of scale and shift rows."""
        f, solve, c = self.folds(), self._solve(self.unroll()), self.attrs["NumChannels"]
        words = 2 * f if solve > f else f + solve + 1
        return words * self.attrs["PE"] * self.dt("inputDataType") + 2 * c * (self.attrs["scaleBits"] + self.attrs["shiftBits"])

    def op_counts(self) -> list[Op]:
        n, x, c = self.elements(), self.dt("inputDataType"), self.attrs["NumChannels"]
        tokens = self.n_vectors()
        centered = x + math.ceil(math.log2(c)) + 1
        sums = 2 * x + math.ceil(math.log2(c))
        t = self.attrs["ft"] + 2
        word, mem = self.word(), self.buffer_bits()
        return [Op("add", n, sums), Op("mult", n, x, x), Op("add", n, sums),
                Op("mem_write", n // self.attrs["PE"], word, mem), Op("mem_read", n // self.attrs["PE"], word, mem),
                Op("add", tokens * RSQRT_ADDS, 2 * sums),
                Op("add", n, centered), Op("mult", n, centered, RSQRT_BITS), Op("add", n, centered + RSQRT_BITS),
                Op("mult", n, t, self.attrs["scaleBits"] + 1), Op("add", n, self.attrs["shiftBits"] + t),
                Op("add", n, self.attrs["shiftBits"] + t)]


class IntSoftmax(_Stream):
    """Integer softmax over rows of ``NumChannels`` (docs/numerics.md): max, exp table, sum, and an
    exact integer division per element. rtl/softmax overlaps three passes on consecutive rows (load
    and max, table and sum, table again and a pipelined restoring divider), so a row moves every
    NumChannels/PE cycles, in a buffer of 3 to 5 row slots."""

    op_type = "IntSoftmax"
    PIPELINE_DEPTH = 4  # rtl/softmax: sum's table read and accumulate, emit's buffer read and the table
    # word's register (table read and divider counted with the output width below)

    def folds(self) -> int:
        return self.attrs["NumChannels"] // self.attrs["PE"]

    def first_output_delay(self) -> int:
        """Load the row, read it back to sum, then the table read and FO + 1 = out bits - 1 divider
        stages; measured on rtl/softmax (tests/rtl/test_softmax.py)."""
        return 2 * self.folds() + self.dt("outputDataType") + self.PIPELINE_DEPTH

    def slots(self) -> int:
        return 2 + -(-3 // self.folds())

    def weight_bits(self) -> int:  # the exp table (unsigned: the graph's signed type less its sign bit), one per lane
        return self.groups() * self.attrs["PE"] * self.attrs["tableEntries"] * (self.attrs["tableBits"] - 1)

    def buffer_bits(self) -> int:
        return self.slots() * self.attrs["NumChannels"] * self.dt("inputDataType")

    def op_counts(self) -> list[Op]:
        n, x = self.elements(), self.dt("inputDataType")
        rows = self.n_vectors()
        sum_bits = self.attrs["tableBits"] - 1 + math.ceil(math.log2(self.attrs["NumChannels"]))
        quotient = self.dt("outputDataType") - 1  # FO + 1 divider stages
        table = self.attrs["tableEntries"] * (self.attrs["tableBits"] - 1)
        word, mem = self.attrs["PE"] * x, self.buffer_bits()
        return [Op("add", n, x), Op("add", 2 * n, x),  # running max, then max - q in both passes
                Op("mem_read", 2 * n, self.attrs["tableBits"] - 1, table), Op("add", n, sum_bits),
                Op("mem_write", n // self.attrs["PE"], word, mem), Op("mem_read", 2 * n // self.attrs["PE"], word, mem),
                Op("add", n * quotient, sum_bits + 2), Op("add", rows, sum_bits)]  # restoring division per element


class TimestepTable(DataflowNode):
    """A per-timestep constant (time-embedding projection, adaLN rows) as a ROM with one row per
    *sampler* step: the integer graph's table has a row for every training timestep, but the
    hardware only ever reads the ``NumSteps`` rows its sampler visits (the host sends the step index)."""

    op_type = "TimestepTable"
    domain = HWSIM_DOMAIN
    FOLD = {"PE": "EmbeddingDim"}

    def get_exp_cycles(self) -> int:
        return self.attrs["EmbeddingDim"] // self.attrs["PE"]

    def weight_bits(self) -> int:
        return self.attrs["NumSteps"] * self.attrs["EmbeddingDim"] * self.dt("EmbeddingType")

    def op_counts(self) -> list[Op]:
        return [Op("mem_read", self.get_exp_cycles(), self.attrs["PE"] * self.dt("EmbeddingType"), self.weight_bits())]


class StreamReorder(_Stream):
    """A change of stream order (reshape/transpose/slice chains that are not free in a channels-last
    stream). ``bufferDepth`` is the ideal buffer (:func:`hwsim.dataflow.layout.reorder_depth`); rtl/reorder
    addresses its slots mod S and needs more, computed from ``sequence`` (the input position of each
    output element) by simulating its slot rule at full rate."""

    op_type = "StreamReorder"

    def first_output_delay(self) -> int:
        return self.attrs["bufferDepth"] // self.attrs["PE"] + self.PIPELINE_DEPTH

    def slots(self) -> int:
        """rtl/reorder's words of buffer at this folding (the ideal depth for a sequence that drops
        elements, which rtl/reorder does not build)."""
        seq = self.attrs.get("sequence")
        try:
            words = layout.word_sequence(seq, self.attrs["PE"])
            layout._check_permutation(words)
        except (TypeError, ValueError):
            return -(-self.attrs["bufferDepth"] // self.attrs["PE"])
        return layout.reorder_slots_cached(tuple(int(w) for w in words))

    def buffer_bits(self) -> int:
        return self.slots() * self.attrs["PE"] * self.dt("inputDataType")

    def op_counts(self) -> list[Op]:
        n, word, mem = self.elements() // self.attrs["PE"], self.word(), self.buffer_bits()
        return [Op("mem_write", n, word, mem), Op("mem_read", n, word, mem)]


class HostInput(_Stream):
    """x_t, quantized to integers by the host (where the sampler runs), streamed in."""

    op_type = "HostInput"

    def op_counts(self) -> list[Op]:
        return [Op("io", self.elements(), self.dt("outputDataType"))]


class HostOutput(_Stream):
    """The integer eps streamed back to the host, which dequantizes it and runs the sampler update."""

    op_type = "HostOutput"

    def op_counts(self) -> list[Op]:
        return [Op("io", self.elements(), self.dt("inputDataType"))]


HWSIM_NODE_TYPES = [LutActivation, GroupNorm, AdaLayerNorm, IntSoftmax, TimestepTable, StreamReorder, HostInput,
                    HostOutput]
