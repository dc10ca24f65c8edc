"""Fast kernels for the integer graph's heavy ops, each equal to the op's numpy reference.

Integer GEMMs run on the BLAS in floating point when that is exact: if every partial sum is
bounded by the output datatype's range B, float32 is exact for B < 2^24 and float64 for
B < 2^53, whatever the summation order (every intermediate is an integer the format holds).
The declared datatypes come from the weights (accumulator minimization), so the bound is known
before the run, and the executor checks the result against it afterwards. im2col and the
elementwise ops are Numba loops.
"""

from __future__ import annotations

import numba
import numpy as np

from hwsim.intsim.ops.lut import lut_kernel
from hwsim.intsim.ops.norm import groupnorm_kernel, modulate_kernel
from hwsim.intsim.ops.requant import requant_kernel
from hwsim.intsim.ops.softmax import softmax_kernel

FLOAT32_EXACT, FLOAT64_EXACT = 2**24, 2**53


def gemm_dtype(bound: int):
    """The cheapest float type in which an integer GEMM with |partial sums| <= bound is exact."""
    if bound < FLOAT32_EXACT:
        return np.float32
    if bound < FLOAT64_EXACT:
        return np.float64
    return None


def int_matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    dtype = gemm_dtype(bound)
    if dtype is None:
        return np.matmul(a, b)
    return np.matmul(a.astype(dtype), b.astype(dtype)).astype(np.int64)


@numba.njit(cache=True)
def im2col(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, oh: int, ow: int) -> np.ndarray:
    """[N, C, H, W] -> [N*OH*OW, C*KH*KW] with zero padding (rows in output order)."""
    n, c, h, w = x.shape
    cols = np.zeros((n * oh * ow, c * kh * kw), dtype=x.dtype)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                for ch in range(c):
                    for u in range(kh):
                        y = i * sh + u - pt
                        if y < 0 or y >= h:
                            continue
                        for v in range(kw):
                            xx = j * sw + v - pl
                            if 0 <= xx < w:
                                cols[row, (ch * kh + u) * kw + v] = x[b, ch, y, xx]
    return cols


def int_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, strides, pads, bound: int) -> np.ndarray:
    n, _, h, wd = x.shape
    oc, _, kh, kw = w.shape
    (sh, sw), (pt, pl, pb, pr) = strides, pads
    oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    dtype = gemm_dtype(bound) or np.int64
    cols = im2col(x.astype(dtype), kh, kw, sh, sw, pt, pl, oh, ow)
    acc = cols @ w.reshape(oc, -1).T.astype(dtype)
    return acc.astype(np.int64).reshape(n, oh, ow, oc).transpose(0, 3, 1, 2) + b.reshape(1, -1, 1, 1)


def requant(x: np.ndarray, shifts: list[int], axis: int, qmin: int, qmax: int) -> np.ndarray:
    if len(shifts) == 1:
        return requant_kernel(np.ascontiguousarray(x), shifts[0], qmin, qmax)
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    out = np.empty_like(moved)
    for c, s in enumerate(shifts):
        out[..., c] = requant_kernel(np.ascontiguousarray(moved[..., c]), s, qmin, qmax)
    return np.moveaxis(out, -1, axis)


def groupnorm(q: np.ndarray, g, b, a: dict) -> np.ndarray:
    flat = np.ascontiguousarray(q.reshape(q.shape[0], q.shape[1], -1))
    return groupnorm_kernel(flat, a["groups"], g, b, a["ft"], a["fg"], a["qmin"], a["qmax"]).reshape(q.shape)


def lut(q: np.ndarray, table: np.ndarray, in_min: int) -> np.ndarray:
    return lut_kernel(np.ascontiguousarray(q), table, in_min)


def softmax(q: np.ndarray, table: np.ndarray, fo: int) -> np.ndarray:
    return softmax_kernel(np.ascontiguousarray(q.reshape(-1, q.shape[-1])), table, fo).reshape(q.shape)


def modulate(q: np.ndarray, scale: np.ndarray, shift: np.ndarray, a: dict) -> np.ndarray:
    return modulate_kernel(np.ascontiguousarray(q), np.ascontiguousarray(scale), np.ascontiguousarray(shift),
                           a["ft"], a["e_scale"], a["e_shift"], a["e_out"], a["qmin"], a["qmax"])
