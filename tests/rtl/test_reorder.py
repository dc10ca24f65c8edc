"""rtl/reorder (StreamReorder): the slot count against its window formulas and layout.reorder_depth,
bit-exact under gaps and back-pressure with evaluations back to back (Icarus, one on Verilator),
and its cycles against the formula below on sequences it was not read from."""

import json

import numpy as np
import pytest

from hwsim.dataflow import layout
from hwsim.rtlgen import reorder as br
from tests.rtl import SIMS


def window_slots(seq) -> tuple[int, int]:
    """(deadlock-free S, full-rate S) of mod-S addressing in closed form (hwsim/rtlgen/reorder.py)."""
    seq = [int(v) for v in seq]
    read, oldest, least = [False] * len(seq), 0, 0
    for k, a in enumerate(seq):
        while read[oldest]:
            oldest += 1
        least = max(least, a - oldest + 1)
        read[a] = True
    late = max(a - k for k, a in enumerate(seq))
    early = max(k - a for k, a in enumerate(seq))
    return least, max(least, late + early + 2)


def expected_cycles(words) -> dict:
    """rtl/reorder without back-pressure at the full-rate S, N words per evaluation. Mirrors
    StreamReorder's model (hwsim/dataflow/nodes/hwsim_types.py: II = elements / PE, latency =
    bufferDepth / PE + 2 + II - 1, bufferDepth = layout.reorder_depth = D): a word is written in the
    cycle it arrives and readable the next, the output register adds one, so output k leaves at
    max(out(k-1) + 1, seq[k] + 2); the last of evaluation 1 at N + D + 1, and evaluation 2's follow
    without a gap. The first output is earlier than the model's bufferDepth / PE + 2 (seq[0] + 2):
    the first evaluation's outputs then wait for their inputs."""
    n, d = len(words), layout.reorder_depth(words)
    return {"ii": n, "latency": n + d + 1, "first_output_delay": int(words[0]) + 2}


SEQUENCES = {  # element sequences and their PE
    "dit": (br.unpatchify_sequence(4, 2), 1),
    "transpose": (br.transpose_sequence(4, 6), 1),
    "random": (br.window_permutation(48, 6), 1),
    "unpatchify-2x4": (br.unpatchify_sequence(2, 4), 1),
    "unpatchify-c3": (br.unpatchify_sequence(4, 2, 3), 3),
    "transpose-7x3": (br.transpose_sequence(7, 3), 1),
    "identity": (np.arange(10), 1),
    "reverse": (np.arange(12)[::-1], 1),
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_slots_are_the_window_formulas(name):
    seq, pe = SEQUENCES[name]
    words = br.word_sequence(seq, pe)
    least, full = window_slots(words)
    assert br.reorder_slots(words) == least and br.reorder_slots(words, full_rate=True) == full
    assert least >= layout.reorder_depth(words) + 1  # the ideal allocator's minimum (+1: no bypass)
    assert least == 1 or not br.runs(words, least - 1)


def test_slots_on_random_permutations():
    rng = np.random.default_rng(0)
    for i in range(40):
        seq = br.window_permutation(int(rng.integers(2, 60)), int(rng.integers(1, 12)), seed=i)
        least, full = window_slots(seq)
        assert (br.reorder_slots(seq), br.reorder_slots(seq, full_rate=True)) == (least, full)


def test_sequences_are_checked():
    with pytest.raises(ValueError):
        br.reorder_slots([0, 2, 2])
    with pytest.raises(ValueError):
        br.word_sequence(br.transpose_sequence(4, 6), 2)  # lanes of an output word from different input words
    assert list(br.word_sequence(br.unpatchify_sequence(2, 2, 2), 2)) == [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]
    with pytest.raises(ValueError):
        br.bench_reorder("dit", "/nonexistent", slots=11)


@pytest.mark.parametrize("case", [
    lambda d, **k: br.bench_reorder("dit", d, **k),
    lambda d, **k: br.bench_reorder("transpose", d, **k),
    lambda d, **k: br.bench_reorder("random", d, evaluations=3, **k),
    lambda d, **k: br.bench_reorder("dit", d, slots=br.reorder_slots(br.CASES["dit"]()), **k),
    lambda d, **k: br.bench_reorder("transpose", d, slots=br.reorder_slots(br.CASES["transpose"]()), bits=5, **k),
    lambda d, **k: br.bench_reorder("dit", d, pe=2, **k),
    lambda d, **k: br.bench_reorder(br.unpatchify_sequence(2, 2, 3), d, pe=3, bits=12, **k),
], ids=["dit", "transpose", "random-3-evaluations", "dit-least-slots", "transpose-least-slots", "dit-pe2",
        "unpatchify-c3-pe3"])
@pytest.mark.parametrize("sim", SIMS)
def test_bit_exact_under_backpressure(case, sim, tmp_path):
    assert case(tmp_path, backpressure=True, seed=3, sim=sim)["bit_exact"]


def test_verilator(tmp_path):
    assert br.bench_reorder("dit", tmp_path, sim="verilator", pe=2, seed=4)["bit_exact"]


@pytest.mark.parametrize("seq, pe", [  # none of these is among the sequences the formula was read from
    (br.unpatchify_sequence(2, 4), 1),
    (br.unpatchify_sequence(4, 2, 2), 2),
    (br.transpose_sequence(5, 3), 1),
    (br.window_permutation(40, 9, seed=5), 1),
], ids=["unpatchify-2x4", "unpatchify-c2-pe2", "transpose-5x3", "random-window-9"])
def test_cycles_equal_the_formula(seq, pe, tmp_path):
    report = br.bench_reorder(seq, tmp_path, backpressure=False, pe=pe)
    assert report["bit_exact"] and report["overlap"]
    assert report["measured"] == expected_cycles(br.word_sequence(seq, pe))
    assert {k: report["measured"][k] for k in ("ii", "latency")} == report["modelled"]


def test_cycle_model_is_the_rtl_below_full_rate(tmp_path):
    """At the least S inputs wait for slots; the Python cycle model reorder_slots searches with
    still gives every handshake cycle."""
    seq = br.CASES["transpose"]()
    s = br.reorder_slots(seq)
    report = br.bench_reorder(seq, tmp_path, backpressure=False, slots=s)
    cycles = json.loads((tmp_path / "tb_out.json").read_text())
    ins, outs = br.cycle_model(seq, s, evaluations=2)
    assert report["bit_exact"] and cycles["in_cycles"]["in"] == ins and cycles["out_cycles"]["out"] == outs


def test_the_mapped_dit_reorder(dit_graph, tmp_path):
    """The tiny DiT's StreamReorder (its unpatchify): the sequence the mapping priced, through the RTL."""
    from hwsim.dataflow.mapping import map_integer_graph

    graph = map_integer_graph(dit_graph, steps=10)
    node = next(n for n in graph.nodes if n.op_type == "StreamReorder")
    seq, depth = br.reorder_sequence(graph, node)
    assert depth == node.attrs["bufferDepth"] == layout.reorder_depth(seq)
    assert np.array_equal(seq, br.CASES["dit"]())
    assert br.bench_reorder(seq, tmp_path, seed=5)["bit_exact"]
