"""Elementwise nonlinearities (SiLU, GELU, exp) as lookup tables indexed by the input integer.

A b-bit input has only 2^b values, so ``f`` evaluated once per value in float64 and quantized
with the output quantizer is the exact integer op: the hardware stores the table in a ROM.
"""

from __future__ import annotations

import math
from typing import Callable

import numba
import numpy as np
from scipy.special import expit

FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "silu": lambda x: x * expit(x),  # expit: the logistic function without exp overflow
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
    "identity": lambda x: x,
}


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """[min, max] of a (non-narrow) integer type."""
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def build_table(function: str, in_bits: int, in_signed: bool, in_scale: float, out_bits: int, out_signed: bool,
                out_scale: float) -> np.ndarray:
    """LUT[i] = clamp(round_half_even(f((qmin_in + i) * s_in) / s_out)) for every input integer."""
    if function not in FUNCTIONS:
        raise ValueError(f"unknown LUT function {function!r}; known: {', '.join(FUNCTIONS)}")
    lo, hi = int_range(in_bits, in_signed)
    x = np.arange(lo, hi + 1, dtype=np.float64) * in_scale
    omin, omax = int_range(out_bits, out_signed)
    return np.clip(np.round(FUNCTIONS[function](x) / out_scale), omin, omax).astype(np.int64)


def lut_ref(q: np.ndarray, table: np.ndarray, in_min: int) -> np.ndarray:
    """Apply a table to integer inputs (values outside the table's domain are an error)."""
    idx = np.asarray(q, dtype=np.int64) - in_min
    if idx.size and (idx.min() < 0 or idx.max() >= len(table)):
        raise ValueError(f"LUT input outside its domain [{in_min}, {in_min + len(table) - 1}]")
    return table[idx]


@numba.njit(parallel=True, cache=True)
def lut_kernel(q: np.ndarray, table: np.ndarray, in_min: np.int64) -> np.ndarray:
    """Numba twin of :func:`lut_ref` for q in the table's domain (see :func:`lut_checked_kernel`)."""
    flat = q.ravel()
    out = np.empty(flat.size, dtype=np.int64)
    for i in numba.prange(flat.size):
        out[i] = table[flat[i] - in_min]
    return out.reshape(q.shape)


@numba.njit(parallel=True, cache=True)
def lut_checked_kernel(q: np.ndarray, table: np.ndarray, in_min: np.int64, out: np.ndarray) -> np.int64:
    """Numba twin of :func:`lut_ref` for q [rows, length] with the domain check in the same pass:
    writes table[q - in_min] into ``out`` (any integer dtype) and returns the number of values
    outside the table's domain. Those read a clamped index; the caller raises if there are any."""
    rows, length = q.shape
    last = table.size - 1
    bad = np.zeros(rows, dtype=np.int64)
    for r in numba.prange(rows):
        src, dst = q[r], out[r]
        count = np.int64(0)
        for i in range(length):
            k = np.int64(src[i]) - in_min
            count += np.int64(k < 0) | np.int64(k > last)
            dst[i] = table[min(max(k, 0), last)]
        bad[r] = count
    return bad.sum()
