import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fuzz

from hwsim.intsim.ops.softmax import build_exp_table, softmax_kernel, softmax_ref


def test_close_to_float_softmax():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (64, 49))
    s = 2.0**-4
    out = softmax_ref(q, build_exp_table(s, 16, 256), 8)
    expect = torch.softmax(torch.from_numpy(q * s), -1).numpy() * 256
    assert np.abs(out - expect).max() <= 1.0
    assert np.all(np.abs(out.sum(-1) - 256) <= 49)


def test_table_tail_is_zero_and_clamped():
    table = build_exp_table(1.0, 8, 16)
    assert table[0] == 256 and table[-1] == 0
    out = softmax_ref(np.array([[100, 0, -100]]), table, 8)
    assert out.tolist() == [[256, 0, 0]]


@settings(max_examples=fuzz(200), deadline=None)
@given(st.integers(1, 4), st.integers(1, 40), st.integers(2, 9), st.integers(-6, 0), st.data())
def test_kernel_equals_reference(rows, length, bits, exp, data):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    q = rng.integers(lo, hi + 1, (rows, length)).astype(np.int64)
    table = build_exp_table(2.0**exp, 15, 2**bits)
    assert np.array_equal(softmax_kernel(q, table, 8), softmax_ref(q, table, 8))
