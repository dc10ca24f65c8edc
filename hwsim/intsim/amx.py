"""Stride-1 int8 convolution on Intel AMX (``tdpbssd``), bit-exact, hand-written.

Why hand-written: one ``tdpbssd`` multiplies a 16 x 64 int8 tile by a 64 x 16 one into 16 x 16
int32 accumulators (16,384 multiply-adds), 16 times the rate of :mod:`hwsim.intsim.vnni`'s
``vpdpbusd`` per instruction, and no library open to the simulator exposes it. As in
:mod:`hwsim.intsim.vnni`, the microkernel is LLVM IR emitted through a Numba intrinsic (the
``llvm.x86.tileloadd64`` / ``tdpbssd`` / ``tilestored64`` intrinsics, whose tile registers are
immediates), and Numba loops drive it. Linux hands AMX's tile state to a process only on request
(``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``); :func:`available` asks once.

Scheme (implicit GEMM, the rows of :mod:`hwsim.intsim.vnni`): the zero-padded input is flattened
channels-last to rows r = (b*HP + i)*WP + j of Cp int8 channels (Cp = C rounded up to chunks of
at most 64 channels, a multiple of 4); tap (u, v) reads the rows shifted by ``u*WP + v``. A block
of 32 rows x 16*NT output channels keeps its 2*NT accumulator tiles in tile registers over all
taps and channel chunks: per (tap, chunk), two input tiles (16 rows x Kc channels, strided loads
straight from the rows) and NT weight tiles (packed once, in the 4-channel pairs AMX wants).
Signed x signed products (``tdpbssd``), so no offset and no correction term; padding is 0.

Exactness: ``tdpbssd`` adds into int32 with wrap-around, so the result equals the true sum
modulo 2^32; that sum is at most ``128 * sum|w[o]|`` in magnitude, so it is exact when that is
below 2^31 (checked when packing: :func:`hwsim.intsim.vnni.int8_weights`). Applies when
every input value and every weight is in [-128, 127]; otherwise the functions return None and the
caller falls back (VNNI, then BLAS).
"""

from __future__ import annotations

import ctypes
import functools
import sys

import llvmlite.binding as llb
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic

from hwsim.intsim.vnni import integer_input, int8_weights

TM = 16  # rows per tile
MT = 2  # row tiles per block
ROWS = TM * MT  # rows per block
BLOCK = 8 * ROWS  # rows per parallel work item
K_MAX = 64  # int8 channels per tile row
# tile registers: accumulators C[i][j] = 2*i + j (i < MT, j < NT <= 2), inputs A[i] = 4 + i, weights B[j] = 6 + j
_C, _A, _B = (lambda i, j: 2 * i + j), (lambda i: 4 + i), (lambda j: 6 + j)


def _request_tile_permission() -> bool:
    """Linux (>= 5.16) lets a process use the tile registers only after this request."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata = 158, 0x1023, 18
        return libc.syscall(sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0
    except (OSError, AttributeError):  # pragma: no cover - no libc.syscall
        return False


@functools.cache
def available() -> bool:
    """Whether this CPU and Numba's compile target have AMX-INT8 and the OS grants the tile state."""
    try:
        features = llb.get_host_cpu_features()
    except Exception:  # pragma: no cover - feature query unsupported
        return False
    if not (features.get("amx-int8", False) and features.get("amx-tile", False)) or "x86_64" not in llb.get_default_triple():
        return False
    if config.CPU_NAME not in (None, "host") and "+amx-int8" not in (config.CPU_FEATURES or ""):
        return False
    return _request_tile_permission()


def pays(w_shape) -> bool:
    """Whether this kernel beats :mod:`hwsim.intsim.vnni` on a conv of these weights: it pays for its
    channels-last copy of the input with several taps and more than 4 channels (measured on the
    U-Net's shapes, ``docs/intsim_speed.md``; on 1x1 convs and on 1-channel inputs VNNI wins)."""
    _, c, kh, kw = w_shape
    return kh * kw > 1 and c > 4


def _tile_config(kc: int) -> np.ndarray:
    """The 64-byte ``ldtilecfg`` operand: palette 1; accumulator tiles 16 x 64 bytes, input tiles
    16 rows x kc bytes, weight tiles kc/4 rows x 64 bytes."""
    cfg = np.zeros(64, dtype=np.uint8)
    cfg[0] = 1
    colsb, rows = cfg[16:32].view(np.uint16), cfg[48:56]
    for t in range(8):
        colsb[t] = kc if 4 <= t < 6 else 64
        rows[t] = kc // 4 if t >= 6 else TM
    return cfg


