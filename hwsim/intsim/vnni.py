"""Stride-1 int8 convolution on AVX-512 VNNI (``vpdpbusd``), bit-exact, hand-written.

Why hand-written: ``vpdpbusd`` does 64 u8 x s8 multiply-adds into 16 int32 lanes per
instruction, four times the rate of the fp32 FMAs of the BLAS path, but no library open to
the simulator (numpy, scipy; no torch, no onnxruntime) exposes an int8 GEMM. So the
microkernel is LLVM IR emitted through a Numba intrinsic calling
``llvm.x86.avx512.vpdpbusd.512``, and Numba loops drive it.

Scheme (implicit GEMM, as :func:`hwsim.intsim.kernels._shifted_gemm_conv`): the zero-padded
input is flattened channels-last to rows r = (b*HP + i)*WP + j and stored as ``u8 = x + 128``
in planes of 4 channels (``[Cp/4, rows]`` of 4-byte words, Cp = C rounded up to 4); tap
(u, v) reads the rows shifted by ``u*WP + v``. A tile of MV vectors of 16 consecutive rows x NO
output channels keeps its MV*NO accumulators in registers over all taps and channels: per 4
channels, MV row vectors (one 64-byte load each) against one broadcast 4-byte weight word per
output channel. The accumulator is therefore plane-major, ``[OC, rows]`` (:class:`Planes`): each
output channel's padded plane is contiguous, which the epilogue
(:func:`hwsim.intsim.fused.planes_epilogue`) turns into NCHW with long vector loops. (The first
version vectorized over 16 output channels and left a channels-last accumulator whose transposition
cost as much as the GEMM on the U-Net's 16- and 32-channel layers.) Accumulators start at
``-128 * sum(w[o])``, which cancels the offset (padding is 128, i.e. x = 0, so the offset adds
exactly ``128 * w`` at every tap). Tiles run over the rows of all images as one range (rows
past an image's last output are computed and cropped).

Linear layers (:func:`linear`) run on the same tiles with the roles swapped, so that their
accumulator comes out row-major ``[M, N]``: the weights are the row vectors, each input row an
"output channel" whose words are broadcast.

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
from typing import NamedTuple

import llvmlite.binding as llb
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic

from hwsim.intsim.fused import rq_args, rq_scalar

NO_MAX = 8  # output channels per tile
MV = (0, 7, 7, 7, 6, 5, 4, 3, 3)  # 16-row vectors per tile for NO = 1..8: MV*NO accumulators + MV inputs <= 31 zmm
TILE_ROWS = 16 * max(MV)  # the most rows a tile computes past its start
CHUNK_ROWS = 256  # rows per parallel work item, rounded up to whole tiles
NO_PROLOGUE = rq_args(None)

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


@intrinsic
def _tile(typingctx, rows, wq, init, out, r0, o0, no, kh, kw, wp):
    """tile(rows, wq, init, out, r0, o0, no, kh, kw, wp): out[o0 : o0+no, r0 : r0+16*MV[no]], for
    1 <= no <= NO_MAX (a switch over the shapes: each is unrolled, its accumulators in registers)."""

    def codegen(context, builder, sig, args):
        rows_a, wq_a, init_a, out_a = (context.make_array(t)(context, builder, v)
                                       for t, v in zip(sig.args[:4], args[:4]))
        r0, o0, no, kh, kw, wp = args[4:]
        i64, i32 = ir.IntType(64), ir.IntType(32)
        c = lambda v: ir.Constant(i64, v)  # noqa: E731
        quads, nrows = (builder.extract_value(rows_a.shape, k) for k in (0, 1))  # channel quads, rows per plane
        noc = builder.extract_value(wq_a.shape, 2)  # output channels
        ncols = builder.extract_value(out_a.shape, 1)  # rows of the accumulator
        vdp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V, [_V] * 3),
                                             "llvm.x86.avx512.vpdpbusd.512")
        a_p, w_p, init_p, out_p = (builder.bitcast(a.data, i32.as_pointer()) for a in (rows_a, wq_a, init_a, out_a))
        vec = lambda ptr: builder.bitcast(ptr, _V.as_pointer())  # noqa: E731
        first = ir.Constant(_V, [0] * 16)

        def splat(value):
            v = builder.insert_element(ir.Constant(_V, None), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, ir.Constant(_V, None), first)

        def body(n):  # the tile of n output channels
            mv = MV[n]
            acc = [[cgutils.alloca_once(builder, _V) for _ in range(n)] for _ in range(mv)]
            for j in range(n):
                v = splat(builder.load(builder.gep(init_p, [builder.add(o0, c(j))])))
                for i in range(mv):
                    builder.store(v, acc[i][j])
            with cgutils.for_range(builder, kh) as lu, cgutils.for_range(builder, kw) as lv:
                tap = builder.add(builder.mul(lu.index, kw), lv.index)
                row = builder.add(r0, builder.add(builder.mul(lu.index, wp), lv.index))
                w_tap = builder.add(builder.mul(builder.mul(tap, quads), noc), o0)
                with cgutils.for_range(builder, quads) as lk:
                    w_k = builder.add(w_tap, builder.mul(lk.index, noc))
                    a_k = builder.add(builder.mul(lk.index, nrows), row)
                    a = [builder.load(vec(builder.gep(a_p, [builder.add(a_k, c(16 * i))])), align=4) for i in range(mv)]
                    for j in range(n):
                        b = splat(builder.load(builder.gep(w_p, [builder.add(w_k, c(j))])))
                        for i in range(mv):
                            builder.store(builder.call(vdp, [builder.load(acc[i][j]), a[i], b]), acc[i][j])
            for j in range(n):
                o = builder.add(builder.mul(builder.add(o0, c(j)), ncols), r0)
                for i in range(mv):
                    dst = vec(builder.gep(out_p, [builder.add(o, c(16 * i))]))
                    builder.store(builder.load(acc[i][j]), dst, align=4)

        done = builder.append_basic_block("tile_done")
        switch = builder.switch(no, done)  # no outside 1..NO_MAX: nothing written
        for n in range(1, NO_MAX + 1):
            case = builder.append_basic_block(f"tile_{n}")
            switch.add_case(ir.Constant(no.type, n), case)
            builder.position_at_end(case)
            body(n)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return types.void(rows, wq, init, out, r0, o0, no, kh, kw, wp), codegen


@numba.njit(parallel=True, cache=True)
def _run(rows, wq, init, out, groups, total, kh, kw, wp):
    """out[o, r] for r in [0, total) by work items of one output group x one chunk of rows (a whole
    number of tiles; the last tile runs up to TILE_ROWS past ``total``, into out's margin)."""
    ng = groups.shape[0]
    chunks = 0
    for g in range(ng):
        chunks = max(chunks, (total + groups[g, 2] - 1) // groups[g, 2])
    for item in numba.prange(ng * chunks):
        g = item // chunks
        o0, no, per = groups[g, 0], groups[g, 1], groups[g, 2]
        start = (item - g * chunks) * per
        for r0 in range(start, min(total, start + per), 16 * MV[no]):
            _tile(rows, wq, init, out, r0, o0, no, kh, kw, wp)


@numba.njit(cache=True)
def _quad_plane(x, plane, b, q, pt, pl, wp, do_rq, left, right, half, odd, qmin, qmax):
    """plane[(pt+i)*WP + pl + j] = the 4 bytes x'[b, 4q : 4q+4, i, j] + 128 (missing channels 128),
    every other word 128s, where x' is x or, with ``do_rq``, its requantization (per channel
    constants as :func:`hwsim.intsim.fused.rq_params`); the flags of out-of-int8 values (0 if none)."""
    c, h, wd = x.shape[1:]
    pad = np.uint32(0x80808080)
    plane[: pt * wp + pl] = pad
    flags = 0
    for i in range(h):
        dst = plane[(pt + i) * wp + pl:]
        if 4 * q + 4 <= c:
            x0, x1, x2, x3 = x[b, 4 * q, i], x[b, 4 * q + 1, i], x[b, 4 * q + 2, i], x[b, 4 * q + 3, i]
            if do_rq:
                c0, c1, c2, c3 = 4 * q, 4 * q + 1, 4 * q + 2, 4 * q + 3
                for j in range(wd):
                    t0 = rq_scalar(np.int64(x0[j]), left[c0], right[c0], half[c0], odd[c0], qmin, qmax) + 128
                    t1 = rq_scalar(np.int64(x1[j]), left[c1], right[c1], half[c1], odd[c1], qmin, qmax) + 128
                    t2 = rq_scalar(np.int64(x2[j]), left[c2], right[c2], half[c2], odd[c2], qmin, qmax) + 128
                    t3 = rq_scalar(np.int64(x3[j]), left[c3], right[c3], half[c3], odd[c3], qmin, qmax) + 128
                    flags |= (t0 | t1 | t2 | t3) >> 8
                    dst[j] = np.uint32((t0 & 255) | ((t1 & 255) << 8) | ((t2 & 255) << 16) | ((t3 & 255) << 24))
            else:
                for j in range(wd):
                    t0, t1 = np.int64(x0[j]) + 128, np.int64(x1[j]) + 128
                    t2, t3 = np.int64(x2[j]) + 128, np.int64(x3[j]) + 128
                    flags |= (t0 | t1 | t2 | t3) >> 8
                    dst[j] = np.uint32((t0 & 255) | ((t1 & 255) << 8) | ((t2 & 255) << 16) | ((t3 & 255) << 24))
        else:
            for j in range(wd):
                word = np.int64(0)
                for k in range(4):
                    ch = 4 * q + k
                    t = np.int64(128)
                    if ch < c:
                        t = np.int64(x[b, ch, i, j])
                        if do_rq:
                            t = rq_scalar(t, left[ch], right[ch], half[ch], odd[ch], qmin, qmax)
                        t += 128
                    flags |= t >> 8
                    word |= (t & 255) << (8 * k)
                dst[j] = np.uint32(word)
        dst[wd: wp if i < h - 1 else len(dst)] = pad  # right padding and the next row's left (or the rest)
    return flags


@numba.njit(parallel=True, cache=True)
def _to_rows(x, rows, stride, pt, pl, wp, do_rq, left, right, half, odd, qmin, qmax):
    """Each image's rows [q, b*stride : (b+1)*stride] from x (``_quad_plane``); False if some x is outside int8."""
    quads = rows.shape[0]
    bad = 0
    for item in numba.prange(x.shape[0] * quads):
        b = item // quads
        q = item - b * quads
        plane = rows[q, b * stride:(b + 1) * stride]
        bad += _quad_plane(x, plane, b, q, pt, pl, wp, do_rq, left, right, half, odd, qmin, qmax) != 0
    return bad == 0


def integer_input(dt) -> bool:
    return dt.kind == "i" or (dt.kind == "u" and dt.itemsize < 8)  # exactly representable in int64


def int8_weights(w: np.ndarray) -> np.ndarray | None:
    """Conv weights [OC, C, KH, KW] (or linear weights [N, K]) as int8 if every one fits and each
    output's int32 sum is exact (``128 * sum|w[o]| < 2^31``, the bound of the module docstring),
    else None."""
    w = np.asarray(w)
    if w.ndim not in (2, 4) or w.size == 0 or w.dtype.kind not in "iu" or w.min() < -128 or w.max() > 127:
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
    cp = -(-c // 4) * 4
    wz = np.zeros((oc, cp, kh, kw), dtype=np.int8)
    wz[:, :c] = w8
    # [taps, Cp/4, OC] words: channels 4q..4q+3 of output o at one tap
    wq = np.ascontiguousarray(wz.reshape(oc, cp // 4, 4, kh * kw).transpose(3, 1, 0, 2)).view(np.int32)[..., 0]
    init = (-128 * w8.reshape(oc, -1).sum(1, dtype=np.int64)).astype(np.int32)
    return {"wq": np.ascontiguousarray(wq), "init": init, "groups": _output_groups(oc), "shape": (oc, c, kh, kw)}


@functools.lru_cache(maxsize=256)
def _output_groups(oc: int, most: int = NO_MAX) -> np.ndarray:
    """[first, size, rows per work item] of each group of at most ``most`` outputs (near-equal sizes,
    each group's tile shape from MV; rows per item a whole number of its tiles)."""
    ng = -(-oc // most)
    sizes = oc // ng + (np.arange(ng) < oc % ng)
    tile_rows = 16 * np.asarray(MV)[sizes]
    groups = np.stack([np.cumsum(sizes) - sizes, sizes, -(-CHUNK_ROWS // tile_rows) * tile_rows], axis=1)
    groups.flags.writeable = False
    return groups.astype(np.int64)


def pack_linear(w: np.ndarray):
    """Linear weights [N, K] -> the row operand of :func:`linear` (built once per layer), or None
    if some weight is outside int8 or the int32 bound fails: ``w + 128`` as u8, 4 of K per word,
    ``[K/4, N + TILE_ROWS]`` (rows past N are read by the last tiles and discarded)."""
    w8 = int8_weights(w) if available() else None
    if w8 is None:
        return None
    n, k = w8.shape
    wz = np.zeros((n + TILE_ROWS, -(-k // 4) * 4), dtype=np.uint8)
    wz[:n, :k] = (w8.astype(np.int16) + 128).astype(np.uint8)  # channels past K meet x = 0: any byte
    vectors = -(-n // 16)  # tokens per tile: the tile shape that pads the fewest row vectors (then the most tokens)
    tokens = min(range(1, NO_MAX + 1), key=lambda no: (-(-vectors // MV[no]) * MV[no], -no))
    return {"rows": np.ascontiguousarray(wz.view(np.uint32).T), "n": n, "k": k, "tokens": tokens}


def linear(x: np.ndarray, packed) -> np.ndarray | None:
    """x [M, K] @ w.T as int32 [M, N] (a view) for ``pack_linear``'s output, or None if ``packed`` is
    None, x is not integer or some x is outside int8. The conv's roles swapped, so that the
    accumulator comes out row-major: the weights (u8, ``w + 128``) are the tiles' 16-row vectors
    and each row of x (s8) is an "output channel" whose 4-byte words are broadcast; the offset adds
    ``128 * sum(x[m])`` to row m, which its accumulator's start (``-128 * sum(x[m])``) cancels."""
    if packed is None or not integer_input(x.dtype) or x.ndim != 2 or x.shape[1] != packed["k"]:
        return None
    m, k = x.shape
    if x.dtype != np.int8:
        if x.size and (x.min() < -128 or x.max() > 127):
            return None
        x = x.astype(np.int8)
    rows = packed["rows"]
    words = np.empty((1, rows.shape[0], m), dtype=np.int32)  # [1 tap, K/4, M]
    init = np.empty(m, dtype=np.int32)
    _x_words(x, words[0], init)
    out = np.empty((m, rows.shape[1]), dtype=np.int32)
    _run(rows, words, init, out, _output_groups(m, packed["tokens"]), packed["n"], 1, 1, 1)
    return out[:, : packed["n"]]


@numba.njit(parallel=True, cache=True)
def _x_words(x, words, init):
    """words[q, m] = the 4 bytes x[m, 4q : 4q+4] (zeros past K), init[m] = -128 * sum(x[m])."""
    m, k = x.shape
    quads = words.shape[0]
    for r in numba.prange(m):
        row = x[r]
        total = 0
        for q in range(quads):
            word = np.int64(0)
            for b in range(4):
                if 4 * q + b < k:
                    v = np.int64(row[4 * q + b])
                    total += v
                    word |= (v & 255) << (8 * b)
            words[q, r] = np.int32(np.uint32(word))
        init[r] = -128 * total


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


def packed_linear(w: np.ndarray):
    """:func:`pack_linear` of ``w``, once per weight array (as :func:`packed_for`)."""
    key = (id(w), "linear")
    hit = _PACKED.get(key)
    if hit is not None and hit[0]() is w:
        return hit[1]
    packed = pack_linear(w)
    _PACKED[key] = (weakref.ref(w, lambda _, key=key: _PACKED.pop(key, None)), packed)
    return packed


def _as_stride1(x: np.ndarray, w: np.ndarray, strides, pads, backend):
    """(input, packed weights, pads) of the stride-1 conv that equals the conv of x with w at
    ``strides``, or None if there is none. A stride (SH, SW) conv is the stride-1 conv of the padded
    input's SH*SW phases with the kernel's phases (ceil(KH/SH) x ceil(KW/SW), zeros past the
    kernel): the same products, so exact."""
    sh, sw = strides
    packed = packed_for(w, strides, backend)
    if (sh, sw) == (1, 1) or packed is None:
        return x, packed, pads
    n, c, h, wd = x.shape
    _, _, kh, kw = w.shape
    pt, pl, pb, pr = pads
    oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    if min(pads) < 0 or oh < 1 or ow < 1 or not integer_input(x.dtype):
        return None
    ph, pw = oh + -(-kh // sh) - 1, ow + -(-kw // sw) - 1  # each phase's rows and columns
    padded = np.zeros((n, c, sh * ph, sw * pw), dtype=x.dtype)
    rows, cols = min(h, sh * ph - pt), min(wd, sw * pw - pl)  # input past the last window is not read
    padded[:, :, pt:pt + rows, pl:pl + cols] = x[:, :, :rows, :cols]
    return _phase_split(padded, sh, sw), packed, (0, 0, 0, 0)


def conv(x: np.ndarray, w: np.ndarray, strides, pads, backend=None):
    """Conv of x [N, C, H, W] with w [OC, C, KH, KW] at any stride: int32 [N, OH, OW, OC], or None
    where ``backend.conv_s1`` would be (``backend``: a module with this one's ``pack_weights`` and
    ``conv_s1``, this one by default; :mod:`hwsim.intsim.amx` is the other)."""
    backend = backend or sys.modules[__name__]
    args = _as_stride1(x, w, strides, pads, backend)
    return None if args is None else backend.conv_s1(*args)


def conv_planes(x: np.ndarray, w: np.ndarray, strides, pads, rq_in=NO_PROLOGUE) -> Planes | None:
    """:func:`conv` on this kernel, its accumulator plane-major; ``rq_in`` as :func:`conv_s1_planes`'s
    (stride 1 only: None otherwise)."""
    if rq_in[0] and tuple(strides) != (1, 1):
        return None
    args = _as_stride1(x, w, strides, pads, sys.modules[__name__])
    return None if args is None else conv_s1_planes(*args, rq_in)


class Planes(NamedTuple):
    """A plane-major conv accumulator: ``data[o, offset + b*stride + i*wp + j]`` is output (b, o, i, j)."""

    data: np.ndarray  # int32 [OC, offset + n*stride + margin]
    offset: int
    n: int
    stride: int
    wp: int
    oh: int
    ow: int

    def channels_last(self) -> np.ndarray:
        """The accumulator as int32 [N, OH, OW, OC] (a view)."""
        oc, start = self.data.shape[0], self.offset
        rows = self.data[:, start: start + self.n * self.stride].reshape(oc, self.n, self.stride)
        planes = rows[:, :, : self.oh * self.wp].reshape(oc, self.n, self.oh, self.wp)
        return planes[..., : self.ow].transpose(1, 2, 3, 0)


def conv_s1_planes(x: np.ndarray, packed, pads, rq_in=NO_PROLOGUE) -> Planes | None:
    """Stride-1 conv of x [N, C, H, W] (integer) with ``pack_weights``' output, plane-major; None if
    ``packed`` is None, x is not integer or some x is outside int8. With ``rq_in`` (the arguments
    :func:`hwsim.intsim.fused.rq_args` makes), x is requantized per channel as it is packed.

    Padding is shared: a row holds W pixels and then ``gw = max(pl, pr)`` padding words, which are
    also the next row's left padding, and an image's last ``gh = max(pt, pb)`` rows of padding are
    the next image's top padding, so an image takes (H + gh) * (W + gw) rows instead of
    (H + pt + pb) * (W + pl + pr): 21% fewer rows to compute at 7x7 with a 3x3 kernel, 12% at 14x14."""
    if packed is None or not integer_input(x.dtype):
        return None
    oc, c, kh, kw = packed["shape"]
    n, cx, h, wd = x.shape
    pt, pl, pb, pr = pads
    oh, ow = h + pt + pb - kh + 1, wd + pl + pr - kw + 1
    if cx != c or min(pads) < 0 or oh < 1 or ow < 1 or min(pt, pb) >= kh or min(pl, pr) >= kw:
        return None
    gh, gw = max(pt, pb), max(pl, pr)
    wp = wd + gw
    stride = (h + gh) * wp
    offset = (gh - pt) * wp + gw - pl  # output (b, 0, 0) reads input (-pt, -pl) of image b
    total = offset + (n - 1) * stride + (oh - 1) * wp + ow  # rows to compute (<= offset + n * stride)
    wq = packed["wq"]
    quads = wq.shape[1]
    rows = np.empty((quads, offset + n * stride + TILE_ROWS + (kh - 1) * wp + kw - 1), dtype=np.uint32)
    rows[:, n * stride:] = 0x80808080
    if not _to_rows(x, rows, stride, gh, gw, wp, *rq_in):
        return None
    out = np.empty((oc, offset + n * stride + TILE_ROWS), dtype=np.int32)
    _run(rows, wq, packed["init"], out, packed["groups"], total, kh, kw, wp)
    return Planes(out, offset, n, stride, wp, oh, ow)


def conv_s1(x: np.ndarray, packed, pads):
    """Stride-1 conv of x [N, C, H, W] (integer) with ``pack_weights``' output: int32 [N, OH, OW, OC]
    (a view), as ``_shifted_gemm_conv``; None if ``packed`` is None or some x is outside int8."""
    planes = conv_s1_planes(x, packed, pads)
    return None if planes is None else planes.channels_last()
