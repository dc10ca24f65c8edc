import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fuzz

from hwsim.export.ops import IntConv
from hwsim.intsim import kernels


@settings(max_examples=fuzz(60), deadline=None)
@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 5), st.integers(3, 9), st.sampled_from([1, 3]),
       st.sampled_from([1, 2]), st.integers(2, 8), st.integers(2, 8), st.booleans(), st.data())
def test_int_conv_equals_reference(n, c, oc, size, k, stride, abits, wbits, extreme, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    amax, wmax = 2 ** (abits - 1), 2 ** (wbits - 1) - 1
    x = rng.choice([-amax, amax - 1], (n, c, size, size)) if extreme else rng.integers(-amax, amax, (n, c, size, size))
    w = rng.choice([-wmax, wmax], (oc, c, k, k)) if extreme else rng.integers(-wmax, wmax + 1, (oc, c, k, k))
    b = rng.integers(-1000, 1000, oc)
    pads = data.draw(st.lists(st.integers(0, k - 1), min_size=4, max_size=4))  # asymmetric, as ONNX allows
    attrs = {"strides": [stride, stride], "pads": pads}
    ref = IntConv.compute([x, w, b], attrs)
    bound = int(np.abs(w).reshape(oc, -1).sum(1).max() * amax + 1000)
    for b_used in (bound, 2**30, 2**60):  # float32, float64 and int64 paths
        assert np.array_equal(kernels.int_conv(x, w, b, attrs["strides"], attrs["pads"], b_used), ref)


def test_gemm_dtype_thresholds():
    assert kernels.gemm_dtype(2**24 - 1) is np.float32
    assert kernels.gemm_dtype(2**24) is np.float64
    assert kernels.gemm_dtype(2**53) is None
