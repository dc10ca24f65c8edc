"""Requant, thresholding, LUT activation, elementwise add/mul, fork, padding and FIFO blocks: bit-exact against
hwsim's references under random gaps and back-pressure (Icarus), one on Verilator."""

import pytest

from hwsim.rtlgen import benches
from tests.rtl import SIMS


@pytest.mark.parametrize("case", [
    lambda d, **k: benches.bench_requant(8, 2, 5, d, **k),
    lambda d, **k: benches.bench_requant(6, 6, 3, d, **k),
    lambda d, **k: benches.bench_requant(8, 2, 5, d, shift=3, **k),  # SHIFT_CONST: one shift, no table
    lambda d, **k: benches.bench_requant(6, 3, 2, d, shift=-1, **k),
    lambda d, **k: benches.bench_requant(4, 4, 2, d, shift=8, **k),
    lambda d, **k: benches.bench_lut(8, 4, 5, d, **k),
    lambda d, **k: benches.bench_lut(3, 1, 4, d, **k),
    lambda d, **k: benches.bench_lut(6, 3, 4, d, **k),  # an odd lane count: the last ROM has one port
    lambda d, **k: benches.bench_elementwise("add", 8, 2, 5, d, **k),
    lambda d, **k: benches.bench_elementwise("mul", 6, 3, 4, d, **k),
    lambda d, **k: benches.bench_duplicate(4, 2, 6, d, **k),
    lambda d, **k: benches.bench_fmpad(3, 4, 4, 2, (1, 1, 1, 1), d, **k),
    lambda d, **k: benches.bench_fmpad(2, 3, 3, 3, (0, 2, 1, 0), d, **k),
    lambda d, **k: benches.bench_fifo(12, 4, 40, d, **k),
    lambda d, **k: benches.bench_fifo(12, 4, 40, d, outreg=1, **k),
    lambda d, **k: benches.bench_fifo(12, 1, 40, d, outreg=1, **k),
    lambda d, **k: benches.bench_fifo(12, 4, 40, d, outreg=1, inreg=1, **k),  # as stitched
    lambda d, **k: benches.bench_fifo(12, 1, 40, d, outreg=1, inreg=1, **k),
    lambda d, **k: benches.bench_fifo(12, 3, 40, d, inreg=1, **k),
    lambda d, **k: benches.bench_swg(6, 6, 2, 1, (3, 3), (1, 1), d, **k),
    lambda d, **k: benches.bench_swg(7, 7, 4, 2, (3, 3), (2, 2), d, **k),
    lambda d, **k: benches.bench_swg(8, 8, 1, 1, (4, 4), (4, 4), d, **k),
    lambda d, **k: benches.bench_swg(9, 7, 2, 1, (3, 2), (2, 1), d, **k),  # unequal strides and kernel sides
    lambda d, **k: benches.bench_upsample(2, 3, 4, 2, 2, d, **k),
    lambda d, **k: benches.bench_concat(4, 2, 2, 2, 3, d, **k),
    lambda d, **k: benches.bench_concat(3, 6, 3, 2, 2, d, split=True, **k),
    lambda d, **k: benches.bench_concat(2, 4, 2, 2, 2, d, bits=(25, 22), **k),
    lambda d, **k: benches.bench_elementwise_const("add", 6, 2, 4, d, **k),
    lambda d, **k: benches.bench_elementwise_const("mul", 4, 4, 3, d, broadcast=True, **k),
    lambda d, **k: benches.bench_thresholding(8, 2, 5, d, **k),
    lambda d, **k: benches.bench_thresholding(6, 3, 4, d, per_channel=False, steps=7, obits=3, **k),
    lambda d, **k: benches.bench_thresholding(4, 2, 3, d, groups=3, evaluations=4, **k),
], ids=["requant", "requant-pe6", "requant-const3", "requant-const-1", "requant-const8", "lut", "lut-pe1", "lut-pe3", "add", "mul", "duplicate", "pad", "pad-asym", "fifo", "fifo-outreg", "fifo-outreg-depth1",
        "fifo-inreg-outreg", "fifo-inreg-outreg-depth1", "fifo-inreg", "swg",
        "swg-stride2", "swg-patchify", "swg-unequal", "upsample", "concat", "split", "concat-widths",
        "add-const", "mul-const-row", "thresholds", "thresholds-shared", "thresholds-grouped"])
