"""Integer softmax over the last axis: max-subtraction, an exp lookup table, a rounded division.

For integer scores q at scale s: ``d = q - max(q)`` (<= 0) indexes
``E[d] = round_half_even(exp(d * s) * 2^Fe)``; the output is the probability at scale 2^-Fo,
``floor((2 * E * 2^Fo + sum E) / (2 * sum E))`` (the division rounded half up, which a hardware
divider does with one extra bit). Scores more than ``len(table) - 1`` below the row maximum
read the table's last entry, which is 0 once exp(d * s) * 2^Fe < 0.5.
"""

from __future__ import annotations

import numba
import numpy as np


def build_exp_table(in_scale: float, fe: int, size: int) -> np.ndarray:
    """E[k] = round(exp(-k * s) * 2^Fe) for k = 0 .. size-1 (index k = max - q)."""
    return np.round(np.exp(-np.arange(size, dtype=np.float64) * in_scale) * 2.0**fe).astype(np.int64)


def softmax_ref(q: np.ndarray, table: np.ndarray, fo: int) -> np.ndarray:
    q = np.asarray(q, dtype=np.int64)
    k = np.minimum(q.max(axis=-1, keepdims=True) - q, len(table) - 1)
    e = table[k]
    total = e.sum(axis=-1, keepdims=True)  # >= table[0] > 0: the maximum always contributes
    return (2 * e * (np.int64(1) << fo) + total) // (2 * total)


@numba.njit(parallel=True, cache=True)
def softmax_kernel(q: np.ndarray, table: np.ndarray, fo: np.int64) -> np.ndarray:
    """Numba twin of :func:`softmax_ref` for q of shape [rows, length], parallel over rows."""
    rows, length = q.shape
    out = np.empty_like(q)
    last = table.size - 1
    for r in numba.prange(rows):
        m = q[r, 0]
        for i in range(1, length):
            if q[r, i] > m:
                m = q[r, i]
        total = np.int64(0)
        for i in range(length):
            k = m - q[r, i]
            total += table[k if k < last else last]
        for i in range(length):
            k = m - q[r, i]
            out[r, i] = (2 * table[k if k < last else last] * (np.int64(1) << fo) + total) // (2 * total)
    return out
