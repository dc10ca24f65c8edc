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

On a CPU with AMX-INT8 or AVX-512 VNNI, convolutions whose operands fit int8 run on
:mod:`hwsim.intsim.amx`'s or :mod:`hwsim.intsim.vnni`'s int8 kernel (exact in int32; VNNI about 6x
the float32 GEMM on the U-Net's shapes, AMX 1.4-2.1x VNNI on 3x3 convs of 32-96 channels; strided
ones over the input's phases),
whatever the bound; the BLAS paths below are the fallback.

Stride-1 convolutions avoid im2col (which writes KH*KW copies of the input): on the padded
channels-last input flattened to rows, tap (u, v) is the same GEMM on the rows shifted by
``u*W + v``, accumulated in place with BLAS ``beta=1``. Rows that straddle an image edge are
discarded afterwards; every partial sum is still a sum of distinct products, so the exactness
bound holds. Strided convolutions use a Numba im2col writing the float columns straight from
the int64 input, then one GEMM. Linear layers fold their batch axes into one 2-D GEMM (int8 on
VNNI where it applies, :func:`hwsim.intsim.vnni.linear`).

The elementwise ops (requantization, norms, LUTs, softmax, layout changes) are Numba loops over
1-D rows, branch-free so that they vectorize, and parallel over rows: ``numba.set_num_threads``
or ``NUMBA_NUM_THREADS`` set their threads, threadpoolctl or ``OPENBLAS_NUM_THREADS`` the BLAS
threads (``hwsim bench intsim`` pins both to torch's); while Numba runs on several threads, a
simulator run keeps BLAS to one (the two pools would busy-wait for each other's cores). Each
output element is computed by the same integer arithmetic whatever the thread count, so results
do not depend on it.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.linalg.blas import dgemm, sgemm

from hwsim.intsim.fused import (EMPTY, conv_epilogue, groupnorm_into, modulate_into, planes_epilogue, requant_into,
                                rows_epilogue, rq_args, rq_params, softmax_into, upsample_into)
from hwsim.intsim import amx, vnni
from hwsim.intsim.ops.lut import lut_checked_kernel

FLOAT32_EXACT, FLOAT64_EXACT = 2**24, 2**53
EXTRA_NONE = np.zeros((0, 0, 0, 0), dtype=np.int64)


def gemm_dtype(bound: int | None):
    """The cheapest float type in which an integer GEMM with |partial sums| <= bound is exact (None: int64)."""
    if bound is None:
        return None
    if bound < FLOAT32_EXACT:
        return np.float32
    if bound < FLOAT64_EXACT:
        return np.float64
    return None


def rq_for(attrs: dict, shape: tuple, channel_axis: int):
    """A Requant's (params, qmin, qmax) for a kernel whose per-channel axis is ``channel_axis`` of
    ``shape``, or None if its shifts run along another axis (then the kernel cannot take it)."""
    shifts, ndim = list(attrs["shifts"]), len(shape)
    if len(shifts) != 1 and (attrs["axis"] % ndim != channel_axis % ndim or len(shifts) != shape[channel_axis]):
        return None
    return rq_params(shifts, shape[channel_axis]), attrs["qmin"], attrs["qmax"]


def _lut_args(lut):
    return (False, EMPTY, 0) if lut is None else (True, np.ascontiguousarray(lut[0], dtype=np.int64), lut[1])


def _epilogue_2d(acc: np.ndarray, b: np.ndarray, out_dtype, rq, lut) -> np.ndarray:
    out = np.empty(acc.shape, dtype=out_dtype)
    rows_epilogue(acc, np.ascontiguousarray(b, dtype=np.int64), *rq_args(rq), *_lut_args(lut), out)
    return out


def int_matmul(a: np.ndarray, b: np.ndarray, bound: int | None, out_dtype=np.int64) -> np.ndarray:
    """a @ b of integer arrays (batched as np.matmul); ``bound`` caps |every partial sum|."""
    dtype = gemm_dtype(bound)
    if dtype is None:
        return np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(out_dtype, copy=False)
    if b.ndim == 2 and a.ndim >= 2:  # one 2-D GEMM instead of numpy's loop over the batch axes
        acc = a.reshape(-1, a.shape[-1]).astype(dtype) @ b.astype(dtype)
        return _epilogue_2d(acc, EMPTY, out_dtype, None, None).reshape(*a.shape[:-1], b.shape[1])
    return np.matmul(a.astype(dtype), b.astype(dtype)).astype(out_dtype)


def int_linear(x: np.ndarray, w: np.ndarray, b: np.ndarray, bound: int | None, out_dtype=np.int64,
               rq=None, lut=None) -> np.ndarray:
    """x @ w.T + b over the last axis (IntLinear) [then a Requant per output column, then a Lut];
    ``bound`` caps |every partial sum| of x @ w.T."""
    rows = x.reshape(-1, x.shape[-1])
    acc = vnni.linear(rows, vnni.packed_linear(w))
    if acc is None:
        dtype = gemm_dtype(bound) or np.int64
        acc = rows.astype(dtype) @ w.T.astype(dtype)
    return _epilogue_2d(acc, b, out_dtype, rq, lut).reshape(*x.shape[:-1], w.shape[0])


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


NO_ADDEND = np.zeros((0, 0), dtype=np.int64)


def _split_addend(extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(addend [N, C], rest) of a conv's fused addend broadcast to [N, C, H, W]: one value per
    sample and channel (the time embedding) becomes ``addend``, anything else stays ``extra``."""
    if extra.size and extra.strides[2] == 0 and extra.strides[3] == 0:
        return np.ascontiguousarray(extra[:, :, 0, 0], dtype=np.int64), EXTRA_NONE
    return NO_ADDEND, extra


def int_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, strides, pads, bound: int | None, out_dtype=np.int64,
             extra: np.ndarray | None = None, rq=None, rq_in=None) -> np.ndarray:
    """IntConv: on the AMX or VNNI kernel where it applies, else in the cheapest exact type for
    ``bound`` (int64 when None), stride 1 as row-shifted GEMMs, other strides as im2col and one GEMM.
    Fused: a Requant per input channel before (``rq_in``, on VNNI while the input is packed), and
    after, ``+ extra`` (broadcast to the output: an IntAdd), then a Requant per output channel."""
    n, _, h, wd = x.shape
    oc, _, kh, kw = w.shape
    (sh, sw), (pt, pl, pb, pr) = strides, pads
    oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    if oh < 1 or ow < 1:  # the kernel is larger than the padded input: no output position (as the reference)
        return np.zeros((n, oc, max(oh, 0), max(ow, 0)), dtype=out_dtype)
    out = np.empty((n, oc, oh, ow), dtype=out_dtype)
    extra = EXTRA_NONE if extra is None else np.broadcast_to(extra, out.shape)  # ValueError if it does not fit
    dtype = gemm_dtype(bound)
    stride1 = (sh, sw) == (1, 1)
    bias = np.ascontiguousarray(b, dtype=np.int64)
    use_amx = amx.available() and amx.pays(w.shape)
    if rq_in is not None and (use_amx or not stride1):
        x, rq_in = _requantized(x, rq_in), None
    acc = vnni.conv(x, w, (sh, sw), pads, backend=amx) if use_amx else None
    planes = vnni.conv_planes(x, w, (sh, sw), pads, rq_args(rq_in)) if acc is None else None
    if planes is not None:
        addend, extra = _split_addend(extra)
        flat = (n, oc, oh * ow)
        extra = np.ascontiguousarray(extra).reshape(flat) if extra.size else EXTRA_NONE.reshape(0, 0, 0)
        planes_epilogue(planes.data, planes.offset, planes.stride, planes.wp, ow, bias, addend, extra, *rq_args(rq),
                        out.reshape(flat))
        return out
    if rq_in is not None:
        x = _requantized(x, rq_in)
    if acc is None and dtype is not None and stride1:
        acc = _shifted_gemm_conv(x, w, pads, dtype)
    elif acc is None:
        dtype = dtype or np.int64
        cols = im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, dtype)
        acc = (cols @ w.reshape(oc, -1).T.astype(dtype)).reshape(n, oh, ow, oc)
    conv_epilogue(acc, bias, extra, *rq_args(rq), out)
    return out


def _requantized(x: np.ndarray, rq) -> np.ndarray:
    """x [N, C, ...] requantized per channel by ``rq`` (as :func:`rq_for` gives it), in the
    narrowest storage that holds [qmin, qmax]."""
    params, qmin, qmax = rq
    dtype = next(t for t in (np.int8, np.int16, np.int32, np.int64)
                 if np.iinfo(t).min <= qmin and qmax <= np.iinfo(t).max)
    flat = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    out = np.empty(flat.shape, dtype=dtype)
    requant_into(flat, *params, qmin, qmax, *_lut_args(None), out)
    return out.reshape(x.shape)


def requant(x: np.ndarray, shifts: list[int], axis: int, qmin: int, qmax: int, out_dtype=np.int64,
            lut=None) -> np.ndarray:
    """Requant [then a Lut whose domain holds [qmin, qmax]] of x (any integer storage)."""
    if len(shifts) > 1:
        outer, channels = int(np.prod(x.shape[:axis])), x.shape[axis]
    else:  # one shift: split along the first axis so the parallel loop has work to share
        outer, channels = (x.shape[0] if x.ndim > 1 else 1), 1
    flat = np.ascontiguousarray(x).reshape(outer, channels, -1)
    out = np.empty(flat.shape, dtype=out_dtype)
    requant_into(flat, *rq_params(shifts, channels), qmin, qmax, *_lut_args(lut), out)
    return out.reshape(x.shape)


def groupnorm(q: np.ndarray, g, b, a: dict, out_dtype=np.int64, rq=None, lut=None) -> np.ndarray:
    """[Requant per channel (axis 1) ->] GroupNorm [-> Lut whose domain holds [qmin, qmax]]."""
    flat = np.ascontiguousarray(q.reshape(q.shape[0], q.shape[1], -1))
    out = np.empty(flat.shape, dtype=out_dtype)
    groupnorm_into(flat, *rq_args(rq), a["groups"], np.ascontiguousarray(g, dtype=np.int64),
                   np.ascontiguousarray(b, dtype=np.int64), a["ft"], a["fg"], a["qmin"], a["qmax"], *_lut_args(lut), out)
    return out.reshape(q.shape)


def lut(q: np.ndarray, table: np.ndarray, in_min: int, out_dtype=np.int64) -> np.ndarray:
    """The table applied to q; ValueError if q leaves the table's domain (as the reference)."""
    flat = np.ascontiguousarray(q).reshape(q.shape[0] if q.ndim > 1 else 1, -1)
    out = np.empty(flat.shape, dtype=out_dtype)
    if lut_checked_kernel(flat, np.ascontiguousarray(table, dtype=np.int64), in_min, out):
        raise ValueError(f"LUT input outside its domain [{in_min}, {in_min + len(table) - 1}]")
    return out.reshape(q.shape)


def softmax(q: np.ndarray, table: np.ndarray, fo: int, out_dtype=np.int64, rq=None) -> np.ndarray:
    """[Requant (one shift) ->] Softmax over the last axis."""
    flat = np.ascontiguousarray(q.reshape(-1, q.shape[-1]))
    out = np.empty(flat.shape, dtype=out_dtype)
    softmax_into(flat, *rq_args(rq), np.ascontiguousarray(table, dtype=np.int64), fo, out)
    return out.reshape(q.shape)


def modulate(q: np.ndarray, scale: np.ndarray, shift: np.ndarray, a: dict, out_dtype=np.int64, rq=None) -> np.ndarray:
    """[Requant per last-axis channel ->] Modulate of q [N, L, D]."""
    q = np.ascontiguousarray(q)
    out = np.empty(q.shape, dtype=out_dtype)
    modulate_into(q, *rq_args(rq), np.ascontiguousarray(scale), np.ascontiguousarray(shift), a["ft"], a["e_scale"],
                  a["e_shift"], a["e_out"], a["qmin"], a["qmax"], out)
    return out


def upsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Nearest upsampling of the last two axes of x [N, C, H, W] (x's storage type)."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h * factor, w * factor), dtype=x.dtype)
    upsample_into(np.ascontiguousarray(x), factor, out)
    return out


def int_add(a: np.ndarray, b: np.ndarray, out_dtype=np.int64) -> np.ndarray:
    """a + b (broadcasting) in int64 arithmetic, stored as ``out_dtype``."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=out_dtype)
    return np.add(a, b, out=out, dtype=np.int64, casting="unsafe")


def int_mul(a: np.ndarray, b: np.ndarray, out_dtype=np.int64) -> np.ndarray:
    """a * b (broadcasting) in int64 arithmetic, stored as ``out_dtype``."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=out_dtype)
    return np.multiply(a, b, out=out, dtype=np.int64, casting="unsafe")