def _make_block(nt: int):
    """Intrinsic block(xcl, wpk, out, r0, j0, kh, kw, wp): out[r0 : r0+32, 16*j0 : 16*(j0+nt)], on
    the tile configuration :func:`_configure` loaded."""

    @intrinsic
    def block(typingctx, xcl, wpk, out, r0, j0, kh, kw, wp):
        def codegen(context, builder, sig, args):
            x_a, w_a, out_a = (context.make_array(t)(context, builder, v) for t, v in zip(sig.args[:3], args[:3]))
            r0, j0, kh, kw, wp = args[3:]
            i8, i64 = ir.IntType(8), ir.IntType(64)
            i8p = i8.as_pointer()
            c = lambda v: ir.Constant(i64, v)  # noqa: E731
            t = lambda v: ir.Constant(i8, v)  # noqa: E731

            def fn(name, argtys):
                return builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(ir.VoidType(), argtys), name)

            load, store = fn("llvm.x86.tileloadd64", [i8, i8p, i64]), fn("llvm.x86.tilestored64", [i8, i8p, i64])
            dot, zero = fn("llvm.x86.tdpbssd", [i8, i8, i8]), fn("llvm.x86.tilezero", [i8])
            cp = builder.extract_value(x_a.shape, 1)  # channels per row (bytes)
            chunks, nv, k4 = (builder.extract_value(w_a.shape, k) for k in (1, 2, 3))
            ocp = builder.extract_value(out_a.shape, 1)
            kc = builder.mul(k4, c(4))
            x_p, w_p, o_p = (builder.bitcast(a.data, i8p) for a in (x_a, w_a, out_a))
            for i in range(MT):
                for j in range(nt):
                    builder.call(zero, [t(_C(i, j))])
            with cgutils.for_range(builder, kh) as lu, cgutils.for_range(builder, kw) as lv:
                tap = builder.add(builder.mul(lu.index, kw), lv.index)
                row = builder.add(r0, builder.add(builder.mul(lu.index, wp), lv.index))
                with cgutils.for_range(builder, chunks) as lk:
                    for i in range(MT):
                        at = builder.add(builder.mul(builder.add(row, c(TM * i)), cp), builder.mul(lk.index, kc))
                        builder.call(load, [t(_A(i)), builder.gep(x_p, [at]), cp])
                    w_chunk = builder.mul(builder.add(builder.mul(tap, chunks), lk.index), nv)
                    for j in range(nt):
                        at = builder.mul(builder.add(w_chunk, builder.add(j0, c(j))), builder.mul(k4, c(64)))
                        builder.call(load, [t(_B(j)), builder.gep(w_p, [at]), c(64)])
                    for i in range(MT):
                        for j in range(nt):
                            builder.call(dot, [t(_C(i, j)), t(_A(i)), t(_B(j))])
            for i in range(MT):
                for j in range(nt):
                    at = builder.mul(builder.add(builder.mul(builder.add(r0, c(TM * i)), ocp), builder.mul(builder.add(j0, c(j)), c(16))), c(4))
                    builder.call(store, [t(_C(i, j)), builder.gep(o_p, [at]), builder.mul(ocp, c(4))])
            return context.get_dummy_value()

        return types.void(xcl, wpk, out, r0, j0, kh, kw, wp), codegen

    return block


_block1, _block2 = _make_block(1), _make_block(2)


@intrinsic
def _configure(typingctx, cfg):
    """ldtilecfg: this thread's tile shapes (a 64-byte :func:`_tile_config`)."""
    def codegen(context, builder, sig, args):
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), "llvm.x86.ldtilecfg")
        builder.call(fn, [builder.bitcast(context.make_array(sig.args[0])(context, builder, args[0]).data, i8p)])
        return context.get_dummy_value()

    return types.void(cfg), codegen


