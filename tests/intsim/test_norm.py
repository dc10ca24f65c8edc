import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.intsim.ops.norm import (check_group_size, fixed_point_affine, groupnorm_kernel, groupnorm_ref, modulate_kernel,
                                   modulate_ref, rsqrt_ref)
from tests.conftest import fuzz

FT, FG = 12, 10


def test_rsqrt_is_the_documented_integer_function():
    d = np.array([0, 1, 2, 3, 10**9, 2**40 + 7, 2**55 + 12345], dtype=np.int64)
    r, k = rsqrt_ref(d)
    assert r[0] == 0 and k[0] == 0
    for v, rr, kk in zip(d[1:].tolist(), r[1:].tolist(), k[1:].tolist()):
        m = v >> (2 * kk)
        assert m < 2**32 and (kk == 0 or m >= 2**30)
        assert rr * rr <= (1 << 62) // m < (rr + 1) * (rr + 1)
        assert rr * 2.0 ** -(31 + kk) == pytest.approx(1 / math.sqrt(v), rel=2**-14)


def test_close_to_float_groupnorm_even_for_large_groups():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (2, 48, 28, 28))  # 6 channels x 784 = 4704 values per group
    gamma, beta = rng.normal(1, 0.2, 48), rng.normal(0, 0.3, 48)
    s_out = 2.0**-5
    g, b = fixed_point_affine(gamma, beta, s_out, FT, FG)
    out = groupnorm_ref(q, 8, g, b, FT, FG, -128, 127)
    ref = torch.nn.functional.group_norm(torch.from_numpy(q).double(), 8, torch.from_numpy(gamma), torch.from_numpy(beta), eps=0)
    expect = np.clip(np.round(ref.numpy() / s_out), -128, 127)
    assert np.abs(out - expect).max() <= 1 and (out == expect).mean() > 0.97
    assert rsqrt_ref(np.array([4704 * 4704 * 40 * 40]))[1][0] > 0  # this size takes the normalized (k > 0) path
    flat = groupnorm_kernel(q.reshape(2, 48, -1).astype(np.int64), 8, g, b, FT, FG, -128, 127)
    assert np.array_equal(flat.reshape(q.shape), out)


def test_modulate_kernel_on_wide_rows():
    rng = np.random.default_rng(1)
    q = rng.integers(-(2**15), 2**15, (2, 3, 1024)).astype(np.int64)  # D up to 2^52: k > 0
    scale, shift = rng.integers(-(2**15), 2**15, (2, 1024)), rng.integers(-(2**15), 2**15, (2, 1024))
    ref = modulate_ref(q, scale[:, None], shift[:, None], FT, -12, -10, -6, -(2**15), 2**15 - 1)
    assert np.array_equal(modulate_kernel(q, scale, shift, FT, -12, -10, -6, -(2**15), 2**15 - 1), ref)


def test_constant_group_gives_beta():
    q = np.full((1, 4, 3, 3), 5)
    g, b = fixed_point_affine(np.ones(4), np.array([0.5, -0.25, 0, 1]), 2.0**-3, FT, FG)
    assert groupnorm_ref(q, 2, g, b, FT, FG, -128, 127)[0, :, 0, 0].tolist() == [4, -2, 0, 8]


def test_group_size_limit():
    check_group_size(4704, 8, "ok")
    with pytest.raises(ValueError, match="GN: normalizing 2000000 values of 16 bits overflows"):
        check_group_size(2_000_000, 16, "GN")


@settings(max_examples=fuzz(150), deadline=None)
@given(st.integers(1, 3), st.sampled_from([(4, 2), (8, 4), (6, 1), (3, 3)]), st.integers(1, 20), st.integers(2, 9), st.data())
def test_groupnorm_kernel_equals_reference(n, cg, length, bits, data):
    channels, groups = cg
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    extreme = data.draw(st.booleans())
    q = rng.choice([lo, hi], (n, channels, length)) if extreme else rng.integers(lo, hi + 1, (n, channels, length))
    g = rng.integers(-(2**10), 2**10, channels)
    b = rng.integers(-(2**20), 2**20, channels)
    ref = groupnorm_ref(q, groups, g, b, FT, FG, -128, 127)
    assert np.array_equal(groupnorm_kernel(q.astype(np.int64), groups, g, b, FT, FG, -128, 127), ref)


@settings(max_examples=fuzz(100), deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.sampled_from([4, 16, 64]), st.integers(2, 9), st.integers(-15, -8),
       st.integers(-15, -6), st.integers(-8, 0), st.data())
def test_modulate_kernel_equals_reference(n, length, dim, bits, e_scale, e_shift, e_out, data):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    q = rng.integers(lo, hi + 1, (n, length, dim)).astype(np.int64)
    scale, shift = rng.integers(-(2**15), 2**15, (n, dim)), rng.integers(-(2**15), 2**15, (n, dim))
    ref = modulate_ref(q, scale[:, None], shift[:, None], FT, e_scale, e_shift, e_out, -128, 127)
    assert np.array_equal(modulate_kernel(q, scale, shift, FT, e_scale, e_shift, e_out, -128, 127), ref)
