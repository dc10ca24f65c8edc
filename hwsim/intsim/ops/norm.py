"""Integer GroupNorm / LayerNorm: exact sums, a normalized integer reciprocal square root,
fixed-point affine.

Per group of ``n`` integers q: ``S = sum q``, ``Q = sum q^2``, ``D = n*Q - S^2`` (exact), so
``z = (n*q - S) / sqrt(D)`` is the normalized value. The reciprocal square root is computed
like a floating-point one, so that any group size fits in int64: ``D = m * 4^k`` with
``k = max(0, ceil((bitlen(D) - 32) / 2))`` and ``m = D >> 2k`` (< 2^32, the low bits dropped),
``r = isqrt(floor(2^62 / m))`` (= floor(2^31 / sqrt(m)), 16 to 31 significant bits), and
``t = round_shift((n*q - S) * r, 31 + k - Ft)`` is z with Ft fraction bits (0 for a constant
group, D = 0). GroupNorm's output is ``clamp(round_shift(t * G_c + B_c, Ft + Fg))`` with
per-channel fixed-point gamma ``G_c = round(gamma_c / s_out * 2^Fg)`` and beta
``B_c = round(beta_c / s_out * 2^(Ft+Fg))``. Every step is an integer operation a hardware
block can do (a leading-zero count, a shift, an isqrt of 32 bits), and with
``n * 2^bits < 2^31`` no intermediate exceeds int64.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from hwsim.intsim.ops.requant import round_shift_ref, round_shift_scalar as _round_shift

M_BITS, NUM_LOG2 = 32, 62  # mantissa of D below 2^32; r = isqrt(2^62 // m) = floor(2^31 / sqrt(m))
R_LOG2 = NUM_LOG2 // 2


def check_group_size(n: int, bits: int, where: str) -> None:
    """(n*q - S) * r must fit int64: n * 2^bits * 2^31 < 2^63."""
    if n * 2**bits >= 2 ** (63 - R_LOG2 - 1):
        raise ValueError(f"{where}: normalizing {n} values of {bits} bits overflows the int64 datapath")


def rsqrt_ref(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, k) per element of D >= 0: 1/sqrt(D) ~= r * 2^-(31 + k); r = 0 where D == 0."""
    r = np.zeros(d.shape, dtype=np.int64)
    k = np.zeros(d.shape, dtype=np.int64)
    for i, v in enumerate(d.ravel().tolist()):
        if v > 0:
            kk = max(0, -(-(v.bit_length() - M_BITS) // 2))
            k.flat[i] = kk
            r.flat[i] = math.isqrt((1 << NUM_LOG2) // (v >> (2 * kk)))
    return r, k


def _normalize(centered: np.ndarray, d: np.ndarray, ft: int) -> np.ndarray:
    """round_shift(centered * r, 31 + k - ft) with per-group r, k broadcast over ``centered``."""
    r, k = rsqrt_ref(d)
    x = centered * r
    shift = (R_LOG2 + k - ft) + np.zeros_like(x)
    floor = x >> shift
    rem = x - (floor << shift)
    half = np.int64(1) << (shift - 1)
    return floor + ((rem > half) | ((rem == half) & ((floor & 1) == 1))).astype(np.int64)


def fixed_point_affine(gamma: np.ndarray, beta: np.ndarray, out_scale: float, ft: int, fg: int) -> tuple[np.ndarray, np.ndarray]:
    """(G_c, B_c) integers for gamma/beta at output scale ``out_scale``."""
    g = np.round(np.asarray(gamma, dtype=np.float64) / out_scale * 2.0**fg).astype(np.int64)
    b = np.round(np.asarray(beta, dtype=np.float64) / out_scale * 2.0 ** (ft + fg)).astype(np.int64)
    return g, b


def groupnorm_ref(q: np.ndarray, groups: int, g_c: np.ndarray, b_c: np.ndarray, ft: int, fg: int,
                  qmin: int, qmax: int) -> np.ndarray:
    """Integer GroupNorm of q [N, C, ...] (int64) per the module docstring; returns int64 of q's shape."""
    q = np.asarray(q, dtype=np.int64)
    n_batch, channels = q.shape[:2]
    if channels % groups:
        raise ValueError(f"{channels} channels not divisible by {groups} groups")
    grouped = q.reshape(n_batch, groups, -1)
    n = grouped.shape[2]
    s = grouped.sum(axis=2, keepdims=True)
    d = n * (grouped * grouped).sum(axis=2, keepdims=True) - s * s
    t = _normalize(n * grouped - s, d, ft).reshape(q.shape)
    shape = (1, channels) + (1,) * (q.ndim - 2)
    acc = t * g_c.reshape(shape) + b_c.reshape(shape)
    return np.clip(round_shift_ref(acc, ft + fg), qmin, qmax)


def normalize_last_axis_ref(q: np.ndarray, ft: int) -> np.ndarray:
    """LayerNorm's normalization over the last axis: z with ``ft`` fraction bits (int64)."""
    q = np.asarray(q, dtype=np.int64)
    n = q.shape[-1]
    s = q.sum(axis=-1, keepdims=True)
    d = n * (q * q).sum(axis=-1, keepdims=True) - s * s
    return _normalize(n * q - s, d, ft)


def modulate_ref(q: np.ndarray, scale: np.ndarray, shift: np.ndarray, ft: int, e_scale: int, e_shift: int,
                 e_out: int, qmin: int, qmax: int) -> np.ndarray:
    """DiT's adaLN: ``LayerNorm(x) * (1 + scale) + shift``, requantized to exponent ``e_out``.

    ``scale`` and ``shift`` are integers at exponents ``e_scale`` and ``e_shift`` (per-timestep
    table rows, broadcast over the tokens); ``1 + scale`` is ``2^-e_scale + scale`` at e_scale.
    """
    z = normalize_last_axis_ref(q, ft)  # exponent -ft
    prod = z * (scale + (np.int64(1) << np.int64(-e_scale)))  # exponent e_scale - ft
    e_prod = e_scale - ft
    e_min = min(e_prod, e_shift)
    total = (prod << np.int64(e_prod - e_min)) + (np.asarray(shift, dtype=np.int64) << np.int64(e_shift - e_min))
    return np.clip(round_shift_ref(total, e_out - e_min), qmin, qmax)


@numba.njit(cache=True)
def _isqrt(m: np.int64) -> np.int64:
    if m <= 0:
        return np.int64(0)
    r = np.int64(math.sqrt(float(m)))
    while r * r > m:
        r -= 1
    while (r + 1) * (r + 1) <= m:
        r += 1
    return r


@numba.njit(cache=True)
def _rsqrt(d: np.int64) -> tuple[np.int64, np.int64]:
    """Numba twin of :func:`rsqrt_ref` for one D."""
    if d <= 0:
        return np.int64(0), np.int64(0)
    bits = np.int64(0)
    v = d
    while v > 0:
        bits += 1
        v >>= 1
    k = max(np.int64(0), (bits - M_BITS + 1) // 2)
    return _isqrt((np.int64(1) << NUM_LOG2) // (d >> (2 * k))), k


@numba.njit(cache=True)
def _round_shift_row(src: np.ndarray, dst: np.ndarray, mul: np.int64, add: np.int64, shift: np.int64,
                     g: np.int64, b: np.int64, shift2: np.int64, qmin: np.int64, qmax: np.int64) -> None:
    """dst = clamp(round_shift(round_shift(src * mul + add, shift) * g + b, shift2)), branch-free
    (the rounding of :func:`round_shift_scalar` with comparisons as 0/1 integers, so it vectorizes)."""
    l1, r1 = max(-shift, 0), max(shift, 0)
    h1 = (np.int64(1) << r1) >> 1
    o1 = np.int64(h1 > 0)
    l2, r2 = max(-shift2, 0), max(shift2, 0)
    h2 = (np.int64(1) << r2) >> 1
    o2 = np.int64(h2 > 0)
    for i in range(src.size):
        x = (src[i] * mul + add) << l1
        f = x >> r1
        rem = x - (f << r1)
        t = f + (np.int64(rem > h1) | (np.int64(rem == h1) & f & o1))
        y = (t * g + b) << l2
        f = y >> r2
        rem = y - (f << r2)
        v = f + (np.int64(rem > h2) | (np.int64(rem == h2) & f & o2))
        dst[i] = min(max(v, qmin), qmax)


@numba.njit(parallel=True, cache=True)
def groupnorm_kernel(q: np.ndarray, groups: np.int64, g_c: np.ndarray, b_c: np.ndarray, ft: np.int64,
                     fg: np.int64, qmin: np.int64, qmax: np.int64) -> np.ndarray:
    """Numba twin of :func:`groupnorm_ref` for q of shape [N, C, L] (spatial dims flattened), parallel over (N, groups)."""
    n_batch, channels, length = q.shape
    cg = channels // groups
    n = cg * length
    out = np.empty_like(q)
    for bg in numba.prange(n_batch * groups):
        b = bg // groups
        g = bg - b * groups
        s = np.int64(0)
        sq = np.int64(0)
        for c in range(g * cg, (g + 1) * cg):
            for i in range(length):
                v = q[b, c, i]
                s += v
                sq += v * v
        r, k = _rsqrt(n * sq - s * s)
        for c in range(g * cg, (g + 1) * cg):  # (n*q - S) * r = q * (n*r) - S*r
            _round_shift_row(q[b, c], out[b, c], n * r, -s * r, R_LOG2 + k - ft, g_c[c], b_c[c], ft + fg, qmin, qmax)
    return out


@numba.njit(parallel=True, cache=True)
def modulate_kernel(q: np.ndarray, scale: np.ndarray, shift: np.ndarray, ft: np.int64, e_scale: np.int64,
                    e_shift: np.int64, e_out: np.int64, qmin: np.int64, qmax: np.int64) -> np.ndarray:
    """Numba twin of :func:`modulate_ref` for q [N, L, D], scale/shift [N, D], parallel over (N, L)."""
    n_batch, length, dim = q.shape
    out = np.empty_like(q)
    one = np.int64(1) << (-e_scale)
    e_prod = e_scale - ft
    e_min = min(e_prod, e_shift)
    for bi in numba.prange(n_batch * length):
        b = bi // length
        i = bi - b * length
        s = np.int64(0)
        sq = np.int64(0)
        for c in range(dim):
            v = q[b, i, c]
            s += v
            sq += v * v
        r, k = _rsqrt(dim * sq - s * s)
        for c in range(dim):
            z = _round_shift((dim * q[b, i, c] - s) * r, R_LOG2 + k - ft)
            total = ((z * (scale[b, c] + one)) << (e_prod - e_min)) + (shift[b, c] << (e_shift - e_min))
            v = _round_shift(total, e_out - e_min)
            out[b, i, c] = qmin if v < qmin else (qmax if v > qmax else v)
    return out
