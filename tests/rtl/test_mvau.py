"""The MVAU block against hwsim's integer reference (IntLinear + per-channel Requant), on Icarus and
Verilator, with random gaps and back-pressure; its measured cycles against the cost model."""

import pytest

from hwsim.rtlgen.benches import DynamicMvauConfig, MvauConfig, bench_dynamic_mvau, bench_mvau, mvau_node
from tests.rtl import SIMS

CONFIGS = [
    MvauConfig(8, 4, 2, 4),
    MvauConfig(12, 6, 3, 1, WBITS=8),
    MvauConfig(16, 8, 8, 16, WBITS=2, ABITS=4, SIGNED_IN=False),
    MvauConfig(9, 4, 1, 3, ACTIVATION=False),
    MvauConfig(6, 3, 3, 2, WBITS=3, ABITS=5),
    MvauConfig(12, 6, 3, 2, WBITS=8, LUT_MULT=True),  # shift-add products (rtl/common/multiply.vh)
    MvauConfig(8, 4, 4, 8, WBITS=1, ABITS=6, SIGNED_IN=False, LUT_MULT=True),
    MvauConfig(12, 6, 3, 2, WBITS=8, SHIFT_CONST=True),  # one shift, no table (exports' per-tensor scales)
    MvauConfig(16, 12, 1, 2, WBANK=16),  # banked weights: 96 words in 6 banks
    MvauConfig(12, 6, 2, 2, WBITS=8, WBANK=4),  # 18 words, the last of 5 banks partly filled; counted address
    # group-shifted weights (q << shift per group of inputs): groups inside a word, a group over words,
    # a word of 3 groups padded to 4 in the adder tree, one group per input, and with banked weights
    MvauConfig(16, 4, 2, 8, WGROUP=4),
    MvauConfig(24, 4, 2, 4, WGROUP=8, GSBITS=2, LUT_MULT=True),
    MvauConfig(24, 4, 2, 24, WGROUP=8, ACTIVATION=False),
    MvauConfig(16, 6, 3, 16, WGROUP=1),
    MvauConfig(32, 8, 2, 2, WGROUP=8, WBANK=16),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("sim", SIMS)
def test_mvau_bit_exact_under_backpressure(cfg, sim, tmp_path):
    assert bench_mvau(cfg, tmp_path, sim, backpressure=True, seed=1)["bit_exact"]


@pytest.mark.parametrize("sim", SIMS)
def test_shift_table_outside_its_declared_range_stops_the_simulation(sim, tmp_path):
    """The fused requant builds requantizers for SHIFT_MIN..SHIFT_MAX only (rtl/common/shift_table.vh):
    an entry outside them would take the wrong shift, so the block refuses it, naming file and entry."""
    with pytest.raises(RuntimeError, match=r"shift.mem entry \d+ is -?\d+, outside SHIFT_MIN..SHIFT_MAX = 0..3"):
        bench_mvau(CONFIGS[0], tmp_path, sim, seed=1, shift_range=(0, 3))


@pytest.mark.parametrize("sim", SIMS)
def test_group_that_simd_neither_divides_nor_is_a_multiple_of_stops_the_simulation(sim, tmp_path):
    with pytest.raises(RuntimeError, match=r"WGROUP=4 needs static dense weights, a power of two dividing MW=24, and SIMD=6"):
        bench_mvau(MvauConfig(24, 4, 2, 6, WGROUP=4), tmp_path, sim, seed=1)


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[9], CONFIGS[-1]], ids=str)
def test_mvau_bit_exact_verilator(cfg, tmp_path):
    assert bench_mvau(cfg, tmp_path, "verilator", backpressure=True, seed=2)["bit_exact"]


