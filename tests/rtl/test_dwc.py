"""rtl/dwc, the data-width converter: bit-exact under random gaps and back-pressure for up, down,
non-multiple and equal conversions (several evaluations back to back), and its cycles without
back-pressure equal to the StreamingDataWidthConverter cost model on configurations held out of its derivation."""

import math

import pytest

from hwsim.dataflow.ecp5 import dwc_data_inputs
from hwsim.rtlgen.benches import bench_dwc, dwc_node, dwc_size
from tests.rtl import SIMS

CONVERSIONS = {  # (IN, OUT, ELEMENTS, BITS)
    "up-1-4": (1, 4, 8, 8),
    "up-2-6": (2, 6, 12, 5),
    "down-4-1": (4, 1, 8, 8),
    "down-6-2": (6, 2, 12, 1),
    "odd-2-3": (2, 3, 6, 8),
    "odd-3-2": (3, 2, 12, 13),
    "odd-4-6": (4, 6, 12, 8),
    "equal-3-3": (3, 3, 9, 8),
}


@pytest.mark.parametrize("conv", CONVERSIONS.values(), ids=CONVERSIONS.keys())
@pytest.mark.parametrize("sim", SIMS)
def test_bit_exact_under_backpressure(conv, sim, tmp_path):
    i, o, e, bits = conv
    report = bench_dwc(i, o, e, tmp_path, sim=sim, backpressure=True, seed=i * 10 + o, bits=bits, evaluations=3)
    assert report["bit_exact"] and report["evaluations"] == 3


def test_verilator(tmp_path):
    assert bench_dwc(4, 6, 24, tmp_path, sim="verilator", seed=5, evaluations=2)["bit_exact"]


@pytest.mark.parametrize("conv", [(3, 5, 45), (8, 3, 48), (6, 9, 54), (2, 8, 24), (10, 4, 40), (1, 1, 7), (9, 6, 36)],
                         ids=str)
def test_cycles_equal_the_model(conv, tmp_path):
    """Measured II, latency and first-output delay = the cost model's; the slower side never idles."""
    report = bench_dwc(*conv, tmp_path, backpressure=False, bits=4)
    assert report["bit_exact"] and report["measured"] == report["modelled"]
    assert report["slow_side_gaps"] == 0


def test_model_formulas():
    n = dwc_node(2, 3, 12, 8)
    assert (n.get_exp_cycles(), n.first_output_delay(), n.get_latency(), n.buffer_bits()) == (6, 2, 6, 4 * 8)
    assert dwc_node(4, 1, 8, 8).get_exp_cycles() == 8 and dwc_node(1, 4, 8, 8).first_output_delay() == 4
    size = dwc_size(4, 6, 8)
    assert (size["buffer_elements"], size["buffer_bits"], size["count_bits"], size["ff_bits"]) == (8, 64, 3, 67)
    for i in range(1, 9):
        for o in range(1, 9):
            g, n = math.gcd(i, o), dwc_data_inputs(i, o)
            assert len(n) * g == dwc_size(i, o, 3)["buffer_elements"]
            assert sum(n) * g * 3 == dwc_size(i, o, 3)["mux_input_bits"]
    with pytest.raises(ValueError):
        dwc_node(4, 6, 18, 8)  # 4 does not divide 18
