"""Requantization by power-of-two shifts with round-half-to-even, and the overflow check.

This is how the integer path moves an exact accumulator at scale ``s_acc`` to an activation at
scale ``s_out = s_acc * 2^shift`` (docs/numerics.md, section 2): the same result as Brevitas'
``clamp(round(acc * s_acc / s_out))`` in float64, computed with integer shifts only.
"""

from __future__ import annotations

import numba
import numpy as np


class AccumulatorOverflow(OverflowError):
    """An integer tensor left the range of its declared datatype."""


def round_shift_ref(x: np.ndarray, shift: int) -> np.ndarray:
    """x / 2^shift rounded half to even (shift > 0), or x * 2^-shift (shift <= 0); int64."""
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return x << np.int64(-shift)
    floor = x >> np.int64(shift)  # arithmetic shift: floor division for negatives too
    rem = x - (floor << np.int64(shift))
    half = np.int64(1) << np.int64(shift - 1)
    return floor + ((rem > half) | ((rem == half) & ((floor & 1) == 1))).astype(np.int64)


def requant_ref(acc: np.ndarray, shift: int, qmin: int, qmax: int) -> np.ndarray:
    """Round-shift then saturate to [qmin, qmax]: the quantizer applied to an exact accumulator."""
    return np.clip(round_shift_ref(acc, shift), qmin, qmax)


@numba.njit(cache=True)
def round_shift_scalar(x: np.int64, shift: np.int64) -> np.int64:
    """Scalar Numba twin of :func:`round_shift_ref`, shared by every kernel that requantizes."""
    if shift <= 0:
        return x << -shift
    floor = x >> shift
    rem = x - (floor << shift)
    half = np.int64(1) << (shift - 1)
    if rem > half or (rem == half and (floor & 1) == 1):
        return floor + 1
    return floor


@numba.njit(parallel=True, cache=True)
def requant_kernel(acc: np.ndarray, shifts: np.ndarray, qmin: np.int64, qmax: np.int64) -> np.ndarray:
    """Numba twin of :func:`requant_ref` over acc [outer, C, inner] with one shift per C (C may be 1).

    Parallel over (outer, C); the inner loop is branch-free (comparisons as 0/1 integers) so
    that LLVM vectorizes it.
    """
    outer, channels, inner = acc.shape
    out = np.empty_like(acc)
    for oc in numba.prange(outer * channels):
        o = oc // channels
        c = oc - o * channels
        s = shifts[c]
        left = max(-s, 0)
        right = max(s, 0)
        half = (np.int64(1) << right) >> 1  # 0 when right == 0: then rem == 0 and nothing rounds
        odd_ties = np.int64(half > 0)
        src, dst = acc[o, c], out[o, c]  # 1-D views: the loop vectorizes
        for i in range(inner):
            x = src[i] << left
            floor = x >> right
            rem = x - (floor << right)
            up = np.int64(rem > half) | (np.int64(rem == half) & floor & odd_ties)
            dst[i] = min(max(floor + up, qmin), qmax)
    return out


@numba.njit(parallel=True, cache=True)
def minmax(x: np.ndarray) -> tuple[np.int64, np.int64]:
    """(min, max) of a non-empty 1-D int64 array in one parallel pass."""
    lo = x[0]
    hi = x[0]
    for i in numba.prange(x.size):
        lo = min(lo, x[i])
        hi = max(hi, x[i])
    return lo, hi


def check_range(values: np.ndarray, lo: int, hi: int, node: str, saturate: bool = False) -> np.ndarray:
    """Raise :class:`AccumulatorOverflow` naming ``node`` if any value leaves [lo, hi] (or clip if asked)."""
    if values.size == 0:
        return values
    if values.dtype == np.int64 and values.flags.c_contiguous:
        vmin, vmax = (int(v) for v in minmax(values.reshape(-1)))
    else:
        vmin, vmax = int(values.min()), int(values.max())
    if vmin >= lo and vmax <= hi:
        return values
    if saturate:
        return np.clip(values, lo, hi)
    raise AccumulatorOverflow(f"node {node!r}: values in [{vmin}, {vmax}] overflow the declared range [{lo}, {hi}]")