@intrinsic
def _release(typingctx):
    """tilerelease: the tile state back to its initial one (so the OS need not save it)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.tilerelease")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@numba.njit(parallel=True, cache=True)
def _run(cfg, xcl, wpk, out, n, stride, span, kh, kw, wp):
    """out rows [b*stride, b*stride + span) of every image b, by work items of BLOCK rows; an image's
    last block may run past its span, into its own cropped rows."""
    nv = wpk.shape[2]
    chunks = (span + BLOCK - 1) // BLOCK
    for item in numba.prange(n * chunks):
        b = item // chunks
        start = b * stride + (item - b * chunks) * BLOCK
        end = min(start + BLOCK, b * stride + span)
        _configure(cfg)
        for j0 in range(0, nv - 1, 2):
            for r0 in range(start, end, ROWS):
                _block2(xcl, wpk, out, r0, j0, kh, kw, wp)
        if nv % 2:
            for r0 in range(start, end, ROWS):
                _block1(xcl, wpk, out, r0, nv - 1, kh, kw, wp)
        _release()


@numba.njit(parallel=True, cache=True)
def _to_channels_last(x, xcl, stride, pt, pl, hp, wp):
    """Every image's rows: xcl[b*stride + (pt+i)*WP + pl + j, c] = x[b, c, i, j], padding and the
    rows past HP*WP 0; False if some x is outside int8. One padded image row per work item, its
    four channels packed into each 32-bit store."""
    n, c, h, wd = x.shape
    xcl32 = xcl.view(np.uint32)
    bad = 0
    for item in numba.prange(n * hp):
        b = item // hp
        i = item - b * hp
        base = b * stride + i * wp
        xcl[base:base + wp] = 0
        if pt <= i < pt + h:
            flags = 0
            words = xcl32[base + pl:base + pl + wd]
            for q in range((c + 3) // 4):  # 4 channels per 32-bit word, rows read contiguously
                if 4 * q + 4 <= c:
                    x0, x1 = x[b, 4 * q, i - pt], x[b, 4 * q + 1, i - pt]
                    x2, x3 = x[b, 4 * q + 2, i - pt], x[b, 4 * q + 3, i - pt]
                    for j in range(wd):
                        t0, t1, t2, t3 = np.int64(x0[j]), np.int64(x1[j]), np.int64(x2[j]), np.int64(x3[j])
                        flags |= ((t0 + 128) | (t1 + 128) | (t2 + 128) | (t3 + 128)) >> 8
                        words[j, q] = np.uint32((t0 & 255) | ((t1 & 255) << 8) | ((t2 & 255) << 16) | ((t3 & 255) << 24))
                else:
                    for j in range(wd):
                        word = np.int64(0)
                        for k in range(c - 4 * q):
                            t = np.int64(x[b, 4 * q + k, i - pt, j])
                            flags |= (t + 128) >> 8
                            word |= (t & 255) << (8 * k)
                        words[j, q] = np.uint32(word)
            bad += flags != 0
        if i == hp - 1:  # the rows a block may read past this image's last padded row
            xcl[b * stride + hp * wp:(b + 1) * stride] = 0
    xcl[n * stride:] = 0
    return bad == 0


def pack_weights(w: np.ndarray):
    """Weights [OC, C, KH, KW] -> packed operand of :func:`conv_s1` (built once per conv), or None
    if some weight is outside int8 or the int32 bound fails."""
    w8 = int8_weights(w) if available() else None
    if w8 is None:
        return None
    oc, c, kh, kw = w8.shape
    c4 = -(-c // 4) * 4
    chunks = -(-c4 // K_MAX)
    per_chunk = -(-c4 // chunks)
    kc = -(-per_chunk // 4) * 4
    cp, ocp = kc * chunks, -(-oc // 16) * 16
    wz = np.zeros((ocp, cp, kh, kw), dtype=np.int8)
    wz[:oc, :c] = w8
    # [taps, chunks, OCp/16, Kc/4, 16, 4]: one weight tile per (tap, chunk, 16 output channels), whose
    # row k holds channels 4k..4k+3 of each of the 16 outputs
    wpk = np.ascontiguousarray(wz.reshape(ocp // 16, 16, chunks, kc // 4, 4, kh * kw).transpose(5, 2, 0, 3, 1, 4))
    return {"wpk": wpk, "cfg": _tile_config(kc), "cp": cp, "shape": (oc, c, kh, kw)}


def rows_geometry(x: np.ndarray, packed, pads, margin: int):
    """The implicit GEMM's rows of a stride-1 conv of x with ``packed`` weights: (n, hp, wp, reach, span, stride), or None if x does not fit them or
    is not integer. ``reach``: the largest tap shift; ``span``: rows from an image's first to past its
    last output; ``stride``: rows per image, so that a tile running ``margin`` rows past the span
    stays in its own image."""
    _, c, kh, kw = packed["shape"]
    n, cx, h, wd = x.shape
    pt, pl, pb, pr = pads
    hp, wp = h + pt + pb, wd + pl + pr
    if cx != c or min(pads) < 0 or hp < kh or wp < kw or not integer_input(x.dtype):
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
    (a view), as :func:`hwsim.intsim.vnni.conv_s1`; None if ``packed`` is None or some x is outside int8."""
    geometry = None if packed is None else rows_geometry(x, packed, pads, ROWS)
    if geometry is None:
        return None
    n, hp, wp, reach, span, stride = geometry
    _, _, kh, kw = packed["shape"]
    wpk = packed["wpk"]
    xcl = np.empty((n * stride + ROWS + reach, packed["cp"]), dtype=np.int8)
    if not _to_channels_last(x, xcl, stride, pads[0], pads[1], hp, wp):
        return None
    out = np.empty((n * stride + ROWS, wpk.shape[2] * 16), dtype=np.int32)
    _run(packed["cfg"], xcl, wpk, out, n, stride, span, kh, kw, wp)
    return crop_rows(out, packed, n, hp, wp, stride)
