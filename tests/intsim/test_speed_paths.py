"""Every fast path of the simulator's kernels equals the int64 reference, at the exactness bound too.

The GEMMs run in float32 / float64 BLAS only when |every partial sum| is proven below 2^24 / 2^53;
these tests put inputs exactly at those bounds, and check that a node above 2^53 keeps int64.
"""

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import fuzz

from hwsim.export.ops import DOMAIN, IntConv, IntLinear, IntMatMul, make_node
from hwsim.intsim import kernels
from hwsim.intsim.executor import Simulator, _gemm_bound
from hwsim.intsim.ops.lut import lut_ref
from hwsim.intsim.ops.norm import groupnorm_ref
from hwsim.intsim.ops.requant import check_range, requant_ref
from hwsim.intsim.ops.softmax import softmax_ref

F32, F64 = kernels.FLOAT32_EXACT, kernels.FLOAT64_EXACT


def _operands(rng, shape_x, shape_w, amax, wmax, extreme):
    """Random int64 operands, or every value at its maximum magnitude with random signs."""
    if extreme:
        return rng.choice([-amax, amax - 1], shape_x), rng.choice([-wmax, wmax], shape_w)
    return rng.integers(-amax, amax, shape_x), rng.integers(-wmax, wmax + 1, shape_w)


@settings(max_examples=fuzz(40), deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(2, 9), st.sampled_from([1, 2, 3]),
       st.sampled_from([1, 2]), st.integers(2, 8), st.integers(2, 8), st.booleans(), st.data())
def test_conv_paths_equal_reference(n, c, oc, size, k, stride, abits, wbits, extreme, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    amax, wmax = 2 ** (abits - 1), 2 ** (wbits - 1) - 1
    x, w = _operands(rng, (n, c, size, size), (oc, c, k, k), amax, wmax, extreme)
    b = rng.integers(-1000, 1000, oc)
    pads = data.draw(st.lists(st.integers(0, k - 1), min_size=4, max_size=4))
    attrs = {"strides": [stride, stride], "pads": pads}
    ref = IntConv.compute([x, w, b], attrs)
    bound = int(np.abs(w).reshape(oc, -1).sum(1).max()) * amax
    for used in (bound, F32, 2**60):  # float32 (bound < 2^24 here), float64, int64
        assert np.array_equal(kernels.int_conv(x, w, b, attrs["strides"], pads, used), ref)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_whose_kernel_exceeds_the_padded_input_is_empty_as_the_reference(stride):
    """Found by the fuzz test above: a 3x3 kernel on an unpadded 2x2 map has no output position."""
    x, w, b = np.ones((1, 1, 2, 2), np.int64), np.ones((1, 1, 3, 3), np.int64), np.array([5])
    ref = IntConv.compute([x, w, b], {"strides": [stride, stride], "pads": [0, 0, 0, 0]})
    for used in (9, 2**60):
        out = kernels.int_conv(x, w, b, [stride, stride], [0, 0, 0, 0], used)
        assert out.shape == ref.shape == (1, 1, 0, 0)


@pytest.mark.parametrize("stride", [1, 2])

def test_conv_at_the_float32_bound(stride):
    """Every product at +-128 * 127 and every sum at its largest magnitude just below 2^24."""
    c = (F32 - 1) // (9 * 128 * 127)  # 113 input channels of a 3x3 kernel
    x = np.full((1, c, 5, 5), -128, dtype=np.int64)
    w = np.full((2, c, 3, 3), -127, dtype=np.int64)
    w[1] = 127
    bound = 9 * c * 128 * 127
    assert bound < F32 and kernels.gemm_dtype(bound) is np.float32
    attrs = {"strides": [stride, stride], "pads": [1, 1, 1, 1]}
    ref = IntConv.compute([x, w, np.array([0, 0])], attrs)
    assert ref.max() == bound and ref.min() == -bound
    assert np.array_equal(kernels.int_conv(x, w, np.array([0, 0]), attrs["strides"], attrs["pads"], bound), ref)


def test_linear_at_the_float64_bound():
    """float64 exact just below 2^53: partial sums of up to 7 products of 2^30 * 2^20, every sign order."""
    rng = np.random.default_rng(0)
    x = rng.choice([-(2**20), 2**20 - 1], (16, 7))
    w = rng.choice([-(2**30), 2**30 - 1, 2**30 - 3], (5, 7))
    b = rng.integers(-10, 10, 5)
    bound = 7 * 2**30 * 2**20
    assert F32 <= bound < F64 and kernels.gemm_dtype(bound) is np.float64
    assert np.array_equal(kernels.int_linear(x, w, b, bound), IntLinear.compute([x, w, b], {}))
    x3 = x.reshape(4, 4, 7)  # batch axes folded into one GEMM
    assert np.array_equal(kernels.int_linear(x3, w, b, bound), IntLinear.compute([x3, w, b], {}))


@settings(max_examples=fuzz(40), deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 40), st.integers(1, 9), st.integers(2, 16),
       st.integers(2, 16), st.booleans(), st.data())