@pytest.mark.parametrize("sim", SIMS)
def test_bit_exact_under_backpressure(case, sim, tmp_path):
    assert case(tmp_path, backpressure=True, seed=3, sim=sim)["bit_exact"]


def test_verilator_elementwise(tmp_path):
    assert benches.bench_elementwise("add", 8, 4, 3, tmp_path, sim="verilator", seed=4)["bit_exact"]


def test_verilator_thresholding(tmp_path):
    assert benches.bench_thresholding(8, 4, 3, tmp_path, sim="verilator", seed=4, ibits=6, signed_in=False)["bit_exact"]


def test_verilator_swg(tmp_path):
    assert benches.bench_swg(6, 6, 2, 1, (3, 3), (1, 1), tmp_path, sim="verilator", seed=5)["bit_exact"]


@pytest.mark.parametrize("case", [  # configurations not among those the constants were read from
    lambda d: benches.bench_requant(12, 4, 3, d, backpressure=False),
    lambda d: benches.bench_lut(6, 2, 7, d, backpressure=False),
    lambda d: benches.bench_elementwise("mul", 4, 4, 9, d, backpressure=False),
    lambda d: benches.bench_duplicate(6, 3, 5, d, backpressure=False),
    lambda d: benches.bench_fmpad(4, 2, 2, 1, (2, 0, 1, 3), d, backpressure=False),
    lambda d: benches.bench_swg(9, 7, 6, 3, (3, 2), (2, 2), d, backpressure=False),
    lambda d: benches.bench_upsample(3, 2, 6, 3, 3, d, backpressure=False),
    lambda d: benches.bench_concat(2, 8, 2, 3, 1, d, backpressure=False),
    lambda d: benches.bench_concat(6, 3, 3, 1, 4, d, split=True, backpressure=False),
    lambda d: benches.bench_thresholding(6, 2, 5, d, steps=31, obits=5, backpressure=False),
], ids=["requant", "lut", "mul", "duplicate", "pad", "swg", "upsample", "concat", "split", "thresholding"])
def test_cycles_equal_the_model(case, tmp_path):
    report = case(tmp_path)
    assert report["bit_exact"] and report["measured"] == report["modelled"]


# (channels, groups, PE, h, w); the last three have groups of 3 or 6 channels (counted group indices),
# whose words straddle groups or step over one. The statistics' ports (rtl/groupnorm groupnorm_stats):
# a word in one group (4, 2, 2), (6, 3, 1), (4, 1, 4); in 2 or 4 whole groups (8, 4, 4), (12, 4, 6),
# (16, 8, 8); lanes apart (12, 2, 4), (12, 4, 4)
@pytest.mark.parametrize("args", [(4, 2, 2, 2, 2), (8, 4, 4, 3, 3), (6, 3, 1, 4, 2), (4, 1, 4, 2, 3), (16, 8, 8, 2, 2),
                                  (12, 2, 4, 2, 2), (12, 4, 6, 2, 3), (12, 4, 4, 3, 1)], ids=str)
@pytest.mark.parametrize("seed", [0, 1])  # odd seeds make one group constant (D = 0)
@pytest.mark.parametrize("sim", SIMS)
def test_groupnorm_bit_exact(args, seed, sim, tmp_path):
    assert benches.bench_groupnorm(*args, tmp_path, backpressure=True, seed=seed, sim=sim)["bit_exact"]


@pytest.mark.parametrize("args", [(4, 2, 2, 2, 2), (16, 2, 4, 8, 8)], ids=str)
def test_groupnorm_bit_exact_at_the_width_bounds(args, tmp_path):
    """Extreme inputs (the largest variance and the largest z-score a group can have) against the
    narrowed datapath, with the largest gamma and beta magnitudes of the bench."""
    assert benches.bench_groupnorm(*args, tmp_path, backpressure=False, extreme=True)["bit_exact"]


@pytest.mark.parametrize("args", [(4, 2, 2, 2, 2), (6, 3, 1, 4, 2), (16, 2, 4, 8, 8)], ids=str)
@pytest.mark.parametrize("extreme", [False, True])
def test_groupnorm_rounding_of_t_reaches_the_output(args, extreme, tmp_path):
    """Outputs equal to t (plus a rounded beta): every bit of the normalized value's rounding is
    checked, with large groups so the solver's shift k > 0 and the variable rounding shift is used."""
    assert benches.bench_groupnorm(*args, tmp_path, backpressure=False, extreme=extreme, visible_t=True)["bit_exact"]


