import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from hwsim.intsim import amx, vnni

pytestmark = pytest.mark.skipif(not vnni.available(), reason="CPU (or NUMBA_CPU_NAME target) lacks AVX-512 VNNI")
# the int8 kernels share their contract: the tests below run on each (tests/intsim/test_amx.py has AMX's own shapes)
BACKENDS = pytest.mark.parametrize("backend", [vnni, pytest.param(amx, marks=pytest.mark.skipif(
    not amx.available(), reason="CPU (or OS, or NUMBA_CPU_NAME target) lacks AMX-INT8"))], ids=["vnni", "amx"])


def conv_ref(x, w, pads):
    """Stride-1 conv in int64, [N, OH, OW, OC] (the layout of conv_s1)."""
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))  # [N, C, OH, OW, KH, KW]
    return np.einsum("ncijuv,ocuv->nijo", win, w.astype(np.int64))


def run(x, w, pads, backend=vnni):
    out = backend.conv_s1(x, backend.pack_weights(w), pads)
    assert out is not None and out.dtype == np.int32
    return out


@pytest.mark.parametrize("n, c, oc, h, wd, k, pads", [
    (2, 5, 3, 7, 9, 3, (1, 1, 1, 1)),
    (3, 32, 32, 8, 8, 3, (1, 1, 1, 1)),
    (1, 3, 17, 5, 6, 3, (0, 0, 0, 0)),
    (2, 7, 48, 9, 7, 3, (1, 1, 1, 1)),
    (2, 16, 1, 6, 5, 3, (1, 0, 1, 2)),  # asymmetric pads
    (3, 4, 9, 5, 6, 3, (0, 2, 2, 0)),  # padding on one side only (shared with the next row / image)
    (2, 5, 8, 6, 4, 3, (2, 1, 0, 1)),
    (2, 96, 96, 7, 7, 3, (1, 1, 1, 1)),  # two groups of 3 output vectors
    (1, 9, 80, 11, 13, 3, (0, 0, 0, 0)),  # groups of 3 and 2
    (2, 12, 128, 4, 4, 3, (1, 1, 1, 1)),  # groups of 4 and 4
    (2, 6, 20, 5, 3, 1, (0, 0, 0, 0)),  # 1x1
    (2, 5, 4, 6, 5, 3, (1, 1, 1, 1)),  # one tile of each width NO = 1..8 across these cases
    (1, 8, 7, 5, 7, 3, (1, 1, 1, 1)),
    (1, 4, 16, 3, 3, 3, (0, 0, 0, 0)),  # a single output pixel per image
    (65, 2, 2, 1, 1, 3, (1, 1, 1, 1)),  # more tiles than rows per image
])
@pytest.mark.parametrize("wbits", [8, 4])
def test_conv_s1_equals_reference(n, c, oc, h, wd, k, pads, wbits):
    check_random_conv(n, c, oc, h, wd, k, pads, wbits, vnni)


def check_random_conv(n, c, oc, h, wd, k, pads, wbits, backend):
    """A random int8 input and ``wbits`` weights through ``backend``, equal to the int64 reference."""
    rng = np.random.default_rng(n * 1000 + c * 10 + oc + wbits)
    x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int32)
    wmax = 2 ** (wbits - 1)
    w = rng.integers(-wmax, wmax, (oc, c, k, k))
    np.testing.assert_array_equal(run(x, w, pads, backend), conv_ref(x, w, pads))


@BACKENDS
@pytest.mark.parametrize("xv, wv", [(-128, 127), (-128, -128), (127, -128), (127, 127)])
def test_conv_s1_extremes(xv, wv, backend):
    x = np.full((2, 37, 6, 5), xv, dtype=np.int8)
    w = np.full((19, 37, 3, 3), wv, dtype=np.int8)
    np.testing.assert_array_equal(run(x, w, (1, 1, 1, 1), backend), conv_ref(x, w, (1, 1, 1, 1)))