def test_linear_and_matmul_paths_equal_reference(batch, rows, inner, cols, abits, wbits, extreme, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    amax, wmax = 2 ** (abits - 1), 2 ** (wbits - 1) - 1
    x, w = _operands(rng, (batch, rows, inner), (cols, inner), amax, wmax, extreme)
    b = rng.integers(-1000, 1000, cols)
    bound = int(np.abs(w).sum(1).max()) * amax
    ref = IntLinear.compute([x, w, b], {})
    for used in (bound, max(bound, F32), 2**60):
        assert np.array_equal(kernels.int_linear(x, w, b, used), ref)
    y = rng.choice([-wmax, wmax], (batch, inner, cols)) if extreme else rng.integers(-wmax, wmax + 1, (batch, inner, cols))
    ref = IntMatMul.compute([x, y], {})
    for used in (amax * wmax * inner, max(amax * wmax * inner, F32), 2**60):
        assert np.array_equal(kernels.int_matmul(x, y, used), ref)


def test_float_gemm_would_round_above_its_bound():
    """The bounds are tight: one more unit of magnitude and the float types round."""
    assert float(np.float32(F32 + 1)) != F32 + 1 and float(np.float64(F64 + 1)) != F64 + 1
    assert kernels.gemm_dtype(F32 - 1) is np.float32 and kernels.gemm_dtype(F64 - 1) is np.float64
    assert kernels.gemm_dtype(F64) is None and kernels.gemm_dtype(None) is None


def _linear_graph(path, w: np.ndarray, in_bits: int, out_bits: int):
    """x (float) -> QuantInput (INT<in_bits>) -> IntLinear with constant w -> y (declared INT<out_bits>)."""
    k, lo, hi = w.shape[1], -(2 ** (in_bits - 1)), 2 ** (in_bits - 1) - 1
    nodes = [make_node("QuantInput", ["x"], ["q"], "quant", exponent=0, qmin=lo, qmax=hi),
             make_node("IntLinear", ["q", "w", "b"], ["y"], "big_linear")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, k]),
                     helper.make_tensor_value_info("t", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [None, w.shape[0]])],
        [numpy_helper.from_array(w.astype(np.int64), "w"), numpy_helper.from_array(np.zeros(w.shape[0], np.int64), "b")])
    for name, bits in (("q", in_bits), ("y", out_bits)):
        ann = onnx.TensorAnnotation(tensor_name=name)
        ann.quant_parameter_tensor_names.add(key="finn_datatype", value=f"INT{bits}")
        graph.quantization_annotation.append(ann)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(DOMAIN, 1)])
    onnx.save(model, str(path))
    return path


def test_node_above_2_53_takes_the_integer_path(tmp_path):
    """A bound >= 2^53 keeps int64: there float64 would round 2^53 + 1 to 2^53, so the exact
    result through the simulator shows that the integer path ran."""
    w = np.array([[2**52, 2**52, 1]])
    sim = Simulator(_linear_graph(tmp_path / "g.onnx", w, in_bits=3, out_bits=64))
    bound = sim.gemm_bounds["big_linear"]
    assert bound == _gemm_bound("IntLinear", ["q", "w", "b"], sim.consts, sim.ranges) == 4 * (2**53 + 1)
    assert kernels.gemm_dtype(bound) is None
    q = np.array([[1, 1, 1], [-4, 3, 2]], dtype=np.int64)
    expect = q @ w.T  # 2^53 + 1 in the first row: not a float64
    assert not np.array_equal((q.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64), expect)
    got = sim.run_integers(q.astype(np.float64), np.zeros(2, dtype=np.int64))
    assert np.array_equal(got["q"], q) and np.array_equal(got["y"], expect)
    assert np.array_equal(Simulator(sim.path, reference=True).run_integers(q.astype(np.float64), np.zeros(2, np.int64))["y"], expect)