@pytest.mark.parametrize("bank", [0, 4], ids=["one-buffer", "banked"])
def test_groupnorm_cycles_held_out(bank, tmp_path):
    report = benches.bench_groupnorm(12, 6, 3, 3, 4, tmp_path, backpressure=False, bank=bank)
    assert report["bit_exact"] and report["measured"] == report["modelled"]


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("seed", [1, 2])
def test_groupnorm_banked_buffer_bit_exact(seed, sim, tmp_path):
    """12 words in banks of 4 (and, PE = 2 over 6 x 5 pixels, 45 words in 12 banks, the last partly used)."""
    assert benches.bench_groupnorm(12, 6, 3, 3, 4, tmp_path / "a", seed=seed, sim=sim, bank=4)["bit_exact"]
    assert benches.bench_groupnorm(6, 3, 2, 6, 5, tmp_path / "b", seed=seed, sim=sim, bank=8)["bit_exact"]


@pytest.mark.parametrize("case", [
    lambda d, **k: benches.bench_timestep_table(10, 16, 4, 5, d, **k),
    lambda d, **k: benches.bench_timestep_table(3, 5, 5, 4, d, **k),
    lambda d, **k: benches.bench_broadcast("add", 8, 2, 5, d, **k),
    lambda d, **k: benches.bench_broadcast("mul", 6, 3, 4, d, **k),
], ids=["table", "table-pe5", "bias", "gate"])
@pytest.mark.parametrize("sim", SIMS)
def test_tables_and_broadcast(case, sim, tmp_path):
    assert case(tmp_path, backpressure=True, seed=2, sim=sim)["bit_exact"]
    timed = case(tmp_path / "timed", backpressure=False)
    assert timed["bit_exact"] and timed["measured"] == timed["modelled"]


@pytest.mark.parametrize("sim", SIMS)
def test_requant_at_every_rounding_tie_and_saturation_edge(sim, tmp_path):
    """Half-to-even ties with odd and even floors, and floors at QMIN - 1 .. QMAX + 1, for every
    shift from -1 to 8: random inputs almost never hit these, the shared rounding must."""
    assert benches.bench_requant_edges(tmp_path, sim=sim)["bit_exact"]


@pytest.mark.parametrize("sim", SIMS)
def test_requant_table_outside_its_declared_range_stops_the_simulation(sim, tmp_path):
    """The table path builds requantizers for SHIFT_MIN..SHIFT_MAX only: an entry outside them would
    be computed with the wrong shift, so the block refuses it, naming the file and the entry."""
    with pytest.raises(RuntimeError, match=r"shift.mem entry \d+ is -?\d+, outside SHIFT_MIN..SHIFT_MAX = 0..5"):
        benches.bench_requant(8, 2, 2, tmp_path, sim=sim, seed=3, shift_range=(0, 5))


@pytest.mark.parametrize("sim", SIMS)
def test_per_timestep_group_shift_tables(sim, tmp_path):
    """TDQ-style timestep-dependent precision in hardware: the table is chosen per evaluation."""
    assert benches.bench_grouped_requant(6, 2, 3, 4, 5, tmp_path, sim=sim, seed=7)["bit_exact"]


@pytest.mark.parametrize("bench", [
    lambda d: benches.bench_lut(4, 2, 3, d, groups=3, evaluations=5, seed=3),
    lambda d: benches.bench_elementwise_const("add", 4, 2, 3, d, groups=4, evaluations=5, seed=4),
    lambda d: benches.bench_elementwise_const("mul", 4, 4, 3, d, broadcast=True, groups=2, evaluations=4, seed=5),
], ids=["lut", "add-const", "mul-const-row"])
def test_per_timestep_group_tables_of_tables_and_constants(bench, tmp_path):
    """SiLU tables and constant operands per group, picked per evaluation under back-pressure (the
    other grouped blocks are checked stitched: tests/rtl/test_grouped_rtl.py)."""
    assert bench(tmp_path)["bit_exact"]


def test_verilator_constant_and_grouped_requant(tmp_path):
    """The constant-operand elementwise block and the per-timestep-group requant on Verilator."""
    assert benches.bench_elementwise_const("add", 6, 2, 4, tmp_path / "c", sim="verilator", seed=6)["bit_exact"]
    assert benches.bench_grouped_requant(6, 2, 3, 4, 3, tmp_path / "g", sim="verilator", seed=8)["bit_exact"]
