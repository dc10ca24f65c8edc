"""Stream orders, and the exact buffer a chain of reshape/transpose/take/slice ops costs in hardware.

The integer graph is NCHW (PyTorch's semantics); a dataflow accelerator streams channels last
(FINN's convention), one pixel's or one token's channels after another, and attention tensors
[N, heads, L, d] token-major with the heads inside each token. A layout op that keeps the stream
order costs nothing; one that changes it needs a reorder buffer. How big is computed exactly,
not by rule: number the input elements in stream order, push the numbers through the ops' own
numpy references (:mod:`hwsim.export.ops`), read them back in the output's stream order, and the
smallest buffer that can emit that sequence from the input stream is

    max_k ( #{j : seq[j] <= max(seq[:k+1])} - k ) - 1

(everything up to the latest needed input has arrived and only k outputs have left; elements a
take/slice drops are never stored). An identity chain needs 0.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from hwsim.export.ops import OPS

CHANNELS_LAST = (0, 2, 3, 1)  # NCHW image streamed pixel by pixel
TOKEN_MAJOR = (0, 2, 1, 3)  # [N, heads, L, d] streamed token by token, heads inside


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def candidate_orders(rank: int) -> list[tuple[int, ...]]:
    return [CHANNELS_LAST, TOKEN_MAJOR, identity(4)] if rank == 4 else [identity(rank)]


def stream_positions(shape: tuple[int, ...], order: tuple[int, ...]) -> np.ndarray:
    """An array of ``shape`` whose entries are each element's position in the stream."""
    streamed = np.arange(int(np.prod(shape)), dtype=np.int64).reshape([shape[a] for a in order])
    return np.transpose(streamed, np.argsort(order))


def apply_chain(positions: np.ndarray, chain: list[tuple[str, dict]]) -> np.ndarray:
    for op_type, attrs in chain:
        positions = OPS[op_type].compute([positions], attrs)
    return positions


def reorder_depth(sequence: np.ndarray) -> int:
    """Elements the reorder buffer must hold to emit ``sequence`` (input stream positions)."""
    seq = np.asarray(sequence, dtype=np.int64).ravel()
    if seq.size == 0:
        return 0
    latest = np.maximum.accumulate(seq)
    arrived = np.searchsorted(np.sort(seq), latest, side="right")
    return int(np.max(arrived - np.arange(seq.size))) - 1


def chain_cost(in_shape, in_order, chain, out_order) -> tuple[int, np.ndarray]:
    """(reorder depth, output sequence) of a layout chain between two stream orders."""
    out = apply_chain(stream_positions(tuple(in_shape), tuple(in_order)), chain)
    sequence = np.transpose(out, out_order).ravel()
    return reorder_depth(sequence), sequence


def best_order(in_shape, in_order, chain, rank: int) -> tuple[tuple[int, ...], int]:
    """The output order (among the usual ones) that makes the chain cheapest, with its depth."""
    shape = apply_chain(stream_positions(tuple(in_shape), tuple(in_order)), chain).shape
    costs = [(chain_cost(in_shape, in_order, chain, order)[0], order) for order in candidate_orders(rank)]
    # ties (axes of size 1 make orders equal) go to the widest innermost axis: more lanes to fold
    depth, order = min(costs, key=lambda c: (c[0], -shape[c[1][-1]]))
    return order, depth


def streamed_order(in_shape, in_order, chain, rank: int) -> tuple[int, ...] | None:
    """The axis order in which the chain's output arrives as the input streams (batch axis first),
    if the chain is a pure relabelling of the stream; None if no axis order describes it."""
    out = apply_chain(stream_positions(tuple(in_shape), tuple(in_order)), chain)
    for rest in itertools.permutations(range(1, rank)):
        order = (0, *rest)
        if np.all(np.diff(np.transpose(out, order).ravel()) > 0):
            return order
    return None


# --- rtl/reorder's buffer: slots addressed mod S (hwsim/rtlgen/reorder.py has the bench) ----------
def word_sequence(seq, pe: int) -> np.ndarray:
    """The word-level sequence of an element sequence streamed ``pe`` lanes a word; ValueError if an
    output word does not take one input word's lanes in order."""
    seq = np.asarray(seq, dtype=np.int64).ravel()
    if seq.size % pe:
        raise ValueError(f"PE={pe} does not divide the {seq.size} elements")
    words = seq.reshape(-1, pe)
    if np.any(words[:, 0] % pe) or np.any(words - words[:, :1] != np.arange(pe)):
        raise ValueError(f"the sequence does not move whole words of PE={pe} lanes")
    return words[:, 0] // pe


def _check_permutation(seq) -> np.ndarray:
    seq = np.asarray(seq, dtype=np.int64).ravel()
    if not np.array_equal(np.sort(seq), np.arange(seq.size)):
        raise ValueError("rtl/reorder needs a permutation of 0..N-1 (no dropped or repeated positions)")
    return seq


def runs(seq, slots: int, evaluations: int = 2) -> bool:
    """The scheme at element level, untimed: inputs enter while their slot is free, the next output
    leaves when its slot holds it. False if it deadlocks (or a valid slot held another word)."""
    seq = _check_permutation(seq)
    n, total = len(seq), len(seq) * evaluations
    held = [-1] * slots  # the absolute input index in each slot, -1 = free
    w = j = 0
    while j < total:
        moved = False
        while w < total and held[w % slots] < 0:
            held[w % slots] = w
            w += 1
            moved = True
        e, k = divmod(j, n)
        a = e * n + int(seq[k])
        if held[a % slots] == a:
            held[a % slots] = -1
            j += 1
            moved = True
        elif held[a % slots] >= 0 or not moved:
            return False
    return True


def cycle_model(seq, slots: int, evaluations: int = 3) -> tuple[list[int], list[int]]:
    """rtl/reorder's handshake cycles without gaps or back-pressure: (input cycles, output cycles).
    A write sets its slot's valid bit for the next cycle, a read clears it for the next cycle, and
    a word read in cycle t is the output register's in cycle t + 1."""
    seq = _check_permutation(seq)
    n, total = len(seq), len(seq) * evaluations
    held = [False] * slots
    ins, outs = [], []
    w = j = t = 0
    out_valid = False
    while len(outs) < total:
        if t > 4 * total + 8:
            raise RuntimeError(f"{slots} slots deadlock")
        if out_valid:
            outs.append(t)
        fire = j < total and held[(j // n * n + int(seq[j % n])) % slots]
        push = w < total and not held[w % slots]
        if fire:
            held[(j // n * n + int(seq[j % n])) % slots] = False
            j += 1
        if push:
            held[w % slots] = True
            ins.append(t)
            w += 1
        out_valid = fire
        t += 1
    return ins, outs


def _least(ok, lo: int, hi: int) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
    return lo


def reorder_slots(seq, full_rate: bool = False) -> int:
    """The least S for which rtl/reorder runs ``seq`` without deadlock (simulated, :func:`runs`);
    with ``full_rate`` the least for which no input word ever waits for a slot when inputs and
    outputs are never held up (:func:`cycle_model`): then the block keeps a word per cycle."""
    seq = _check_permutation(seq)
    least = _least(lambda s: runs(seq, s), 1, len(seq))
    if not full_rate:
        return least
    return _least(lambda s: cycle_model(seq, s)[0] == list(range(3 * len(seq))), least, 2 * len(seq) + 2)


@functools.lru_cache(maxsize=256)
def reorder_slots_cached(words: tuple[int, ...]) -> int:
    """:func:`reorder_slots` at full rate, memoized (cost reports ask for it again and again)."""
    return reorder_slots(np.asarray(words), full_rate=True)
