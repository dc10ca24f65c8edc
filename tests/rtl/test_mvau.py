"""The MVAU block against hwsim's integer reference (IntLinear + per-channel Requant), on Icarus and
Verilator, with random gaps and back-pressure; its measured cycles against the cost model."""

import pytest

from hwsim.rtlgen.benches import MvauConfig, bench_mvau
from tests.rtl import SIMS

CONFIGS = [
    MvauConfig(8, 4, 2, 4),
    MvauConfig(12, 6, 3, 1, WBITS=8),
    MvauConfig(16, 8, 8, 16, WBITS=2, ABITS=4, SIGNED_IN=False),
    MvauConfig(9, 4, 1, 3, ACTIVATION=False),
    MvauConfig(6, 3, 3, 2, WBITS=3, ABITS=5),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("sim", SIMS)
def test_mvau_bit_exact_under_backpressure(cfg, sim, tmp_path):
    assert bench_mvau(cfg, tmp_path, sim, backpressure=True, seed=1)["bit_exact"]


def test_mvau_bit_exact_verilator(tmp_path):
    assert bench_mvau(CONFIGS[0], tmp_path, "verilator", backpressure=True, seed=2)["bit_exact"]


@pytest.mark.parametrize("cfg", [MvauConfig(24, 12, 4, 6, NIV=2), MvauConfig(10, 10, 5, 2, ACTIVATION=False)], ids=str)
def test_mvau_cycles_equal_the_model(cfg, tmp_path):
    """Configurations not among those the MVAU's latency constants were read from."""
    report = bench_mvau(cfg, tmp_path, "icarus", backpressure=False)
    assert report["bit_exact"] and report["measured"] == report["modelled"]
