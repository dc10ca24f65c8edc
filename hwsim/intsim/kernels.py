"""Fast kernels for the integer graph's heavy ops, each equal to the op's numpy reference.

Integer GEMMs (convolutions, linear layers, attention products) run on the BLAS (numpy's and
scipy's OpenBLAS) in floating point when that is exact: BLAS is the well-kept, tuned library
for GEMM, several times faster than integer loops. Exactness: if every partial sum of the
integer dot products is bounded by B, every intermediate of the float computation, in any
summation order, is an integer the format holds (float32 for B < 2^24, float64 for B < 2^53),
so the float result is the integer one. The executor proves B before the run from the input
datatypes and the weights (sum |w| * max |x|), not from the output's declared datatype, and
the int64 kernels run where no such bound is proven (B >= 2^53, or unknown). No torch and no
onnxruntime: numpy (and its BLAS), scipy's BLAS wrappers and Numba only.

Stride-1 convolutions avoid im2col (which writes KH*KW copies of the input): on the padded
channels-last input flattened to rows, tap (u, v) is the same GEMM on the rows shifted by
``u*W + v``, accumulated in place with BLAS ``beta=1``. Rows that straddle an image edge are
discarded afterwards; every partial sum is still a sum of distinct products, so the exactness
bound holds. Strided convolutions use a Numba im2col writing the float columns straight from
the int64 input, then one GEMM. Linear layers fold their batch axes into one 2-D GEMM.

The elementwise ops (requantization, norms, LUTs, softmax, layout changes) are Numba loops over
1-D rows, branch-free so that they vectorize, and parallel over rows: ``numba.set_num_threads``
or ``NUMBA_NUM_THREADS`` set their threads, threadpoolctl or ``OPENBLAS_NUM_THREADS`` the BLAS
threads (``hwsim bench intsim`` pins both to torch's). Each output element is computed by the
same integer arithmetic whatever the thread count, so results do not depend on it.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.linalg.blas import dgemm, sgemm

from hwsim.intsim.ops.lut import lut_checked_kernel
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


@numba.njit(parallel=True, cache=True)
def float_to_int64_plus_bias(acc: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[M, N] integer-valued float (or int64) accumulator -> int64 + bias[N] (bias may be empty: none)."""
    m, n = acc.shape
    out = np.empty((m, n), dtype=np.int64)
    has_bias = bias.size > 0
    for i in numba.prange(m):
        for j in range(n):
            v = np.int64(acc[i, j])
            out[i, j] = v + bias[j] if has_bias else v
    return out


def int_matmul(a: np.ndarray, b: np.ndarray, bound: int | None) -> np.ndarray:
    """a @ b of int64 arrays (batched as np.matmul); ``bound`` caps |every partial sum|."""
    dtype = gemm_dtype(bound)
    if dtype is None:
        return np.matmul(a, b)
    if b.ndim == 2 and a.ndim >= 2:  # one 2-D GEMM instead of numpy's loop over the batch axes
        a2 = a.reshape(-1, a.shape[-1]).astype(dtype)
        acc = a2 @ b.astype(dtype)
        return float_to_int64_plus_bias(acc, np.zeros(0, dtype=np.int64)).reshape(*a.shape[:-1], b.shape[1])
    return np.matmul(a.astype(dtype), b.astype(dtype)).astype(np.int64)


def int_linear(x: np.ndarray, w: np.ndarray, b: np.ndarray, bound: int | None) -> np.ndarray:
    """x @ w.T + b over the last axis (IntLinear); ``bound`` caps |every partial sum| of x @ w.T."""
    dtype = gemm_dtype(bound)
    if dtype is None:
        return np.matmul(x, w.T) + b
    acc = x.reshape(-1, x.shape[-1]).astype(dtype) @ w.T.astype(dtype)
    return float_to_int64_plus_bias(acc, np.ascontiguousarray(b, dtype=np.int64)).reshape(*x.shape[:-1], w.shape[0])


@numba.njit(parallel=True, cache=True)
def im2col_into(x: np.ndarray, cols: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int,
                oh: int, ow: int) -> None:
    """x [N, C, H, W] -> cols [N*OH*OW, C*KH*KW] (any dtype; zero padding), rows in output order.

    Columns in (C, KH, KW) order, as ``w.reshape(OC, -1)``; every element of ``cols`` is written.
    """
    n, c, h, w = x.shape
    for bi in numba.prange(n * oh):
        b = bi // oh
        i = bi - b * oh
        for j in range(ow):
            row = bi * ow + j
            for ch in range(c):
                for u in range(kh):
                    y = i * sh + u - pt
                    base = (ch * kh + u) * kw
                    if y < 0 or y >= h:
                        for v in range(kw):
                            cols[row, base + v] = 0
                        continue
                    for v in range(kw):
                        xx = j * sw + v - pl
                        cols[row, base + v] = x[b, ch, y, xx] if 0 <= xx < w else 0


