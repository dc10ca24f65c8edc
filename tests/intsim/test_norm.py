import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fuzz

from hwsim.intsim.ops.norm import fixed_point_affine, groupnorm_kernel, groupnorm_ref, isqrt_floor_div

F, FT, FG = 30, 12, 10


def test_isqrt_floor_div_is_exact():
    d = np.array([0, 1, 2, 3, 10**9, 2**40 + 7], dtype=np.int64)
    got = isqrt_floor_div(60, d)
    assert got[0] == 0
    for v, r in zip(d[1:], got[1:]):
        m = (1 << 60) // int(v)
        assert r * r <= m < (r + 1) * (r + 1)


def test_close_to_float_groupnorm():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (2, 16, 7, 7))
    gamma, beta = rng.normal(1, 0.2, 16), rng.normal(0, 0.3, 16)
    s_out = 2.0**-5
    g, b = fixed_point_affine(gamma, beta, s_out, FT, FG)
    out = groupnorm_ref(q, 8, g, b, F, FT, FG, -128, 127)
    ref = torch.nn.functional.group_norm(torch.from_numpy(q).double(), 8, torch.from_numpy(gamma), torch.from_numpy(beta), eps=0)
    expect = np.clip(np.round(ref.numpy() / s_out), -128, 127)
    assert np.abs(out - expect).max() <= 1 and (out == expect).mean() > 0.97


def test_constant_group_gives_beta():
    q = np.full((1, 4, 3, 3), 5)
    g, b = fixed_point_affine(np.ones(4), np.array([0.5, -0.25, 0, 1]), 2.0**-3, FT, FG)
    assert groupnorm_ref(q, 2, g, b, F, FT, FG, -128, 127)[0, :, 0, 0].tolist() == [4, -2, 0, 8]


@settings(max_examples=fuzz(150), deadline=None)
@given(st.integers(1, 3), st.sampled_from([(4, 2), (8, 4), (6, 1), (3, 3)]), st.integers(1, 20), st.integers(2, 9), st.data())
def test_kernel_equals_reference(n, cg, length, bits, data):
    channels, groups = cg
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    extreme = data.draw(st.booleans())
    q = rng.choice([lo, hi], (n, channels, length)) if extreme else rng.integers(lo, hi + 1, (n, channels, length))
    g = rng.integers(-(2**10), 2**10, channels)
    b = rng.integers(-(2**20), 2**20, channels)
    ref = groupnorm_ref(q, groups, g, b, F, FT, FG, -128, 127)
    assert np.array_equal(groupnorm_kernel(q.astype(np.int64), groups, g, b, F, FT, FG, -128, 127), ref)


@settings(max_examples=fuzz(100), deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.sampled_from([4, 16, 64]), st.integers(2, 9), st.integers(-15, -8),
       st.integers(-15, -6), st.integers(-8, 0), st.data())
def test_modulate_kernel_equals_reference(n, length, dim, bits, e_scale, e_shift, e_out, data):
    from hwsim.intsim.ops.norm import modulate_kernel, modulate_ref

    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    q = rng.integers(lo, hi + 1, (n, length, dim)).astype(np.int64)
    scale, shift = rng.integers(-(2**15), 2**15, (n, dim)), rng.integers(-(2**15), 2**15, (n, dim))
    f = 12 + int(np.ceil(np.log2(dim * 2 ** (bits - 1))))
    ref = modulate_ref(q, scale[:, None], shift[:, None], f, 12, e_scale, e_shift, e_out, -128, 127)
    assert np.array_equal(modulate_kernel(q, scale, shift, f, 12, e_scale, e_shift, e_out, -128, 127), ref)
