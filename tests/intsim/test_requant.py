import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fuzz

from hwsim.export.ops import Requant
from hwsim.intsim import kernels
from hwsim.intsim.ops.requant import AccumulatorOverflow, check_range, requant_ref, round_shift_ref


def test_ties_round_to_even():
    x = np.array([5, 7, -5, -7, 6, -6, 4, 3], dtype=np.int64)  # /2: 2.5 3.5 -2.5 -3.5 3 -3 2 1.5
    assert round_shift_ref(x, 1).tolist() == [2, 4, -2, -4, 3, -3, 2, 2]


def test_matches_float64_round_half_even():
    """The definition: Brevitas' torch.round / qonnx's np.round of acc * 2^-shift."""
    rng = np.random.default_rng(0)
    acc = rng.integers(-(2**40), 2**40, 100000)
    for shift in (-3, 0, 1, 2, 7, 17):
        assert np.array_equal(round_shift_ref(acc, shift), np.round(acc * 2.0**-shift).astype(np.int64))


@settings(max_examples=fuzz(300), deadline=None)
@given(
    st.lists(st.integers(-(2**50), 2**50), min_size=1, max_size=64),
    st.integers(-8, 40),
    st.integers(2, 16),
)
def test_kernel_equals_reference(values, shift, bits):
    acc = np.array(values, dtype=np.int64)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert np.array_equal(kernels.requant(acc, [shift], 0, qmin, qmax), requant_ref(acc, shift, qmin, qmax))


@settings(max_examples=fuzz(200), deadline=None)
@given(st.data(), st.integers(1, 3), st.integers(1, 6), st.integers(1, 7), st.integers(2, 16))
def test_per_channel_kernel_equals_op_reference(data, batch, channels, inner, bits):
    """Per-channel shifts along axis 1, as the graph's Requant nodes carry them."""
    acc = np.array(data.draw(st.lists(st.integers(-(2**40), 2**40), min_size=batch * channels * inner,
                                      max_size=batch * channels * inner)), dtype=np.int64).reshape(batch, channels, inner)
    shifts = data.draw(st.lists(st.integers(-8, 40), min_size=channels, max_size=channels))
    attrs = {"shifts": shifts, "axis": 1, "qmin": -(2 ** (bits - 1)), "qmax": 2 ** (bits - 1) - 1}
    expect = Requant.compute([acc], attrs)
    assert np.array_equal(kernels.requant(acc, shifts, 1, attrs["qmin"], attrs["qmax"]), expect)


def test_overflow_names_the_node():
    with pytest.raises(AccumulatorOverflow, match=r"node 'down.0.conv1': values in \[-300, 5\] overflow .*\[-256, 255\]"):
        check_range(np.array([-300, 5]), -256, 255, "down.0.conv1")
    assert check_range(np.array([-300, 5]), -256, 255, "n", saturate=True).tolist() == [-256, 5]
