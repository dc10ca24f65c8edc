"""Integer tensors <-> the hex memory files and packed stream words the RTL blocks read.

A word packs ``lanes`` two's-complement values of ``bits`` each, lane i in bits [i*bits, (i+1)*bits)
(the RTL's ``x[i*BITS +: BITS]``); memory files hold one word per line in hex, as $readmemh reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fits(values: np.ndarray, bits: int, signed: bool = True) -> bool:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return bool(np.all((values >= lo) & (values <= hi)))


def pack(values, bits: int, signed: bool = True) -> int:
    """One word from a sequence of lane values (lane 0 in the low bits)."""
    values = [int(v) for v in values]
    if not fits(np.asarray(values), bits, signed):
        raise ValueError(f"values {values} do not fit {'signed' if signed else 'unsigned'} {bits} bits")
    word = 0
    for i, v in enumerate(values):
        word |= (v & ((1 << bits) - 1)) << (i * bits)
    return word


def unpack(word: int, lanes: int, bits: int, signed: bool = True) -> list[int]:
    out = []
    for i in range(lanes):
        v = (word >> (i * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if signed and v >> (bits - 1) else v)
    return out


def write_mem(path: str | Path, words: list[list[int]] | np.ndarray, bits: int, signed: bool = True) -> Path:
    """A $readmemh file: one line per word, each word packing its row of lane values."""
    rows = np.atleast_2d(np.asarray(words, dtype=np.int64))
    digits = max(1, -(-rows.shape[1] * bits // 4))
    path = Path(path)
    path.write_text("".join(f"{pack(row, bits, signed):0{digits}x}\n" for row in rows))
    return path


def bank_rows(words: np.ndarray, bank: int) -> list[np.ndarray]:
    """rtl/mvau's banked weights (WBANK = ``bank``): the words of bank 0, 1, ..., the last padded with
    zero words (a short file would leave words undefined in simulation); at most 100 (.b00 to .b99)."""
    rows = np.atleast_2d(np.asarray(words, dtype=np.int64))
    count = -(-len(rows) // bank)
    if count > 100:
        raise ValueError(f"{count} banks of {bank} words; rtl/mvau names at most 100 (.b00 to .b99)")
    padded = np.zeros((count * bank, rows.shape[1]), dtype=np.int64)
    padded[: len(rows)] = rows
    return [padded[k * bank:(k + 1) * bank] for k in range(count)]


def write_banks(path: str | Path, words: np.ndarray, bits: int, bank: int, signed: bool = True) -> list[Path]:
    """The bank files rtl/mvau reads for WEIGHT_FILE = ``path``: ``path``.b00, .b01, ..."""
    return [write_mem(f"{path}.b{k:02d}", rows, bits, signed) for k, rows in enumerate(bank_rows(words, bank))]


def shift_params(shifts) -> dict:
    """A shift table's block parameters (rtl/requant, rtl/mvau): one value for every entry gives
    SHIFT_CONST and SHIFT (no table is built); otherwise SHIFT_MIN and SHIFT_MAX, the range the block
    builds its constant-shift requantizers over (rtl/common/shift_table.vh)."""
    values = np.unique(np.asarray(shifts))
    if values.size == 1:
        return dict(SHIFT_CONST=1, SHIFT=int(values[0]))
    return dict(SHIFT_MIN=int(values[0]), SHIFT_MAX=int(values[-1]))


def mvau_memories(weights: np.ndarray, bias: np.ndarray, shifts: np.ndarray, pe: int, simd: int) -> dict[str, np.ndarray]:
    """The MVAU's weight words (nf, sf) with lane pe*SIMD+s = W[nf*PE+pe][sf*SIMD+s], bias and shifts."""
    mh, mw = weights.shape
    if mh % pe or mw % simd:
        raise ValueError(f"PE={pe} must divide MH={mh} and SIMD={simd} must divide MW={mw}")
    words = weights.reshape(mh // pe, pe, mw // simd, simd).transpose(0, 2, 1, 3).reshape(-1, pe * simd)
    return {"weights": words, "bias": np.asarray(bias).reshape(-1, 1), "shift": np.asarray(shifts).reshape(-1, 1)}


def nm_compress(weights: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """N:M sparse weights [MH, MW] -> (values, positions) [MH, MW*N/M]: per group of M inputs, its
    (at most N) non-zero weights and their positions in the group, zero-padded to N."""
    mh, mw = weights.shape
    if mw % m:
        raise ValueError(f"MW={mw} is not a multiple of M={m}")
    groups = weights.reshape(mh, mw // m, m)
    values = np.zeros((mh, mw // m, n), dtype=np.int64)
    positions = np.zeros((mh, mw // m, n), dtype=np.int64)
    for r in range(mh):
        for g in range(mw // m):
            nz = np.flatnonzero(groups[r, g])
            if len(nz) > n:
                raise ValueError(f"row {r}, group {g}: {len(nz)} non-zero weights, more than N={n}")
            values[r, g, : len(nz)], positions[r, g, : len(nz)] = groups[r, g, nz], nz
    return values.reshape(mh, -1), positions.reshape(mh, -1)


def group_split(weights: np.ndarray, group: int, bits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights [MH, MW] -> (q [MH, MW], shifts [MH, MW/group]) with weights == q << shift per
    group of ``group`` consecutive inputs (rtl/mvau's WGROUP). Without ``bits`` each group's shift is
    the trailing zero bits its non-zero weights share (0 for an all-zero group), so q is as narrow as
    the group allows; with ``bits``, the smallest shift that fits the group's q in ``bits`` signed bits
    (smaller shifts need fewer shift bits)."""
    mh, mw = weights.shape
    if mw % group:
        raise ValueError(f"group of {group} inputs does not divide MW={mw}")
    groups = np.asarray(weights, dtype=np.int64).reshape(mh, mw // group, group)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if bits else (0, 0)
    shifts = np.full(groups.shape[:2], -1, dtype=np.int64)
    for bit in range(63) if bits else range(62, -1, -1):
        divisible = np.all(groups % (1 << bit) == 0, axis=2)
        if bits:  # the first (smallest) shift whose quotients fit
            fit = divisible & np.all(((groups >> bit) >= lo) & ((groups >> bit) <= hi), axis=2)
        else:  # the first (largest) shift every weight of the group is divisible by
            fit = divisible
        shifts = np.where(fit & (shifts < 0), bit, shifts)
    if np.any(shifts < 0):
        raise ValueError(f"weights do not split into {bits}-bit integers shifted per group of {group}")
    shifts = np.where(np.any(groups != 0, axis=2), shifts, 0)
    return (groups >> shifts[..., None]).reshape(mh, mw), shifts


def signed_bits(values: np.ndarray) -> int:
    """Two's-complement bits that hold every value (at least 1)."""
    lo, hi = int(np.min(values, initial=0)), int(np.max(values, initial=0))
    return max(1, (-lo - 1).bit_length() + 1 if lo < 0 else 0, hi.bit_length() + 1)


def group_shift_words(shifts: np.ndarray, pe: int, simd: int, group: int) -> np.ndarray:
    """rtl/mvau's GSHIFT_FILE words from the shifts [MH, MW/group]: word nf * MW/max(SIMD, group) + f
    holds PE x max(1, SIMD/group) shifts, lane pe * max(1, SIMD/group) + j = shift of row nf*PE+pe,
    group f * max(1, SIMD/group) + j."""
    mh, ngroups = shifts.shape
    per_word = max(1, simd // group)
    if mh % pe or ngroups % per_word:
        raise ValueError(f"PE={pe} must divide MH={mh} and SIMD/group={per_word} the {ngroups} groups of a row")
    return shifts.reshape(mh // pe, pe, ngroups // per_word, per_word).transpose(0, 2, 1, 3).reshape(-1, pe * per_word)


def operand_loops(order: tuple[int, ...], shape: tuple[int, ...], lanes: int) -> dict[str, int]:
    """rtl/mvau's operand-stream loops (O_N0..2 outer to inner, strides O_S0..2) for the operand
    tensor ``shape`` ([N, (h,) K, M]) streamed in the axis ``order``, ``lanes`` elements a beat: RAM element W_h[m][k] sits at
    h*M*K + m*K + k."""
    *_, k, m = shape
    if shape[order[-1]] % lanes:
        raise ValueError(f"operand {shape} streamed in order {order}: {lanes} lanes do not divide the inner loop")
    stride = {len(shape) - 1: k, len(shape) - 2: 1}
    if len(shape) == 4:
        stride[1] = m * k
    loops = [(shape[a], stride[a]) for a in order if a != 0]
    loops = [(1, 0)] * (3 - len(loops)) + loops
    return {f"O_N{i}": n for i, (n, _) in enumerate(loops)} | {f"O_S{i}": s for i, (_, s) in enumerate(loops)}


def threshold_table(thresholds: np.ndarray, in_min: int, in_max: int) -> dict:
    """rtl/thresholding's table and parameters from sorted thresholds [rows, NT] (or [groups, rows, NT]).

    Clipping to [in_min, in_max + 1] keeps every count (a threshold below every input always
    counts, one above never does); rows are padded with in_max + 1 to 2^STAGES - 1 entries.
    Returns ``table`` [entries, 1], ``TBITS`` and ``STAGES``."""
    t = np.asarray(thresholds, dtype=np.int64)
    t = t.reshape((1,) * (3 - t.ndim) + t.shape)
    if np.any(np.diff(t, axis=-1) < 0):
        raise ValueError("thresholds must be sorted ascending along each row")
    stages = max(1, int(t.shape[-1]).bit_length())
    pad = np.full(t.shape[:-1] + ((1 << stages) - 1 - t.shape[-1],), in_max + 1, dtype=np.int64)
    table = np.concatenate([np.clip(t, in_min, in_max + 1), pad], axis=-1)
    tbits = max(int(in_min).bit_length(), int(in_max + 1).bit_length()) + 1
    return {"table": table.reshape(-1, 1), "TBITS": tbits, "STAGES": stages}