@BACKENDS
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64, np.uint8])
def test_conv_s1_input_dtypes(dtype, backend):
    rng = np.random.default_rng(1)
    lo = 0 if dtype == np.uint8 else -128
    x = rng.integers(lo, 128, (2, 6, 5, 5)).astype(dtype)
    w = rng.integers(-128, 128, (5, 6, 3, 3))
    np.testing.assert_array_equal(run(x, w, (1, 1, 1, 1), backend), conv_ref(x, w, (1, 1, 1, 1)))


@BACKENDS
def test_fallback_returns_none(backend):
    x = np.zeros((1, 4, 5, 5), dtype=np.int32)
    w = np.ones((2, 4, 3, 3), dtype=np.int64)
    packed = backend.pack_weights(w)
    for bad in (128, -129, 2**40):
        xb = x.astype(np.int64)
        xb[0, 3, 4, 4] = bad
        assert backend.conv_s1(xb, packed, (1, 1, 1, 1)) is None
    assert backend.conv_s1(x.astype(np.uint64), packed, (1, 1, 1, 1)) is None
    assert backend.conv_s1(x.astype(np.float32), packed, (1, 1, 1, 1)) is None
    assert backend.conv_s1(x, None, (1, 1, 1, 1)) is None
    if backend is vnni:  # pads of a kernel's size on both sides: only padding in some outputs, left to BLAS
        assert vnni.conv_s1(x, packed, (3, 0, 3, 0)) is None
    assert backend.pack_weights(np.full((2, 4, 3, 3), 128)) is None
    assert backend.pack_weights(np.full((2, 4, 3, 3), -129)) is None
    assert backend.pack_weights(np.ones((2, 4, 3, 3), dtype=np.float32)) is None
    assert backend.pack_weights(np.full((1, 14564, 3, 3), -128, dtype=np.int8)) is None  # 128 * sum|w| >= 2^31


@BACKENDS
def test_int32_bound_edge(backend):
    """The largest sum the int32 bound admits: 128 * 128 * 131067 = 2^31 - 81920 (for AMX, 228 chunks
    of 64 channels accumulated in the tiles)."""
    x = np.full((1, 14563, 3, 3), -128, dtype=np.int8)
    w = np.full((1, 14563, 3, 3), -128, dtype=np.int8)
    out = run(x, w, (0, 0, 0, 0), backend)
    assert out[0, 0, 0, 0] == 128 * 128 * 14563 * 9 == conv_ref(x, w, (0, 0, 0, 0))[0, 0, 0, 0]


def test_weights_are_packed_once_per_array():
    w = np.ones((2, 4, 3, 3), dtype=np.int8)
    assert vnni.packed_for(w) is vnni.packed_for(w)
    assert vnni.packed_for(w.copy()) is not vnni.packed_for(w)


@pytest.mark.parametrize("addend", ["none", "per-channel", "full"])
@pytest.mark.parametrize("requant", [False, True])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_int_conv_takes_the_vnni_path_and_equals_blas(monkeypatch, addend, requant, strides):
    """kernels.int_conv runs int8 convs on this kernel where AMX does not take them, with its
    plane-major epilogue (bias, a per-sample per-channel addend or a full one, a requantization):
    the same result as the BLAS path's epilogue."""
    from hwsim.intsim import amx, kernels

    monkeypatch.setattr(amx, "pays", lambda shape: False)

    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (3, 12, 9, 7)).astype(np.int8)
    w = rng.integers(-8, 8, (19, 12, 3, 3)).astype(np.int8)
    b = rng.integers(-1000, 1000, 19)
    oh, ow = (9 - 1) // strides[0] + 1, (7 - 1) // strides[1] + 1
    extra = {"none": None, "per-channel": rng.integers(-5000, 5000, (3, 19, 1, 1)),
             "full": rng.integers(-5000, 5000, (3, 19, oh, ow)).astype(np.int32)}[addend]
    rq = kernels.rq_for({"shifts": list(rng.integers(-1, 6, 19)), "axis": 1, "qmin": -128, "qmax": 127},
                        (3, 19, 1, 1), 1) if requant else None
    dtype = np.int8 if requant else np.int32

    def conv():
        return kernels.int_conv(x, w, b, strides, (1, 1, 1, 1), 2**20, dtype, extra, rq)

    calls = []
    real = vnni.conv_s1_planes
    monkeypatch.setattr(vnni, "conv_s1_planes", lambda *a: calls.append(real(*a)) or calls[-1])
    got = conv()
    assert len(calls) == 1 and calls[0] is not None
    monkeypatch.setattr(vnni, "conv_s1_planes", lambda *a: None)
    np.testing.assert_array_equal(got, conv())
    if addend == "none" and not requant and strides == (1, 1):
        np.testing.assert_array_equal(got, conv_ref(x, w, (1, 1, 1, 1)).transpose(0, 3, 1, 2) + b[None, :, None, None])


