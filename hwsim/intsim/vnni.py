"""Stride-1 int8 convolution on AVX-512 VNNI (``vpdpbusd``), bit-exact, hand-written.

Why hand-written: ``vpdpbusd`` does 64 u8 x s8 multiply-adds into 16 int32 lanes per
instruction, four times the rate of the fp32 FMAs of the BLAS path, but no library open to
the simulator (numpy, scipy; no torch, no onnxruntime) exposes an int8 GEMM. So the
microkernel is LLVM IR emitted through a Numba intrinsic calling
``llvm.x86.avx512.vpdpbusd.512``, and Numba loops drive it.

Scheme (implicit GEMM, as :func:`hwsim.intsim.kernels._shifted_gemm_conv`): the zero-padded
input is flattened channels-last to rows r = (b*HP + i)*WP + j and stored as ``u8 = x + 128``
in planes of 4 channels (``[Cp/4, rows]`` of 4-byte words, Cp = C rounded up to 4); tap
(u, v) reads the rows shifted by ``u*WP + v``. A tile of MR rows x NR vectors of 16 output
channels keeps its MR*NR accumulators in registers over all taps and channels: per 4
channels, NR weight vectors ``[16 oc x 4 c]`` (packed once) against one broadcast 4-byte word
per row. Accumulators start at ``-128 * sum(w[o])``, which cancels the offset (padding is
128, i.e. x = 0, so the offset adds exactly ``128 * w`` at every tap).

Exactness: ``vpdpbusd`` adds its four u8 x s8 products into int32 with wrap-around (it does
not saturate), and addition modulo 2^32 is associative, so the result equals the true sum
``sum x * w`` modulo 2^32; that sum is at most ``128 * sum|w[o]|`` in magnitude (|x| <= 128),
so the result is exact when that is below 2^31 (checked; with int8 weights it fails only past
131,072 taps x channels). Applies when every input value and every weight is in [-128, 127];
otherwise the functions return None and the caller keeps BLAS.
"""

from __future__ import annotations

import functools
import sys
import weakref

import llvmlite.binding as llb
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic

MR = (0, 28, 14, 9, 7)  # rows per tile for NR = 1..4 vectors of 16 output channels: MR*NR <= 28 of 32 zmm
MR_MAX = max(MR)
BLOCK = 252  # rows per parallel work item, a multiple of every MR

_V = ir.VectorType(ir.IntType(32), 16)


@functools.cache
def available() -> bool:
    """Whether this CPU, and Numba's compile target, have AVX-512 VNNI (else callers use BLAS)."""
    try:
        host = bool(llb.get_host_cpu_features().get("avx512vnni", False))
    except Exception:  # pragma: no cover - feature query unsupported
        return False
    if config.CPU_NAME not in (None, "host"):  # NUMBA_CPU_NAME: compiled for that CPU, with NUMBA_CPU_FEATURES
        return host and "+avx512vnni" in (config.CPU_FEATURES or "")
    return host


