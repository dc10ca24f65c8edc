"""rtl/softmax against hwsim's integer softmax reference (softmax_ref): bit-exact under random input
gaps and output back-pressure (Icarus, one case on Verilator), and its cycles without back-pressure
against the IntSoftmax cost model."""

import pytest

from hwsim.rtlgen.benches import bench_softmax
from tests.rtl import SIMS


# (length, pe, rows, fo, table): PE 1 and PE > 1, lengths with 1, 2, 3 and more words per row (the
# block keeps 5, 4, 3 slots), non-power-of-two lengths, fo from 3 to 10; tables that saturate on a
# non-zero entry (64 entries at 1/16) and on zeros (40 entries at 1/2), and a 17-bit table (fe 16)
CASES = {
    "l8-pe2": (8, 2, 6, 8, {}),
    "l6-pe1-fo5": (6, 1, 6, 5, {"in_scale": 1 / 2, "table_entries": 40}),
    "l12-pe4-fo10": (12, 4, 7, 10, {"fe": 16}),
    "l5-pe5-fo3": (5, 5, 8, 3, {"in_scale": 1 / 4}),
    "l10-pe5-fo7": (10, 5, 6, 7, {"in_scale": 1 / 2, "table_entries": 40}),
    "l9-pe3-fo6": (9, 3, 6, 6, {"fe": 16, "table_entries": 256}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("sim", SIMS)
def test_softmax_bit_exact_under_backpressure(case, sim, tmp_path):
    length, pe, rows, fo, extra = case
    for seed in (0, 1) if sim == "icarus" else (0,):  # a Verilator build costs ~15 s
        report = bench_softmax(length, pe, rows, tmp_path / str(seed), sim=sim, backpressure=True, seed=seed, fo=fo,
                               **extra)
        assert report["bit_exact"] and report["saturated"] > 0


def test_softmax_bit_exact_verilator(tmp_path):
    assert bench_softmax(6, 2, 6, tmp_path, sim="verilator", backpressure=True, seed=4, fo=7)["bit_exact"]


@pytest.mark.parametrize("case", [(8, 2, 3, 8), (1, 1, 4, 4), (4, 2, 3, 6), (15, 5, 2, 7), (7, 1, 3, 9), (16, 4, 2, 2)],
                         ids=str)
def test_softmax_cycles_equal_the_formula(case, tmp_path):
    """IntSoftmax's cycles measured: rows of 4, 1, 2, 3, 7 and 4 words (the formula was read off the
    first; the rest are held out)."""
    length, pe, rows, fo = case
    report = bench_softmax(length, pe, rows, tmp_path, backpressure=False, seed=7, fo=fo)
    assert report["bit_exact"] and report["measured"] == report["modelled"]
