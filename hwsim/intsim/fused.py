"""Fused kernels: a chain of integer ops in one pass over memory, each equal to the chain of references.

The executor (:mod:`hwsim.intsim.fusion` plans, :meth:`Simulator.run` runs) fuses

* a Requant into the op that reads it (GroupNorm, Modulate, Softmax, Lut) as a prologue,
* a Lut into the GroupNorm or Requant before it as an epilogue,
* the bias, a per-sample per-channel addend (the U-Net's time embedding, ``IntAdd`` of an
  ``[N, C, 1, 1]`` tensor), a Requant and a Lut into a GEMM's output pass (float accumulator
  -> integer),

so that the intermediate tensors are never written. Every kernel computes in int64 whatever its
operands' storage (int32 or int64, or integer-valued float for GEMM accumulators) and writes
into a caller-allocated ``out`` whose dtype the executor chose (int32 where the value is proven
to fit). The requantization is :func:`hwsim.intsim.ops.requant.requant_ref`'s: a left shift
by ``max(-s, 0)``, an arithmetic right shift by ``max(s, 0)`` with round half to even, a clamp;
its per-channel constants come from :func:`rq_params`. Branch-free inner loops, as in
:mod:`hwsim.intsim.ops`, so LLVM vectorizes them.
"""

from __future__ import annotations

import numba
import numpy as np

from hwsim.intsim.ops.norm import R_LOG2, _round_shift_row, _rsqrt
from hwsim.intsim.ops.requant import round_shift_scalar as _round_shift

EMPTY = np.zeros(0, dtype=np.int64)
GN_CHUNK = 8  # (sample, group) pairs per parallel task of groupnorm_into


