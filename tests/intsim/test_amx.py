"""hwsim.intsim.amx equals the int64 reference exactly: channel chunks, output tiles, edges (its extremes,
input dtypes, fallbacks and int32 bound: tests/intsim/test_vnni.py, which runs them on both kernels)."""

import numpy as np
import pytest

from hwsim.intsim import amx, vnni
from tests.intsim.test_vnni import check_random_conv, conv_ref

pytestmark = pytest.mark.skipif(not amx.available(), reason="CPU (or OS, or NUMBA_CPU_NAME target) lacks AMX-INT8")


@pytest.mark.parametrize("n, c, oc, h, wd, k, pads", [
    (2, 5, 3, 7, 9, 3, (1, 1, 1, 1)),  # channels padded to 8, outputs to 16
    (3, 32, 32, 8, 8, 3, (1, 1, 1, 1)),  # one block column of two output tiles
    (2, 48, 48, 7, 7, 3, (1, 1, 1, 1)),  # two output tiles and a single one
    (1, 64, 17, 5, 6, 3, (0, 0, 0, 0)),  # one full 64-channel chunk
    (2, 65, 33, 6, 5, 3, (1, 0, 1, 2)),  # two chunks of 36 channels (asymmetric pads)
    (1, 96, 80, 9, 7, 3, (1, 1, 1, 1)),  # two chunks of 48
    (1, 200, 1, 5, 5, 3, (0, 0, 0, 0)),  # four chunks of 52, one output channel
    (2, 16, 20, 5, 3, 1, (0, 0, 0, 0)),  # 1x1
    (1, 12, 16, 9, 9, 5, (2, 2, 2, 2)),  # 5x5
    (1, 8, 16, 3, 3, 3, (0, 0, 0, 0)),  # a single output pixel per image
    (70, 6, 2, 1, 1, 3, (1, 1, 1, 1)),  # more blocks than rows per image
])
@pytest.mark.parametrize("wbits", [8, 4])
def test_conv_s1_equals_reference(n, c, oc, h, wd, k, pads, wbits):
    check_random_conv(n, c, oc, h, wd, k, pads, wbits, amx)


@pytest.mark.parametrize("n, c, oc, h, wd, k, strides, pads", [
    (2, 16, 16, 28, 28, 3, (2, 2), (1, 1, 1, 1)),  # the U-Net's downsampling
    (1, 6, 20, 10, 11, 3, (3, 2), (2, 1, 0, 1)),  # uneven strides and pads
])
def test_strided_conv_equals_reference(n, c, oc, h, wd, k, strides, pads):
    rng = np.random.default_rng(n + c + oc + h)
    x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int8)
    w = rng.integers(-128, 128, (oc, c, k, k)).astype(np.int8)
    got = vnni.conv(x, w, strides, pads, backend=amx)
    assert got is not None
    np.testing.assert_array_equal(got, conv_ref(x, w, pads)[:, :: strides[0], :: strides[1]])


def test_weights_are_packed_once_per_array_and_backend():
    w = np.ones((2, 8, 3, 3), dtype=np.int8)
    assert vnni.packed_for(w, backend=amx) is vnni.packed_for(w, backend=amx)
    assert vnni.packed_for(w, backend=amx) is not vnni.packed_for(w)


def test_int_conv_takes_the_amx_path_where_it_pays(monkeypatch):
    """kernels.int_conv runs 3x3 convs of more than 4 channels here, 1x1 ones on VNNI; both equal BLAS."""
    from hwsim.intsim import kernels

    rng = np.random.default_rng(3)
    calls = []
    real = amx.conv_s1
    monkeypatch.setattr(amx, "conv_s1", lambda *a: calls.append(real(*a)) or calls[-1])
    for k, used in ((3, 1), (1, 0)):
        calls.clear()
        x = rng.integers(-128, 128, (2, 12, 6, 7)).astype(np.int8)
        w = rng.integers(-8, 8, (5, 12, k, k)).astype(np.int8)
        b = rng.integers(-1000, 1000, 5)
        p = (k // 2,) * 4
        got = kernels.int_conv(x, w, b, (1, 1), p, bound=2**20)
        assert len(calls) == used and all(c is not None for c in calls)
        np.testing.assert_array_equal(got, conv_ref(x, w, p).transpose(0, 3, 1, 2) + b[None, :, None, None])
