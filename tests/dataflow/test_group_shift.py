"""Group-shifted weights (Q-DiT's group-wise scales in hardware): the integer graph carries a group's
4-bit integers shifted left; the mapping recovers q and a shift per group, and the MVAU stores and
multiplies q (rtl/mvau WGROUP, its benches in tests/rtl/test_mvau.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.dataflow.mapping import group_pattern, map_integer_graph
from hwsim.dataflow.nodes import FoldingError, make_node
from hwsim.dataflow.nodes.finn_types import group_attrs
from hwsim.dataflow.resources import estimate, load_device
from hwsim.rtlgen.memfiles import group_shift_words, group_split, signed_bits
from tests.conftest import fuzz


@settings(max_examples=fuzz(60), deadline=None)
@given(st.sampled_from([1, 2, 4, 8]), st.integers(1, 4), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_split_recovers_narrow_integers_and_shifts(group, rows, q_bits, seed):
    rng = np.random.default_rng(seed)
    q = rng.integers(-(1 << (q_bits - 1)) + 1, 1 << (q_bits - 1), size=(rows, 4 * group))
    shifts = rng.integers(0, 8, size=(rows, 4))
    w = q << np.repeat(shifts, group, axis=1)
    q2, s2 = group_split(w, group)
    assert np.array_equal(q2 << np.repeat(s2, group, axis=1), w)  # exact
    assert signed_bits(q2) <= q_bits and np.all(s2 >= 0)


def test_signed_bits():
    assert [signed_bits(np.array(v)) for v in ([0], [-1], [1], [-8, 7], [8], [-9])] == [1, 1, 2, 4, 5, 5]


def test_shift_words_follow_the_weight_words():
    shifts = np.arange(16).reshape(4, 4)  # 4 rows, 4 groups of 2 inputs (MW = 8)
    # SIMD = 4: two groups a word; PE = 2: rows 0 and 1 share a word
    assert group_shift_words(shifts, 2, 4, 2).tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    # SIMD = 1: one shift per two weight words
    assert group_shift_words(shifts, 1, 1, 2)[:5, 0].tolist() == [0, 1, 2, 3, 4]


def test_pattern_is_the_narrowest_storage_and_none_for_plain_weights():
    rng = np.random.default_rng(0)
    q = rng.integers(-7, 8, size=(6, 32))
    w = q << np.repeat(rng.integers(0, 4, size=(6, 4)), 8, axis=1)
    assert group_pattern(w, signed_bits(w), 32) == group_attrs(8, 4, 2)
    assert group_pattern(w, signed_bits(w), 4) == group_attrs(4, 4, 2)  # groups divide a convolution's channels
    assert group_pattern(q, 4, 32) == {}  # already 4-bit: nothing narrower to store


def test_group_wise_dit_maps_to_group_shifted_mvaus(dit_group_graph, dit_graph):
    graph = map_integer_graph(dit_group_graph, steps=4)
    static = [n for n in graph.nodes if n.op_type == "MVAU" and not n.dynamic()]
    grouped = [n for n in static if n.group_shift()]
    assert len(grouped) == len(static) - 1  # all but the per-channel patchify
    for n in grouped:
        g, q_bits, _ = n.group_shift()
        assert g == 8 and q_bits == 4 < n.dt("weightDataType")
        assert n.mac_widths() == (n.dt("inputDataType"), 4)
        dense = make_node("MVAU", "dense", {k: v for k, v in n.attrs.items() if k not in group_attrs(1, 1, 1)})
        assert n.weight_bits() < dense.weight_bits()
    plain = map_integer_graph(dit_graph, steps=4)
    assert not any(n.op_type == "MVAU" and n.group_shift() for n in plain.nodes)


def test_folding_keeps_simd_a_divisor_or_multiple_of_the_group():
    node = make_node("MVAU", "m", {"MW": 48, "MH": 4, "PE": 1, "SIMD": 1, "numInputVectors": [1],
                                   "inputDataType": "INT8", "weightDataType": "INT8", "accDataType": "INT24",
                                   **group_attrs(8, 4, 3)})
    assert node.fold_options()["SIMD"] == [1, 2, 4, 8, 16, 24, 48]
    with pytest.raises(FoldingError, match="SIMD=6 must divide its weight group of 8 inputs or be a multiple of it"):
        node.set_folding(SIMD=6)


def test_ecp5_prices_the_shifters_and_the_narrow_multipliers():
    dev = load_device("ecp5-85f")
    attrs = {"MW": 64, "MH": 8, "PE": 2, "SIMD": 8, "numInputVectors": [4], "inputDataType": "INT8",
             "weightDataType": "INT11", "accDataType": "INT24", "noActivation": 1, "resType": "dsp"}
    wide, grouped = make_node("MVAU", "w", attrs), make_node("MVAU", "g", {**attrs, **group_attrs(8, 4, 3)})
    # 4 x 8-bit products fit one MULT18X18D as 11 x 8 do; the shifters and their shift memory are LUTs
    assert estimate(grouped, dev).mult == estimate(wide, dev).mult
    lut_dense = make_node("MVAU", "l", {**attrs, "resType": "lut"})
    lut_grouped = make_node("MVAU", "lg", {**attrs, "resType": "lut", **group_attrs(8, 4, 3)})
    assert estimate(lut_grouped, dev).lut < estimate(lut_dense, dev).lut  # 4-bit LUT products


def test_cost_report_names_the_groups_and_a_saved_graph_keeps_them(dit_group_graph, tmp_path):
    import json

    from typer.testing import CliRunner

    from hwsim.cli import app
    from hwsim.dataflow.graph import DataflowGraph

    runner = CliRunner()
    result = runner.invoke(app, ["map", str(dit_group_graph), "--out", str(tmp_path / "df.onnx"), "--steps", "4"])
    assert result.exit_code == 0, result.output
    saved = DataflowGraph.load(tmp_path / "df.onnx")
    assert sum(bool(n.op_type == "MVAU" and n.group_shift()) for n in saved.nodes) == 9  # 2 blocks x 4, the head
    result = runner.invoke(app, ["cost", str(tmp_path / "df.onnx"), "--json", str(tmp_path / "c.json"), "--steps", "4"])
    assert result.exit_code == 0, result.output
    groups = [n["weight_groups"] for n in json.loads((tmp_path / "c.json").read_text())["nodes"] if n["weight_groups"]]
    assert len(groups) == 9 and all(g["group"] == 8 and g["q_bits"] == 4 for g in groups)


def test_pairs_are_not_groups():
    # 4-bit weights whose large values are even and paired with even ones split into 3-bit q and a
    # 1-bit shift per pair: groups of two are not taken (a shifter for every two weights)
    w = np.array([[6, -4, 1, -2, 3, 0, 2, 2]])
    assert group_pattern(w, 4, 8) == {}
    q, shifts = group_split(w, 2, 3)  # the smallest shifts that fit 3 bits: (6, -4) by one, (2, 2) by none
    assert shifts.tolist() == [[1, 0, 0, 0]] and q.tolist() == [[3, -2, 1, -2, 3, 0, 2, 2]]
    with pytest.raises(ValueError, match="do not split into 2-bit integers"):
        group_split(w, 2, 2)