def _make_tile(nr: int):
    """Intrinsic tile(rows, wpk, init, out, r0, j0, kh, kw, wp): out[r0 : r0+MR, 16*j0 : 16*(j0+nr)]."""
    mr = MR[nr]

    @intrinsic
    def tile(typingctx, rows, wpk, init, out, r0, j0, kh, kw, wp):
        def codegen(context, builder, sig, args):
            rows_a, wpk_a, init_a, out_a = (context.make_array(t)(context, builder, v)
                                            for t, v in zip(sig.args[:4], args[:4]))
            r0, j0, kh, kw, wp = args[4:]
            i64, i32 = ir.IntType(64), ir.IntType(32)
            c = lambda v: ir.Constant(i64, v)  # noqa: E731
            c4n, nrows = (builder.extract_value(rows_a.shape, k) for k in (0, 1))  # channel quads, rows per plane
            nv = builder.extract_value(wpk_a.shape, 2)  # 16-lane vectors per output row
            vdp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V, [_V] * 3),
                                                 "llvm.x86.avx512.vpdpbusd.512")
            a_p = builder.bitcast(rows_a.data, i32.as_pointer())
            w_p, init_p, out_p = (builder.bitcast(a.data, _V.as_pointer()) for a in (wpk_a, init_a, out_a))
            acc = [[cgutils.alloca_once(builder, _V) for _ in range(nr)] for _ in range(mr)]
            for j in range(nr):
                v = builder.load(builder.gep(init_p, [builder.add(j0, c(j))]), align=4)
                for i in range(mr):
                    builder.store(v, acc[i][j])
            bcast = ir.Constant(_V, [0] * 16)
            with cgutils.for_range(builder, kh) as lu, cgutils.for_range(builder, kw) as lv:
                tap = builder.add(builder.mul(lu.index, kw), lv.index)
                row = builder.add(r0, builder.add(builder.mul(lu.index, wp), lv.index))
                w_tap = builder.add(builder.mul(builder.mul(tap, c4n), nv), j0)
                with cgutils.for_range(builder, c4n) as lk:
                    w_k = builder.add(w_tap, builder.mul(lk.index, nv))
                    b = [builder.load(builder.gep(w_p, [builder.add(w_k, c(j))]), align=4) for j in range(nr)]
                    a_k = builder.add(builder.mul(lk.index, nrows), row)
                    for i in range(mr):
                        a = builder.load(builder.gep(a_p, [builder.add(a_k, c(i))]), align=4)
                        a = builder.insert_element(ir.Constant(_V, None), a, ir.Constant(i32, 0))
                        a = builder.shuffle_vector(a, ir.Constant(_V, None), bcast)
                        for j in range(nr):
                            builder.store(builder.call(vdp, [builder.load(acc[i][j]), a, b[j]]), acc[i][j])
            for i in range(mr):
                o = builder.add(builder.mul(builder.add(r0, c(i)), nv), j0)
                for j in range(nr):
                    builder.store(builder.load(acc[i][j]), builder.gep(out_p, [builder.add(o, c(j))]), align=4)
            return context.get_dummy_value()

        return types.void(rows, wpk, init, out, r0, j0, kh, kw, wp), codegen

    return tile


_tile1, _tile2, _tile3, _tile4 = (_make_tile(nr) for nr in (1, 2, 3, 4))


@numba.njit(parallel=True, cache=True)
def _run(rows, wpk, init, out, groups, n, stride, span, kh, kw, wp):
    """out rows [b*stride, b*stride + span) of every image b, by chunks of BLOCK rows; an image's
    last tile may run past its span, into its own cropped rows."""
    chunks = (span + BLOCK - 1) // BLOCK
    for item in numba.prange(n * chunks):
        b = item // chunks
        start = b * stride + (item - b * chunks) * BLOCK
        end = min(start + BLOCK, b * stride + span)
        for g in range(groups.shape[0]):
            j0, nr = groups[g, 0], groups[g, 1]
            for r0 in range(start, end, MR[nr]):
                if nr == 1:
                    _tile1(rows, wpk, init, out, r0, j0, kh, kw, wp)
                elif nr == 2:
                    _tile2(rows, wpk, init, out, r0, j0, kh, kw, wp)
                elif nr == 3:
                    _tile3(rows, wpk, init, out, r0, j0, kh, kw, wp)
                else:
                    _tile4(rows, wpk, init, out, r0, j0, kh, kw, wp)


@numba.njit(cache=True)
def _quad_plane(x, plane, b, q, pt, pl, wp):
    """plane[(pt+i)*WP + pl + j] = the 4 bytes x[b, 4q : 4q+4, i, j] + 128 (missing channels 128),
    every other word 128s; the flags of out-of-int8 values (0 if none)."""
    c, h, wd = x.shape[1:]
    pad = np.uint32(0x80808080)
    plane[: pt * wp + pl] = pad
    flags = 0
    for i in range(h):
        dst = plane[(pt + i) * wp + pl:]
        if 4 * q + 4 <= c:
            x0, x1, x2, x3 = x[b, 4 * q, i], x[b, 4 * q + 1, i], x[b, 4 * q + 2, i], x[b, 4 * q + 3, i]
            for j in range(wd):
                t0, t1 = np.int64(x0[j]) + 128, np.int64(x1[j]) + 128
                t2, t3 = np.int64(x2[j]) + 128, np.int64(x3[j]) + 128
                flags |= (t0 | t1 | t2 | t3) >> 8
                dst[j] = np.uint32((t0 & 255) | ((t1 & 255) << 8) | ((t2 & 255) << 16) | ((t3 & 255) << 24))
        else:
            for j in range(wd):
                word = np.int64(0)
                for k in range(4):
                    t = np.int64(x[b, 4 * q + k, i, j]) + 128 if 4 * q + k < c else np.int64(128)
                    flags |= t >> 8
                    word |= (t & 255) << (8 * k)
                dst[j] = np.uint32(word)
        dst[wd: wp if i < h - 1 else len(dst)] = pad  # right padding and the next row's left (or the rest)
    return flags


