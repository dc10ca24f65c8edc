"""rtl/reorder (hwsim's StreamReorder): its buffer size, its sequences, and its bench.

A reorder sequence ``seq`` lists, for each output position k of one evaluation, the input stream
position it takes (:func:`hwsim.dataflow.layout.chain_cost`); here a permutation of 0..N-1.
rtl/reorder writes input word a (absolute: evaluation * N + position) to slot a mod S and reads
output k of evaluation e from slot (e*N + seq[k]) mod S. Because inputs arrive in order, input a
can only be written once every word <= a - S has left, so with o_k the oldest word of the
evaluation not yet read when output k is due, the scheme works iff

    S >= max_k (seq[k] - o_k + 1)                                   (:func:`reorder_slots`)

(a smaller S deadlocks: the wanted word cannot arrive before an older one, wanted later, leaves).
Without back-pressure the block emits its first word seq[0] + 2 cycles after the first input, the
last word of evaluation 1 N + D + 1 cycles after it, D = max_k (seq[k] - k) =
``layout.reorder_depth(seq)``, and one word per cycle afterwards, provided no input ever waits for
a slot, i.e.

    S >= D + max_k (k - seq[k]) + 2                 (:func:`reorder_slots` with ``full_rate``)

(word a + S enters one cycle after word a is read). Both are found by simulating the scheme, not by
the formulas; the tests compare the two. ``layout.reorder_depth`` is the ideal allocator's minimum
(a free list placing each word in any free slot); the mod-S addressing needs more, e.g. the tiny
DiT's unpatchify (16 tokens of 2x2 pixels): depth 6, 12 slots deadlock-free, 14 at full rate.

With PE lanes the block moves whole words: the element sequence must keep each input word's lanes
together and in order (:func:`word_sequence`), as the unpatchify does for PE dividing the patch
width times the channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwsim.dataflow import layout
from hwsim.dataflow.layout import _check_permutation, cycle_model, reorder_slots, runs, word_sequence
from hwsim.dataflow.nodes import make_node
from hwsim.rtlgen.benches import _measure, _words
from hwsim.rtlgen.memfiles import pack, unpack, write_mem
from hwsim.rtlgen.simulate import RTL, run_stream


# --- sequences ---------------------------------------------------------------------------------------
def unpatchify_sequence(grid: int, patch: int, channels: int = 1) -> np.ndarray:
    """The DiT's unpatchify (hwsim.nets: Reshape, Transpose, Reshape): [1, grid^2, patch^2 * channels]
    tokens, streamed token by token, -> a [1, channels, grid*patch, grid*patch] image streamed
    channels last."""
    chain = [("Reshape", {"shape": [-1, grid, grid, patch, patch, channels]}),
             ("Transpose", {"perm": [0, 5, 1, 3, 2, 4]}),
             ("Reshape", {"shape": [-1, channels, grid * patch, grid * patch]})]
    return layout.chain_cost((1, grid * grid, patch * patch * channels), (0, 1, 2), chain, layout.CHANNELS_LAST)[1]


def transpose_sequence(rows: int, cols: int) -> np.ndarray:
    """A [rows, cols] matrix streamed row by row, out column by column ([rows, cols] -> [cols, rows])."""
    return layout.chain_cost((1, rows, cols), (0, 1, 2), [("Transpose", {"perm": [0, 2, 1]})], (0, 1, 2))[1]


def window_permutation(n: int, window: int, seed: int = 0) -> np.ndarray:
    """A random permutation of 0..n-1 that moves no element by ``window`` or more places."""
    rng = np.random.default_rng(seed)
    return np.argsort(np.arange(n) + rng.uniform(0, window, size=n), kind="stable")


CASES = {  # the bench's named sequences (element level)
    "dit": lambda: unpatchify_sequence(4, 2),        # the tiny DiT's (tests/conftest.py TINY_DIT: 8x8, p = 2)
    "transpose": lambda: transpose_sequence(4, 6),
    "random": lambda: window_permutation(48, 6),
}


def reorder_sequence(graph, node) -> tuple[np.ndarray, int]:
    """(sequence, bufferDepth) of a mapped graph's StreamReorder ``node`` (a node or its name): the
    layout chain between the integer tensors its two streams carry, priced as
    :func:`hwsim.dataflow.mapping.map_integer_graph` does (``layout.chain_cost``)."""
    from hwsim.dataflow.mapping import _load

    node = graph.node(node) if isinstance(node, str) else node
    if node.op_type != "StreamReorder":
        raise ValueError(f"{node.name} is a {node.op_type}, not a StreamReorder")
    nodes, shapes, _, _ = _load(Path(graph.source))
    producer = {n.output: n for n in nodes}
    src, in_order = graph.carries[node.inputs[0]]
    tensor, out_order = graph.carries[node.outputs[0]]
    chain, cur = [], tensor
    while cur != src:
        p = producer[cur]
        chain.insert(0, (p.op_type, p.attrs))
        cur = p.inputs[0]
    depth, seq = layout.chain_cost(shapes[src], in_order, chain, out_order)
    if depth != node.attrs["bufferDepth"]:
        raise ValueError(f"{node.name}: chain costs {depth}, the node says bufferDepth={node.attrs['bufferDepth']}")
    return seq, depth


# --- the buffer (the slot rule and its simulation live in hwsim.dataflow.layout) ----------------------
def seq_rom(words, slots: int) -> np.ndarray:
    """rtl/reorder's SEQ_FILE entries: seq[k] mod S, one per line."""
    return (np.asarray(words, dtype=np.int64) % slots).reshape(-1, 1)


