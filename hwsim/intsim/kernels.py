"""Fast kernels for the integer graph's heavy ops, each equal to the op's numpy reference.

Integer GEMMs run on the BLAS in floating point when that is exact: if every partial sum is
bounded by B, float32 is exact for B < 2^24 and float64 for B < 2^53, whatever the summation
order (every intermediate is an integer the format holds). The executor proves B before the run
from the input datatypes and the weights (sum |w| * max |x|), not from the output's declared
datatype, and checks the result against that datatype afterwards.

Stride-1 convolutions avoid im2col (which writes KH*KW copies of the input): on the padded
channels-last input flattened to rows, tap (u, v) is the same GEMM on the rows shifted by
``u*W + v``, accumulated in place with BLAS ``beta=1``. Rows that straddle an image edge are
discarded afterwards; every partial sum is still a sum of distinct products, so the exactness
bound holds. Strided convolutions use a Numba im2col; the elementwise ops are Numba loops.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.linalg.blas import dgemm, sgemm

from hwsim.intsim.ops.lut import lut_kernel
from hwsim.intsim.ops.norm import groupnorm_kernel, modulate_kernel
from hwsim.intsim.ops.requant import requant_kernel
from hwsim.intsim.ops.softmax import softmax_kernel

FLOAT32_EXACT, FLOAT64_EXACT = 2**24, 2**53


def gemm_dtype(bound: int | None):
    """The cheapest float type in which an integer GEMM with |partial sums| <= bound is exact (None: int64)."""
    if bound is None:
        return None
    if bound < FLOAT32_EXACT:
        return np.float32
    if bound < FLOAT64_EXACT:
        return np.float64
    return None


def int_matmul(a: np.ndarray, b: np.ndarray, bound: int | None) -> np.ndarray:
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


def _shifted_gemm_conv(x: np.ndarray, w: np.ndarray, pads, dtype) -> np.ndarray:
    """Stride-1 conv as KH*KW row-shifted GEMMs over the padded NHWC input; [N, OH, OW, OC] in ``dtype``."""
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    pt, pl, pb, pr = pads
    hp, wp = h + pt + pb, wd + pl + pr
    padded = np.zeros((n, hp, wp, c), dtype=dtype)
    padded[:, pt:pt + h, pl:pl + wd, :] = x.transpose(0, 2, 3, 1)
    rows = padded.reshape(-1, c)
    acc = np.zeros((rows.shape[0], oc), dtype=dtype)
    taps = np.ascontiguousarray(w.transpose(2, 3, 1, 0), dtype=dtype)  # [kh, kw, c, oc]
    gemm = sgemm if dtype == np.float32 else dgemm
    for u in range(kh):
        for v in range(kw):
            shift = u * wp + v
            # BLAS is column-major: acc.T[oc, r] += taps[u, v].T[oc, c] @ rows.T[c, r], all views
            gemm(1.0, taps[u, v].T, rows[shift:].T, beta=1.0, c=acc[: rows.shape[0] - shift].T, overwrite_c=True)
    return acc.reshape(n, hp, wp, oc)[:, : hp - kh + 1, : wp - kw + 1]


def int_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, strides, pads, bound: int | None) -> np.ndarray:
    n, _, h, wd = x.shape
    oc, _, kh, kw = w.shape
    (sh, sw), (pt, pl, pb, pr) = strides, pads
    dtype = gemm_dtype(bound)
    if dtype is not None and (sh, sw) == (1, 1):
        acc = _shifted_gemm_conv(x, w, pads, dtype)
    else:
        oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
        dtype = dtype or np.int64
        cols = im2col(x.astype(dtype), kh, kw, sh, sw, pt, pl, oh, ow)
        acc = (cols @ w.reshape(oc, -1).T.astype(dtype)).reshape(n, oh, ow, oc)
    return nhwc_to_nchw_plus_bias(acc, b)


@numba.njit(cache=True)
def nhwc_to_nchw_plus_bias(acc: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[N, OH, OW, OC] float accumulator (integer-valued) -> contiguous [N, OC, OH, OW] int64 + bias."""
    n, oh, ow, oc = acc.shape
    out = np.empty((n, oc, oh, ow), dtype=np.int64)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for o in range(oc):
                    out[b, o, i, j] = np.int64(acc[b, i, j, o]) + bias[o]
    return out


def requant(x: np.ndarray, shifts: list[int], axis: int, qmin: int, qmax: int) -> np.ndarray:
    channels = x.shape[axis] if len(shifts) > 1 else 1
    outer = int(np.prod(x.shape[:axis])) if len(shifts) > 1 else 1
    flat = np.ascontiguousarray(x).reshape(outer, channels, -1)
    return requant_kernel(flat, np.asarray(shifts, dtype=np.int64), qmin, qmax).reshape(x.shape)


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