@numba.njit(parallel=True, cache=True)
def _to_rows(x, rows, stride, pt, pl, wp):
    """Each image's rows [q, b*stride : (b+1)*stride] from x (``_quad_plane``); False if some x is outside int8."""
    quads = rows.shape[0]
    bad = 0
    for item in numba.prange(x.shape[0] * quads):
        b = item // quads
        q = item - b * quads
        bad += _quad_plane(x, rows[q, b * stride:(b + 1) * stride], b, q, pt, pl, wp) != 0
    return bad == 0


def _int_input(dt) -> bool:
    return dt.kind == "i" or (dt.kind == "u" and dt.itemsize < 8)  # exactly representable in int64


def int8_weights(w: np.ndarray) -> np.ndarray | None:
    """Conv weights [OC, C, KH, KW] as int8 if every one fits and each output's int32 sum is exact
    (``128 * sum|w[o]| < 2^31``, the bound of the module docstring), else None."""
    w = np.asarray(w)
    if w.ndim != 4 or w.size == 0 or w.dtype.kind not in "iu" or w.min() < -128 or w.max() > 127:
        return None
    w8 = w.astype(np.int8)
    if 128 * np.abs(w8, dtype=np.int32).reshape(w.shape[0], -1).sum(1, dtype=np.int64).max() >= 2**31:
        return None
    return w8