@pytest.mark.parametrize("n, c, oc, h, wd, k, strides, pads", [
    (2, 16, 16, 28, 28, 3, (2, 2), (1, 1, 1, 1)),  # the U-Net's downsampling
    (1, 5, 7, 9, 8, 3, (2, 2), (1, 1, 1, 1)),  # odd sizes
    (2, 3, 4, 7, 7, 3, (2, 2), (0, 0, 0, 0)),
    (1, 6, 20, 10, 11, 3, (3, 2), (2, 1, 0, 1)),  # uneven strides and pads
    (2, 4, 5, 8, 6, 1, (2, 2), (0, 0, 0, 0)),  # 1x1
    (1, 4, 3, 6, 6, 4, (2, 2), (1, 1, 2, 2)),  # a kernel the stride divides
])
def test_strided_conv_equals_reference(n, c, oc, h, wd, k, strides, pads):
    rng = np.random.default_rng(n + c + oc + h)
    x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int8)
    w = rng.integers(-128, 128, (oc, c, k, k)).astype(np.int8)
    want = conv_ref(x, w, pads)[:, :: strides[0], :: strides[1]]
    got = vnni.conv(x, w, strides, pads)
    assert got is not None
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("m, k, n", [(5, 7, 3), (200, 48, 144), (17, 4, 1), (64, 129, 33), (1, 96, 20)])
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_linear_equals_reference(m, k, n, dtype):
    """The swapped-role GEMM (weights as the row vectors) at int8 extremes and odd sizes."""
    rng = np.random.default_rng(m + k + n)
    x = rng.choice([-128, 127, 0, -1, 5], (m, k)).astype(dtype)
    w = rng.choice([-128, 127, 1, -7], (n, k)).astype(np.int8)
    got = vnni.linear(x, vnni.pack_linear(w))
    assert got is not None and got.dtype == np.int32
    np.testing.assert_array_equal(got, x.astype(np.int64) @ w.T.astype(np.int64))


def test_linear_falls_back_outside_int8(monkeypatch):
    from hwsim.intsim import kernels

    w = np.ones((3, 8), dtype=np.int64)
    assert vnni.linear(np.full((2, 8), 128, dtype=np.int16), vnni.pack_linear(w)) is None
    assert vnni.pack_linear(np.full((3, 8), 128)) is None
    x = np.arange(-40, 40, dtype=np.int64).reshape(10, 8) * 3  # some values past int8: BLAS takes it
    b = np.arange(3)
    np.testing.assert_array_equal(kernels.int_linear(x, w, b, 2**20), x @ w.T + b)
    calls = []
    real = vnni.linear
    monkeypatch.setattr(vnni, "linear", lambda *a: calls.append(real(*a)) or calls[-1])
    x8 = (x // 3).astype(np.int8)
    np.testing.assert_array_equal(kernels.int_linear(x8, w, b, 2**20), x8.astype(np.int64) @ w.T + b)
    assert calls[-1] is not None