@pytest.mark.parametrize("cfg", [MvauConfig(24, 12, 4, 6, NIV=2), MvauConfig(10, 10, 5, 2, ACTIVATION=False),
                                 MvauConfig(12, 6, 2, 2, WBITS=8, NIV=2, WBANK=4),
                                 MvauConfig(32, 4, 1, 4, NIV=2, WGROUP=16), MvauConfig(16, 4, 2, 16, NIV=2, WGROUP=4)], ids=str)
def test_mvau_cycles_equal_the_model(cfg, tmp_path):
    """Configurations not among those the MVAU's latency constants were read from."""
    report = bench_mvau(cfg, tmp_path, "icarus", backpressure=False)
    assert report["bit_exact"] and report["measured"] == report["modelled"]


SPARSE_HELD_OUT = [MvauConfig(24, 6, 2, 3, N=2, M=4, NIV=2), MvauConfig(32, 16, 4, 4, N=1, M=8, ACTIVATION=False),
                   MvauConfig(24, 6, 2, 2, N=2, M=4, NIV=2)]  # SF = 6 words, NF = 3: counted weight/index address


@pytest.mark.parametrize("cfg", SPARSE_HELD_OUT, ids=str)
def test_sparse_mvau_bit_exact_and_cycles(cfg, tmp_path):
    assert bench_mvau(cfg, tmp_path / "bp", "icarus", backpressure=True, seed=4)["bit_exact"]
    report = bench_mvau(cfg, tmp_path / "timed", "icarus", backpressure=False)
    assert report["bit_exact"] and report["measured"] == report["modelled"]


def test_cycles_fall_with_sparsity_as_modelled(tmp_path):
    """8 channel groups of 4 input words: 2:4 and 1:4 beat dense, as break_even_density says."""
    measured = {}
    for n, m in ((1, 1), (2, 4), (1, 4)):
        cfg = MvauConfig(16, 8, 1, 4, N=n, M=m, NIV=2)
        report = bench_mvau(cfg, tmp_path / f"{n}-{m}", "icarus", backpressure=False)
        assert report["bit_exact"] and report["measured"] == report["modelled"]
        measured[n / m] = report["measured"]["ii"]
    assert measured[1.0] > measured[0.5] > measured[0.25]
    assert 0.5 < mvau_node(MvauConfig(16, 8, 1, 4, N=2, M=4)).break_even_density()["cycles"]


DYNAMIC = [DynamicMvauConfig(4, 6, 1, 1), DynamicMvauConfig(4, 6, 2, 2, ORDER="v"),
           DynamicMvauConfig(8, 4, 4, 2, HEADS=3, ORDER="v", SIGNED_IN=False, ACTIVATION=False),
           DynamicMvauConfig(6, 6, 2, 3, HEADS=3, ORDER="v")]  # counted read address (non-power-of-two sizes)


@pytest.mark.parametrize("cfg", DYNAMIC, ids=str)
@pytest.mark.parametrize("sim", SIMS)
def test_dynamic_mvau_bit_exact_under_backpressure(cfg, sim, tmp_path):
    """Attention's QK^T (operand K^T) and AV (operand V), each operand taken as the mapping streams it."""
    assert bench_dynamic_mvau(cfg, tmp_path, sim, backpressure=True, seed=1)["bit_exact"]


def test_dynamic_mvau_verilator(tmp_path):
    assert bench_dynamic_mvau(DYNAMIC[1], tmp_path, "verilator", backpressure=True, seed=2)["bit_exact"]


@pytest.mark.parametrize("cfg", [DynamicMvauConfig(6, 8, 2, 3, HEADS=2, L=4), DynamicMvauConfig(8, 4, 2, 4, HEADS=1, L=2, ORDER="v")],
                         ids=str)
def test_dynamic_mvau_cycles_equal_the_model(cfg, tmp_path):
    """Held out: the operand load (heads*MW*MH/SIMD beats, not overlapped) plus the dense compute."""
    report = bench_dynamic_mvau(cfg, tmp_path, "icarus", backpressure=False)
    assert report["bit_exact"] and report["measured"] == report["modelled"]