def pack_weights(w: np.ndarray):
    """Weights [OC, C, KH, KW] -> packed operand of :func:`conv_s1` (built once per conv), or None
    if some weight is outside int8 or the int32 bound fails."""
    w8 = int8_weights(w) if available() else None
    if w8 is None:
        return None
    oc, c, kh, kw = w8.shape
    cp, ocp = -(-c // 4) * 4, -(-oc // 16) * 16
    wz = np.zeros((ocp, cp, kh, kw), dtype=np.int8)
    wz[:oc, :c] = w8
    # [taps, Cp/4, OCp/16, 16, 4]: one 64-byte vector per (tap, channel quad, 16 output channels)
    wpk = np.ascontiguousarray(wz.reshape(ocp // 16, 16, cp // 4, 4, kh * kw).transpose(4, 2, 0, 1, 3))
    init = np.zeros(ocp, dtype=np.int32)
    init[:oc] = -128 * w8.reshape(oc, -1).sum(1, dtype=np.int64)
    nv = ocp // 16  # output vectors, in groups of at most 4 per tile
    ng = -(-nv // 4)
    sizes = [nv // ng + (g < nv % ng) for g in range(ng)]
    groups = np.array([[sum(sizes[:g]), s] for g, s in enumerate(sizes)], dtype=np.int64)
    return {"wpk": wpk, "init": init, "groups": groups, "shape": (oc, c, kh, kw)}


_PACKED: dict[tuple, tuple] = {}


def _phase_split(a: np.ndarray, sh: int, sw: int) -> np.ndarray:
    """[N, C, SH*H, SW*W] -> [N, SH*SW*C, H, W]: channel (a, b, c) holds a[:, c, a::SH, b::SW]."""
    n, c, h, w = a.shape
    return a.reshape(n, c, h // sh, sh, w // sw, sw).transpose(0, 3, 5, 1, 2, 4).reshape(n, sh * sw * c, h // sh, w // sw)


def packed_for(w: np.ndarray, strides=(1, 1), backend=None):
    """``backend.pack_weights`` (this module's by default) of ``w`` (for ``strides``: its phases, see
    :func:`conv`), packed once per weight array (a graph's constants are packed on their first run
    and kept while the array lives)."""
    backend = backend or sys.modules[__name__]
    key = (id(w), tuple(strides), backend.__name__)
    hit = _PACKED.get(key)
    if hit is not None and hit[0]() is w:
        return hit[1]
    sh, sw = strides
    if (sh, sw) != (1, 1):
        oc, c, kh, kw = w.shape
        wz = np.zeros((oc, c, -(-kh // sh) * sh, -(-kw // sw) * sw), dtype=w.dtype)
        wz[:, :, :kh, :kw] = w
        packed = backend.pack_weights(_phase_split(wz, sh, sw))
    else:
        packed = backend.pack_weights(w)
    _PACKED[key] = (weakref.ref(w, lambda _, key=key: _PACKED.pop(key, None)), packed)
    return packed


def conv(x: np.ndarray, w: np.ndarray, strides, pads, backend=None):
    """Conv of x [N, C, H, W] with w [OC, C, KH, KW] at any stride: int32 [N, OH, OW, OC], or None
    where ``backend.conv_s1`` would be (``backend``: a module with this one's ``pack_weights`` and
    ``conv_s1``, this one by default; :mod:`hwsim.intsim.amx` is the other). A stride (SH, SW) conv
    is the stride-1 conv of the padded input's SH*SW phases with the kernel's phases
    (ceil(KH/SH) x ceil(KW/SW), zeros past the kernel): the same products, so exact."""
    backend = backend or sys.modules[__name__]
    sh, sw = strides
    packed = packed_for(w, strides, backend)
    if (sh, sw) == (1, 1) or packed is None:
        return backend.conv_s1(x, packed, pads)
    n, c, h, wd = x.shape
    _, _, kh, kw = w.shape
    pt, pl, pb, pr = pads
    oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    if min(pads) < 0 or oh < 1 or ow < 1 or not _int_input(x.dtype):
        return None
    ph, pw = oh + -(-kh // sh) - 1, ow + -(-kw // sw) - 1  # each phase's rows and columns
    padded = np.zeros((n, c, sh * ph, sw * pw), dtype=x.dtype)
    rows, cols = min(h, sh * ph - pt), min(wd, sw * pw - pl)  # input past the last window is not read
    padded[:, :, pt:pt + rows, pl:pl + cols] = x[:, :, :rows, :cols]
    return backend.conv_s1(_phase_split(padded, sh, sw), packed, (0, 0, 0, 0))


def rows_geometry(x: np.ndarray, packed, pads, margin: int):
    """The implicit GEMM's rows of a stride-1 conv of x with ``packed`` weights (shared with
    :mod:`hwsim.intsim.amx`): (n, hp, wp, reach, span, stride), or None if x does not fit them or
    is not integer. ``reach``: the largest tap shift; ``span``: rows from an image's first to past its
    last output; ``stride``: rows per image, so that a tile running ``margin`` rows past the span
    stays in its own image."""
    _, c, kh, kw = packed["shape"]
    n, cx, h, wd = x.shape
    pt, pl, pb, pr = pads
    hp, wp = h + pt + pb, wd + pl + pr
    if cx != c or min(pads) < 0 or hp < kh or wp < kw or not _int_input(x.dtype):
        return None
    reach = (kh - 1) * wp + kw - 1
    span = hp * wp - reach
    return n, hp, wp, reach, span, max(hp * wp, span + margin)


def crop_rows(out: np.ndarray, packed, n: int, hp: int, wp: int, stride: int) -> np.ndarray:
    """The output rows [n*stride (+ margin), OCp] as [N, OH, OW, OC] (a view)."""
    oc, _, kh, kw = packed["shape"]
    ocp = out.shape[1]
    out = out[: n * stride].reshape(n, stride, ocp)[:, : hp * wp].reshape(n, hp, wp, ocp)
    return out[:, : hp - kh + 1, : wp - kw + 1, :oc]


def conv_s1(x: np.ndarray, packed, pads):
    """Stride-1 conv of x [N, C, H, W] (integer) with ``pack_weights``' output: int32 [N, OH, OW, OC]
    (a view), as ``_shifted_gemm_conv``; None if ``packed`` is None or some x is outside int8."""
    geometry = None if packed is None else rows_geometry(x, packed, pads, MR_MAX)
    if geometry is None:
        return None
    n, hp, wp, reach, span, stride = geometry
    _, _, kh, kw = packed["shape"]
    wpk = packed["wpk"]
    quads, ocp = wpk.shape[1], wpk.shape[2] * 16
    rows = np.empty((quads, n * stride + MR_MAX + reach), dtype=np.uint32)
    rows[:, n * stride:] = 0x80808080
    if not _to_rows(x, rows, stride, pads[0], pads[1], wp):
        return None
    out = np.empty((n * stride + MR_MAX, ocp), dtype=np.int32)
    _run(rows, wpk, packed["init"], out, packed["groups"], n, stride, span, kh, kw, wp)
    return crop_rows(out, packed, n, hp, wp, stride)