def rq_params(shifts, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, half, odd) per channel for shifts (one, broadcast, or one per channel)."""
    s = np.asarray(list(shifts), dtype=np.int64)
    if s.size == 1:
        s = np.full(channels, s[0], dtype=np.int64)
    if s.size != channels:
        raise ValueError(f"{s.size} shifts for {channels} channels")
    left, right = np.maximum(-s, 0), np.maximum(s, 0)
    half = (np.int64(1) << right) >> 1
    return left, right, half, (half > 0).astype(np.int64)


NO_RQ = tuple(np.zeros(1, dtype=np.int64) for _ in range(4))  # placeholder when there is no prologue


def rq_args(rq) -> tuple:
    """A kernel's requantization arguments (do_rq, left, right, half, odd, qmin, qmax) for ``rq``:
    (rq_params' output, qmin, qmax), or None for none."""
    if rq is None:
        return (False, *NO_RQ, 0, 0)
    params, qmin, qmax = rq
    return (True, *params, qmin, qmax)


@numba.njit(inline="always")
def rq_scalar(x, left, right, half, odd, qmin, qmax):
    """round_shift(x, s) clamped to [qmin, qmax]; x int64."""
    x = x << left
    f = x >> right
    rem = x - (f << right)
    up = np.int64(rem > half) | (np.int64(rem == half) & f & odd)
    return min(max(f + up, qmin), qmax)


@numba.njit(parallel=True, cache=True)
def requant_into(acc, left, right, half, odd, qmin, qmax, do_lut, table, in_min, out):
    """out[o, c, i] = LUT?(requant(acc[o, c, i], shift_c)); acc and out [outer, C, inner]."""
    outer, channels, inner = acc.shape
    for oc in numba.prange(outer * channels):
        o = oc // channels
        c = oc - o * channels
        lf, rt, hf, od = left[c], right[c], half[c], odd[c]
        src, dst = acc[o, c], out[o, c]
        if do_lut:
            for i in range(inner):
                dst[i] = table[rq_scalar(np.int64(src[i]), lf, rt, hf, od, qmin, qmax) - in_min]
        else:
            for i in range(inner):
                dst[i] = rq_scalar(np.int64(src[i]), lf, rt, hf, od, qmin, qmax)


@numba.njit(parallel=True, cache=True)
def groupnorm_into(q, do_rq, left, right, half, odd, rq_min, rq_max, groups, g_c, b_c, ft, fg, qmin, qmax,
                   do_lut, table, in_min, out):
    """[Requant ->] GroupNorm [-> Lut] of q [N, C, L] into out [N, C, L], parallel over chunks of
    GN_CHUNK (sample, group) pairs, whose scratch is allocated once per chunk.

    The group's (requantized) values are kept in a buffer between the statistics pass and the
    output pass, so q is read once. The output pass never writes the buffer it reads: in place,
    LLVM's run-time alias check sends the loop to its scalar version (2x slower)."""
    n_batch, channels, length = q.shape
    cg = channels // groups
    n = cg * length
    total = n_batch * groups
    for chunk in numba.prange((total + GN_CHUNK - 1) // GN_CHUNK):
        buf = np.empty(n, dtype=np.int64)
        tab = np.empty(length, dtype=np.int64)  # a channel's input domain lo..hi, when tabulated
        vals = np.empty(length, dtype=np.int64)  # its outputs (over the domain, or over the row)
        for bg in range(chunk * GN_CHUNK, min(total, (chunk + 1) * GN_CHUNK)):
            b = bg // groups
            g = bg - b * groups
            s = np.int64(0)
            sq = np.int64(0)
            lo = np.int64(2**62)
            hi = -lo
            for cc in range(cg):
                c = g * cg + cc
                src = q[b, c]
                row = buf[cc * length:(cc + 1) * length]
                if do_rq:
                    lf, rt, hf, od = left[c], right[c], half[c], odd[c]
                    for i in range(length):
                        v = rq_scalar(np.int64(src[i]), lf, rt, hf, od, rq_min, rq_max)
                        row[i] = v
                        s += v
                        sq += v * v
                        lo = min(lo, v)
                        hi = max(hi, v)
                else:
                    for i in range(length):
                        v = np.int64(src[i])
                        row[i] = v
                        s += v
                        sq += v * v
                        lo = min(lo, v)
                        hi = max(hi, v)
            r, k = _rsqrt(n * sq - s * s)
            # Per channel the output is a function of the input value alone; when the group's values
            # span fewer integers than a channel has values, tabulate it over that span and look up.
            span = hi - lo + 1
            tabulate = span < length
            if tabulate:
                for i in range(span):
                    tab[i] = lo + i
            for cc in range(cg):  # (n*q - S) * r = q * (n*r) - S*r
                c = g * cg + cc
                row = buf[cc * length:(cc + 1) * length]
                dst = out[b, c]
                if tabulate:
                    _round_shift_row(tab[:span], vals[:span], n * r, -s * r, R_LOG2 + k - ft, g_c[c], b_c[c], ft + fg, qmin, qmax)
                    if do_lut:
                        for i in range(span):
                            vals[i] = table[vals[i] - in_min]
                    for i in range(length):
                        dst[i] = vals[row[i] - lo]
                    continue
                _round_shift_row(row, vals, n * r, -s * r, R_LOG2 + k - ft, g_c[c], b_c[c], ft + fg, qmin, qmax)
                if do_lut:
                    for i in range(length):
                        dst[i] = table[vals[i] - in_min]
                else:
                    for i in range(length):
                        dst[i] = vals[i]


@numba.njit(parallel=True, cache=True)
def modulate_into(q, do_rq, left, right, half, odd, rq_min, rq_max, scale, shift, ft, e_scale, e_shift, e_out,
                  qmin, qmax, out):
    """[Requant (per last-axis channel) ->] Modulate of q [N, L, D] into out, parallel over (N, L)."""
    n_batch, length, dim = q.shape
    one = np.int64(1) << (-e_scale)
    e_prod = e_scale - ft
    e_min = min(e_prod, e_shift)
    for bi in numba.prange(n_batch * length):
        b = bi // length
        i = bi - b * length
        buf = np.empty(dim, dtype=np.int64)
        src = q[b, i]
        if do_rq:
            for c in range(dim):
                buf[c] = rq_scalar(np.int64(src[c]), left[c], right[c], half[c], odd[c], rq_min, rq_max)
        else:
            for c in range(dim):
                buf[c] = np.int64(src[c])
        s = np.int64(0)
        sq = np.int64(0)
        for c in range(dim):
            v = buf[c]
            s += v
            sq += v * v
        r, k = _rsqrt(dim * sq - s * s)
        for c in range(dim):
            z = _round_shift((dim * buf[c] - s) * r, R_LOG2 + k - ft)
            total = ((z * (np.int64(scale[b, c]) + one)) << (e_prod - e_min)) + (np.int64(shift[b, c]) << (e_shift - e_min))
            v = _round_shift(total, e_out - e_min)
            out[b, i, c] = qmin if v < qmin else (qmax if v > qmax else v)


FLOAT_QUOTIENT = 2**52  # numerators and divisors below this divide exactly through float64 (softmax_into)


@numba.njit(parallel=True, cache=True)
def softmax_into(q, do_rq, left, right, half, odd, rq_min, rq_max, table, fo, out):
    """[Requant (one shift) ->] Softmax of q [rows, length] (integer or integer-valued float) into out.

    The row's quotients ``(2 e 2^fo + total) // (2 total)`` share their divisor: where numerator and
    divisor are below 2^52 each is ``num * (1 / den)`` in float64, truncated, then corrected by one
    step against the exact remainder (the float estimate is within 1 of the quotient: its relative
    error is below 2^-51 and the quotient below 2^51), 2.7x faster than an int64 division per value."""
    rows, length = q.shape
    last = table.size - 1
    lf, rt, hf, od = left[0], right[0], half[0], odd[0]
    for r in numba.prange(rows):
        buf = np.empty(length, dtype=np.int64)
        src = q[r]
        if do_rq:
            for i in range(length):
                buf[i] = rq_scalar(np.int64(src[i]), lf, rt, hf, od, rq_min, rq_max)
        else:
            for i in range(length):
                buf[i] = np.int64(src[i])
        m = buf[0]
        for i in range(1, length):
            m = max(m, buf[i])
        total = np.int64(0)
        top = np.int64(0)
        for i in range(length):
            e = table[min(m - buf[i], last)]
            buf[i] = e
            total += e
            top = max(top, e)
        dst = out[r]
        den = 2 * total
        scale = np.int64(1) << fo
        if 0 < den < FLOAT_QUOTIENT and 2 * top * scale + total < FLOAT_QUOTIENT:
            inv = 1.0 / den
            for i in range(length):
                num = 2 * buf[i] * scale + total
                quo = np.int64(num * inv)
                rem = num - quo * den
                dst[i] = quo - np.int64(rem < 0) + np.int64(rem >= den)
        else:
            for i in range(length):
                dst[i] = (2 * buf[i] * scale + total) // den


@numba.njit(parallel=True, cache=True)
def rows_epilogue(acc, bias, do_rq, left, right, half, odd, rq_min, rq_max, do_lut, table, in_min, out):
    """out[i, j] = LUT?(Requant?(int(acc[i, j]) + bias[j])) for a GEMM accumulator [M, N]
    (bias may be empty; requant constants per column j)."""
    m, n = acc.shape
    has_bias = bias.size > 0
    for i in numba.prange(m):
        src, dst = acc[i], out[i]
        for j in range(n):
            v = np.int64(src[j])
            if has_bias:
                v += bias[j]
            if do_rq:
                v = rq_scalar(v, left[j], right[j], half[j], odd[j], rq_min, rq_max)
            if do_lut:
                v = table[v - in_min]
            dst[j] = v


EPILOGUE_CHANNELS = 16  # output channels per parallel work item of conv_epilogue


@numba.njit(parallel=True, cache=True)
def conv_epilogue(acc, bias, extra, do_rq, left, right, half, odd, rq_min, rq_max, out):
    """[N, OH, OW, OC] accumulator -> out [N, OC, OH, OW]: Requant?(int(acc) + bias[o] + extra[b, o, i, j])
    (``extra`` of out's shape, typically a broadcast view, or empty: none; requant constants per
    output channel). Per image and channel, the channel's strided plane is first gathered into a
    contiguous [OH*OW] buffer, where the addend and the requantization run as long vector loops
    (the image's accumulator, <= 200 KB here, stays in L2 over its channels). Measured on the
    U-Net's shapes, batch 64, one thread: 1.5-5x faster with a requantization than transposing a
    row [OW, OC] at a time (short rows of 7-28 did not vectorize: 1-7 ns per value), and no slower
    without one."""
    n, oh, ow, oc = acc.shape
    has_extra = extra.size > 0
    plane = oh * ow
    chunks = (oc + EPILOGUE_CHANNELS - 1) // EPILOGUE_CHANNELS
    for item in numba.prange(n * chunks):
        b = item // chunks
        o0 = (item - b * chunks) * EPILOGUE_CHANNELS
        col = np.empty(plane, dtype=np.int64)
        for o in range(o0, min(oc, o0 + EPILOGUE_CHANNELS)):
            bo = bias[o]
            for i in range(oh):
                row = acc[b, i]
                for j in range(ow):
                    col[i * ow + j] = np.int64(row[j, o]) + bo
            if has_extra:
                ex = extra[b, o]
                for i in range(oh):
                    for j in range(ow):
                        col[i * ow + j] += np.int64(ex[i, j])
            if do_rq:
                lf, rt, hf, od = left[o], right[o], half[o], odd[o]
                for k in range(plane):
                    col[k] = rq_scalar(col[k], lf, rt, hf, od, rq_min, rq_max)
            dst = out[b, o]
            for i in range(oh):
                for j in range(ow):
                    dst[i, j] = col[i * ow + j]


@numba.njit(parallel=True, cache=True)
def planes_epilogue(acc, offset, stride, wp, ow, bias, addend, extra, do_rq, left, right, half, odd, rq_min, rq_max,
                    out):
    """Plane-major accumulator (:class:`hwsim.intsim.vnni.Planes`: ``acc[o, offset + b*stride + i*wp + j]``)
    -> out [N, OC, OH*OW]: Requant?(acc + bias[o] + addend[b, o] + extra[b, o, k]) (``addend``
    [N, OC] or empty: the U-Net's time embedding; ``extra`` of out's shape or empty). A channel's
    rows are first copied, without conversion, into a contiguous buffer, then everything else runs
    as one long vector loop per plane: loops over rows of 7-28 values that convert stay scalar and
    cost as much as the rest together."""
    n, oc, plane = out.shape
    oh = plane // ow
    has_add, has_extra = addend.size > 0, extra.size > 0
    for item in numba.prange(n * oc):
        b = item // oc
        o = item - b * oc
        col = np.empty(plane, dtype=acc.dtype)
        for i in range(oh):
            start = offset + b * stride + i * wp
            col[i * ow:(i + 1) * ow] = acc[o, start: start + ow]
        bo = bias[o] + (addend[b, o] if has_add else 0)
        r = o if do_rq else 0
        lf, rt, hf, od = left[r], right[r], half[r], odd[r]
        dst = out[b, o]
        if has_extra:
            ex = extra[b, o]
            for k in range(plane):
                v = np.int64(col[k]) + bo + np.int64(ex[k])
                dst[k] = rq_scalar(v, lf, rt, hf, od, rq_min, rq_max) if do_rq else v
        elif do_rq:
            for k in range(plane):
                dst[k] = rq_scalar(np.int64(col[k]) + bo, lf, rt, hf, od, rq_min, rq_max)
        else:
            for k in range(plane):
                dst[k] = np.int64(col[k]) + bo


@numba.njit(parallel=True, cache=True)
def upsample_into(x, f, out):
    """Nearest upsampling of x [N, C, H, W] by f into out [N, C, H*f, W*f]: each output row once
    (f = 2, the U-Net's, spelled out: 3x faster than the general loop), then copied f-1 times."""
    n, c, h, w = x.shape
    for nc in numba.prange(n * c):
        b = nc // c
        ch = nc - b * c
        src, dst = x[b, ch], out[b, ch]
        for i in range(h):
            row, s = dst[i * f], src[i]
            if f == 2:
                for j in range(w):
                    row[2 * j] = s[j]
                    row[2 * j + 1] = s[j]
            else:
                for j in range(w):
                    for k in range(f):
                        row[j * f + k] = s[j]
            for u in range(1, f):
                dst[i * f + u, :] = row


@numba.njit(parallel=True, cache=True)
def add_into(a, b, out):
    """out = a + b (int64 arithmetic) for three arrays of one shape [rows, length]."""
    rows, length = a.shape
    for r in numba.prange(rows):
        x, y, dst = a[r], b[r], out[r]
        for i in range(length):
            dst[i] = np.int64(x[i]) + np.int64(y[i])