def im2col(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, oh: int, ow: int,
           dtype=np.int64) -> np.ndarray:
    """[N, C, H, W] -> [N*OH*OW, C*KH*KW] in ``dtype`` with zero padding (rows in output order)."""
    cols = np.empty((x.shape[0] * oh * ow, x.shape[1] * kh * kw), dtype=dtype)
    im2col_into(np.ascontiguousarray(x), cols, kh, kw, sh, sw, pt, pl, oh, ow)
    return cols


@numba.njit(parallel=True, cache=True)
def nhwc_to_nchw_plus_bias(acc: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[N, OH, OW, OC] accumulator (integer-valued float, or int64) -> contiguous [N, OC, OH, OW] int64 + bias."""
    n, oh, ow, oc = acc.shape
    out = np.empty((n, oc, oh, ow), dtype=np.int64)
    for bi in numba.prange(n * oh):
        b = bi // oh
        i = bi - b * oh
        for j in range(ow):
            for o in range(oc):
                out[b, o, i, j] = np.int64(acc[b, i, j, o]) + bias[o]
    return out


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
    """IntConv in the cheapest exact type for ``bound`` (int64 when None): stride 1 as row-shifted
    GEMMs, other strides as im2col and one GEMM."""
    n, _, h, wd = x.shape
    oc, _, kh, kw = w.shape
    (sh, sw), (pt, pl, pb, pr) = strides, pads
    dtype = gemm_dtype(bound)
    bias = np.ascontiguousarray(b, dtype=np.int64)
    if dtype is not None and (sh, sw) == (1, 1):
        return nhwc_to_nchw_plus_bias(_shifted_gemm_conv(x, w, pads, dtype), bias)
    oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    dtype = dtype or np.int64
    cols = im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, dtype)
    acc = cols @ w.reshape(oc, -1).T.astype(dtype)
    return nhwc_to_nchw_plus_bias(acc.reshape(n, oh, ow, oc), bias)


def requant(x: np.ndarray, shifts: list[int], axis: int, qmin: int, qmax: int) -> np.ndarray:
    if len(shifts) > 1:
        outer, channels = int(np.prod(x.shape[:axis])), x.shape[axis]
    else:  # one shift: split along the first axis so the parallel loop has work to share
        outer, channels = (x.shape[0] if x.ndim > 1 else 1), 1
    flat = np.ascontiguousarray(x).reshape(outer, channels, -1)
    return requant_kernel(flat, np.asarray(shifts, dtype=np.int64), qmin, qmax).reshape(x.shape)


def groupnorm(q: np.ndarray, g, b, a: dict) -> np.ndarray:
    flat = np.ascontiguousarray(q.reshape(q.shape[0], q.shape[1], -1))
    return groupnorm_kernel(flat, a["groups"], g, b, a["ft"], a["fg"], a["qmin"], a["qmax"]).reshape(q.shape)


def lut(q: np.ndarray, table: np.ndarray, in_min: int) -> np.ndarray:
    """The table applied to q; ValueError if q leaves the table's domain (as the reference)."""
    flat = np.ascontiguousarray(q).reshape(q.shape[0] if q.ndim > 1 else 1, -1)
    out, outside = lut_checked_kernel(flat, np.ascontiguousarray(table, dtype=np.int64), in_min)
    if outside:
        raise ValueError(f"LUT input outside its domain [{in_min}, {in_min + len(table) - 1}]")
    return out.reshape(q.shape)


def softmax(q: np.ndarray, table: np.ndarray, fo: int) -> np.ndarray:
    return softmax_kernel(np.ascontiguousarray(q.reshape(-1, q.shape[-1])), table, fo).reshape(q.shape)


def modulate(q: np.ndarray, scale: np.ndarray, shift: np.ndarray, a: dict) -> np.ndarray:
    return modulate_kernel(np.ascontiguousarray(q), np.ascontiguousarray(scale), np.ascontiguousarray(shift),
                           a["ft"], a["e_scale"], a["e_shift"], a["e_out"], a["qmin"], a["qmax"])
