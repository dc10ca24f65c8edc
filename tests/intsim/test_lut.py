import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fuzz

from hwsim.intsim.ops.lut import build_table, int_range, lut_kernel, lut_ref


@pytest.mark.parametrize("fn, torch_fn", [("silu", torch.nn.functional.silu),
                                          ("gelu_tanh", lambda x: torch.nn.functional.gelu(x, approximate="tanh"))])
def test_table_is_the_quantized_function(fn, torch_fn):
    table = build_table(fn, 8, True, 2.0**-4, 8, True, 2.0**-5)
    x = torch.arange(-128, 128, dtype=torch.float64) * 2.0**-4
    expect = torch.clamp(torch.round(torch_fn(x) / 2.0**-5), -128, 127).long().numpy()
    assert np.array_equal(table, expect)


@settings(max_examples=fuzz(200), deadline=None)
@given(st.integers(2, 10), st.booleans(), st.integers(-8, 2), st.data())
def test_kernel_equals_reference(bits, signed, exp, data):
    lo, hi = int_range(bits, signed)
    table = build_table("silu", bits, signed, 2.0**exp, 8, True, 2.0**exp)
    q = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=50)), dtype=np.int64)
    assert np.array_equal(lut_kernel(q, table, lo), lut_ref(q, table, lo))


def test_out_of_domain_and_unknown_function():
    table = build_table("identity", 4, False, 1.0, 4, False, 1.0)
    assert lut_ref(np.array([0, 15]), table, 0).tolist() == [0, 15]
    with pytest.raises(ValueError, match=r"outside its domain \[0, 15\]"):
        lut_ref(np.array([16]), table, 0)
    with pytest.raises(ValueError, match="unknown LUT function 'tanh'"):
        build_table("tanh", 4, False, 1.0, 4, False, 1.0)