def test_narrowed_output_of_proven_node_is_still_checked(tmp_path):
    """Checks are skipped only where the input ranges prove the output's: a narrowed output still overflows."""
    w = np.array([[3, -2, 1]])
    path = _linear_graph(tmp_path / "g.onnx", w, in_bits=4, out_bits=8)
    sim = Simulator(path)
    assert "big_linear" in sim._proven()  # |y| <= 6 * 8 = 48 fits INT8: no check needed
    x = np.array([[-8.0, 7.0, -8.0]])  # y = -24 - 14 - 8 = -46
    assert sim.run_integers(x, np.zeros(1, np.int64))["y"].tolist() == [[-46]]
    sim.ranges["y"] = (-4, 3)
    assert "big_linear" not in sim._proven()
    with pytest.raises(OverflowError, match="node 'big_linear'"):
        sim.run_integers(x, np.zeros(1, np.int64))


@settings(max_examples=fuzz(60), deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 50), st.integers(-6, 40), st.integers(2, 16),
       st.booleans(), st.data())
def test_requant_both_layouts_equal_reference(outer, channels, inner, shift, bits, per_channel, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    acc = rng.integers(-(2**45), 2**45, (outer, channels, inner))
    acc.flat[0], acc.flat[-1] = -(2**45), 2**45  # extremes
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    shifts = [int(s) for s in rng.integers(-6, 40, channels)] if per_channel and channels > 1 else [shift]
    expect = np.stack([requant_ref(acc[:, c], shifts[c if len(shifts) > 1 else 0], qmin, qmax) for c in range(channels)], 1)
    assert np.array_equal(kernels.requant(acc, shifts, 1, qmin, qmax), expect)


def test_lut_checks_its_domain_in_the_same_pass():
    table = np.arange(10, 26, dtype=np.int64)
    q = np.array([[-8, 7, 0], [3, -8, 7]])
    assert np.array_equal(kernels.lut(q, table, -8), lut_ref(q, table, -8))
    for bad in (-9, 8):
        with pytest.raises(ValueError, match=r"outside its domain \[-8, 7\]"):
            kernels.lut(np.array([[0, bad]]), table, -8)


def test_groupnorm_and_softmax_kernels_at_extremes():
    rng = np.random.default_rng(1)
    q = rng.choice([-128, 127], (3, 8, 5, 5)).astype(np.int64)
    q[0] = 127  # a constant group: D = 0
    g, b = rng.integers(-300, 300, 8), rng.integers(-(2**20), 2**20, 8)
    a = {"groups": 4, "ft": 10, "fg": 8, "qmin": -128, "qmax": 127}
    assert np.array_equal(kernels.groupnorm(q, g, b, a), groupnorm_ref(q, 4, g, b, 10, 8, -128, 127))
    table = np.round(np.exp(-np.arange(256) / 16.0) * 2**15).astype(np.int64)
    s = rng.choice([-128, 127], (2, 3, 17))
    assert np.array_equal(kernels.softmax(s, table, 8), softmax_ref(s.reshape(-1, 17), table, 8).reshape(s.shape))


@pytest.mark.parametrize("top, fo", [(2**15, 8), (2**15, 30), (2**40, 12), (2**44, 2)])
def test_softmax_quotients_float_and_integer(top, fo):
    """The float64 reciprocal path (numerator and divisor below 2^52) and the int64 division beyond
    it give the reference's quotients, at every rounding boundary the random rows reach."""
    rng = np.random.default_rng(fo)
    table = np.maximum(np.round(np.exp(-np.arange(256) / 7.0) * top), 1).astype(np.int64)
    s = rng.integers(-128, 128, (300, 49))
    s[:5] = 0  # equal values: quotients on exact ties
    expect = softmax_ref(s, table, fo)
    assert np.array_equal(kernels.softmax(s, table, fo), expect)


def test_check_range_on_views_and_contiguous():
    v = np.arange(-5, 7).reshape(3, 4)
    assert np.array_equal(check_range(v.T, -5, 6, "n"), v.T) and np.array_equal(check_range(v, -5, 6, "n"), v)
    with pytest.raises(OverflowError, match=r"\[-5, 6\]"):
        check_range(v, -5, 5, "n")
    with pytest.raises(OverflowError, match=r"\[-5, 6\]"):
        check_range(v.T, -4, 6, "n")
