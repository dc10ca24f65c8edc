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
    costs = [(chain_cost(in_shape, in_order, chain, order)[0], order) for order in candidate_orders(rank)]
    depth, order = min(costs, key=lambda c: c[0])
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