# --- the bench ----------------------------------------------------------------------------------------
def reorder_node(words: np.ndarray, pe: int, bits: int, depth: int):
    """The StreamReorder node the cost model prices (``depth`` elements, ``layout.reorder_depth``)."""
    return make_node("StreamReorder", "reorder", {"NumChannels": pe, "numInputVectors": [len(words)], "PE": pe,
                                                  "bufferDepth": depth, "inputDataType": f"INT{bits}",
                                                  "outputDataType": f"INT{bits}"})


def bench_reorder(seq_or_case, build_dir, sim: str = "icarus", backpressure: bool = True, seed: int = 0,
                  bits: int = 8, evaluations: int = 2, pe: int = 1, slots: int | None = None) -> dict:
    """Stream ``evaluations`` random evaluations back to back through rtl/reorder and compare with
    the input values indexed by the sequence (a name of :data:`CASES` or an element sequence).
    ``slots`` defaults to the full-rate S; it may not be below :func:`reorder_slots`. Without
    back-pressure the report holds the measured II (last output of evaluation 2 minus that of
    evaluation 1: the steady-state period; the first evaluation's outputs start early and wait for
    their inputs), latency (first input to last output of evaluation 1) and first-output delay,
    beside the StreamReorder node's ``get_exp_cycles`` and ``get_latency``."""
    name = seq_or_case if isinstance(seq_or_case, str) else "sequence"
    seq = _check_permutation(CASES[seq_or_case]() if isinstance(seq_or_case, str) else seq_or_case)
    words = word_sequence(seq, pe)
    n = len(words)
    least, full = reorder_slots(words), reorder_slots(words, full_rate=True)
    s = full if slots is None else int(slots)
    if s < least:
        raise ValueError(f"{s} slots deadlock on this sequence; it needs at least {least}")
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = rng.integers(lo, hi + 1, size=(evaluations, n * pe))
    x[0, 0], x[-1, -1] = lo, hi
    expect = x[:, seq]
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    write_mem(build / "seq.mem", seq_rom(words, s), max(1, (s - 1).bit_length()), signed=False)
    params = dict(N=n, S=s, PE=pe, BITS=bits)
    result = run_stream([RTL / "reorder" / "reorder.v"], "reorder", params,
                        {"in": [pack(w, bits) for w in _words(x.reshape(-1), pe)]}, {"out": n * evaluations},
                        build, sim, backpressure, seed)
    got = np.array([unpack(w, pe, bits) for w in result["outputs"]["out"]]).reshape(evaluations, -1)
    depth = layout.reorder_depth(seq)
    report = {"node": "StreamReorder", "case": name, "config": params, "sim": sim,
              "bit_exact": bool(np.array_equal(got, expect)), "values": int(expect.size),
              "slots": {"used": s, "least": least, "full_rate": full, "reorder_depth": depth}}
    if not backpressure and evaluations >= 2:
        node = reorder_node(words, pe, bits, depth)
        _measure(report, result, node, {"out": n})
        outs, first_in = result["out_cycles"]["out"], result["in_cycles"]["in"][0]
        report["measured"]["ii"] = outs[2 * n - 1] - outs[n - 1]
        report["measured"]["first_output_delay"] = outs[0] - first_in
        report["overlap"] = result["in_cycles"]["in"][n] < outs[n - 1]  # evaluation 2 enters while 1 leaves
    return report


def slot_table(sequences: dict[str, np.ndarray] | None = None) -> list[dict]:
    """S (deadlock-free, full rate) beside ``layout.reorder_depth`` for named element sequences."""
    sequences = sequences or {k: f() for k, f in CASES.items()}
    rows = []
    for key, seq in sequences.items():
        seq = _check_permutation(seq)
        rows.append({"sequence": key, "N": len(seq), "reorder_depth": layout.reorder_depth(seq),
                     "slots": reorder_slots(seq), "full_rate_slots": reorder_slots(seq, full_rate=True),
                     "slots_over_depth": round(reorder_slots(seq) / max(1, layout.reorder_depth(seq)), 2)})
    return rows


__all__ = ["CASES", "bench_reorder", "cycle_model", "reorder_node", "reorder_sequence", "reorder_slots", "runs",
           "seq_rom", "slot_table", "transpose_sequence", "unpatchify_sequence", "window_permutation",
           "word_sequence"]
