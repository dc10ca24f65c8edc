"""The ECP5 resource calibration (hwsim.bitstream.calibrate, experiments/resource_calibration.py):
the fit, synth_ecp5's multiplier-block and block-RAM rules, one block through Yosys and nextpnr,
and the stored results against the model as it is now."""

import json
from pathlib import Path

import numpy as np
import pytest

from hwsim.bitstream.calibrate import design_model, fit, is_held_out, lut_error, make_block, model_counts, synth_pack
from hwsim.dataflow.ecp5 import Memory, ecp5_memory, mult18
from hwsim.dataflow.resources import load_device

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results" / "resource_calibration" / "results.json"


def test_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    true = {"base": 40.0, "word": 1.5, "mem": 0.75, "unused": 0.0}
    rows = []
    for _ in range(12):
        f = {"base": 1.0, "word": float(rng.integers(8, 512)), "mem": float(rng.integers(0, 2000)),
             "unused": float(rng.integers(0, 50))}
        rows.append({"features": f, "counts": {"lut": sum(true[k] * v for k, v in f.items())}})
    coef = fit(rows, sorted(true), "lut")
    assert coef == pytest.approx(true, abs=1e-3)


def test_split_holds_out_a_third_of_each_type():
    keys = [f"T|{k}" for k in range(9)]
    held = [k for k in keys if is_held_out(k, keys)]
    assert len(held) == 3 and held == [k for k in keys if is_held_out(k, list(reversed(keys)))]


def test_acceptance_rule():
    assert lut_error(110, 100)["ok"] and lut_error(60, 20)["ok"] and not lut_error(200, 100)["ok"]


@pytest.mark.parametrize("a,b,blocks", [(8, 8, 1), (18, 18, 1), (19, 18, 1), (1, 8, 0), (24, 16, 2), (36, 18, 2),
                                        (32, 32, 4), (40, 40, 9), (64, 64, 16), (3, 3, 1)])
def test_mult18_rule(a, b, blocks):
    """What synth_ecp5 made of a registered a x b signed multiply (measured with Yosys 0.70)."""
    assert mult18(a, b) == blocks


def test_memory_rule():
    """memory_libmap's choices measured on rtl/mvau (unet weights 32 x 2304: five 36-bit PDPW16KD, not
    six 18-bit DP16KD; a 16 x 144 input buffer: one DP16KD, not 36 DPR16X4) and the cost crossovers."""
    assert ecp5_memory(Memory(32, 2304)) == ("bram", 5, 5)
    assert ecp5_memory(Memory(128, 72)) == ("bram", 4, 1)
    assert ecp5_memory(Memory(16, 144, 1, 1))[:2] == ("bram", 1)
    # Yosys' `debug memory_libmap` on a 16 x 96 RAM read one cycle late (old word): 24 DPR16X4 at 141
    # (4 x 24, mux 0.5 x 80, demux 0.5 x 6, one emulation point) against a DP16KD at 142 (128 and seven
    # points: the read, transparency and read-first behaviour); read at a registered pointer (rtl/fifo)
    # the block RAM needs no read-first emulation and wins
    assert ecp5_memory(Memory(16, 96, 1, 1)) == ("lutram", 24, 6)
    assert ecp5_memory(Memory(16, 96, 1, 1, new_data=True))[:2] == ("bram", 1)
    assert ecp5_memory(Memory(8, 256, 16))[0] == "logic"  # a SiLU table read by 16 lanes: 2048 bits of LUT ROM
    assert ecp5_memory(Memory(8, 64, 1, 1, sync=False))[0] == "lutram"
    # a RAM read in the cycle its word is written (rtl/mvau's input buffer, a fall-through register
    # slice) costs DPR16X4 the transparency emulation too: a 32 x 36 buffer (MW=144, SIMD=4) scores
    # 137.5 in DPR16X4 against 136 in one PDPW16KD (`debug memory_libmap`), and Yosys keeps 8 x 2
    # slices in flip-flops (40 of the whole unet-digits build's 41)
    assert ecp5_memory(Memory(32, 36, 1, 1, new_data=True)) == ("bram", 1, 1)
    assert ecp5_memory(Memory(8, 2, 1, 1, new_data=True))[0] == "logic"
    assert ecp5_memory(Memory(10, 64, 4, sync=False))[0] == "logic"  # asynchronous reads: never block RAM


def test_one_block_synthesizes_and_packs_to_the_models_blocks(tmp_path):
    """An MVAU with its products on MULT18X18D and its weights in block RAM, through Yosys and nextpnr."""
    block = make_block("mvau", dict(MW=72, MH=16, PE=2, SIMD=8, WBITS=8, ABITS=8, LUT_MULT=0))
    counts = synth_pack(block, tmp_path / "mvau")
    model = model_counts(block)
    # 16 products; the weight address nf * 9 + sf is counted, not multiplied
    assert (counts["mult18"], counts["bram"]) == (model["mult18"], model["bram"]) == (16, 4)
    assert counts["lut"] > 0 and counts["ff"] > 0


def test_activation_tables_cost_the_same_per_lane_pair(tmp_path):
    """rtl/lut keeps each pair of lanes' ROM apart (keep_hierarchy), so four lanes cost twice what two
    do; flattened, ABC mapped the same SiLU table to 163 LUTs on two lanes and 282 on four."""
    two, four = (synth_pack(make_block("lut", dict(PE=pe, IBITS=8, OBITS=8)), tmp_path / f"pe{pe}")["lut"]
                 for pe in (2, 4))
    assert abs(four - 2 * two) <= 0.03 * four, (two, four)


def test_reorder_cost_follows_its_slots_not_its_sequence(tmp_path):
    """Transposing 16 x 8 and 8 x 16 words needs the same 212 slots and ROM; with rtl/reorder's slot
    flags kept apart (keep_hierarchy) both take the same LUTs (flattened: 1,437 and 1,902)."""
    luts = [synth_pack(make_block("reorder", dict(R=r, C=c, PE=8)), tmp_path / f"{r}x{c}")["lut"]
            for r, c in ((16, 8), (8, 16))]
    assert abs(luts[0] - luts[1]) <= 0.02 * max(luts), luts


@pytest.mark.skipif(not RESULTS.is_file(), reason="no calibration results yet")
def test_stored_results_are_what_the_model_gives_now():
    """results.json's model numbers, errors and per-type summary recomputed from its stored nextpnr
    counts with the resources.py and device YAML of this checkout: a stale result fails."""
    data = json.loads(RESULTS.read_text())
    dev = load_device("ecp5-85f")
    rows = [r for r in data["rows"] if "counts" in r]
    assert rows and data["summary"]
    for r in rows:
        m = model_counts(make_block(r["factory"], r["config"]), dev)
        assert m == r["model"], r["key"]
        assert lut_error(m["lut"], r["counts"]["lut"]) == r["lut_error"], r["key"]
        assert r["exact"] == {"mult18": m["mult18"] == r["counts"]["mult18"], "bram": m["bram"] == r["counts"]["bram"]}
    for t, s in data["summary"].items():
        held = [r for r in rows if r["type"] == t and r["held_out"]]
        assert s["held_out"] == len(held) and s["lut_ok"] == all(r["lut_error"]["ok"] for r in held), t
        assert s["max_abs_rel_lut"] == max([abs(r["lut_error"]["rel"]) for r in held], default=0.0), t
        assert s["mult18_bram_exact"] == all(r["exact"]["mult18"] and r["exact"]["bram"] for r in rows if r["type"] == t)
    res = data.get("residual")
    if res and "counts" in res:
        assert design_model(res["model_nodes"], dev) == res["model"]


def test_collinear_features_are_reported():
    from hwsim.bitstream.calibrate import collinear_features

    rows = [{"table": "T", "features": {"lut": {"base": 1.0, "act_base": 1.0, "word": w, "mem": w}}} for w in (3.0, 5.0)]
    rows.append({"table": "U", "features": {"lut": {"base": 1.0, "act_base": 0.0}}})
    assert collinear_features(rows, "lut", shared=("mem",)) == [("T", "act_base", "base")]
    rows[0]["features"]["lut"]["act_base"] = 0.0  # one grid point without it: the fit can tell them apart
    assert collinear_features(rows, "lut", shared=("mem",)) == []


def test_loo_select_finds_the_features_that_make_the_counts():
    from hwsim.bitstream.calibrate import loo_select

    rng = np.random.default_rng(1)
    rows = []
    for _ in range(10):
        f = {"base": 1.0, "word": float(rng.integers(8, 256)), "ctrl": float(rng.integers(1, 9)),
             "noise": float(rng.integers(0, 100)), "mem": float(rng.integers(0, 500))}
        rows.append({"features": f, "counts": {"lut": 30.0 + 2.0 * f["word"] + 0.5 * f["mem"]}})
    pick = loo_select(rows, ["base", "word", "ctrl", "noise"], offset={"mem": 0.5})
    assert pick["features"] == ["base", "word"] and pick["rms"] < 1e-6 and pick["misses"] == 0


def test_requant_features_follow_the_shifts_the_node_carries():
    from hwsim.dataflow.ecp5 import features, requant_lut
    from hwsim.dataflow.nodes import make_node

    def node(shifts, ib=20):
        return make_node("Requant", "rq", {"NumChannels": 4, "PE": 2, "numInputVectors": [1], "inputDataType": f"INT{ib}",
                                           "outputDataType": "INT8", "shifts": shifts})

    one = requant_lut(node([3] * 4))  # 17-bit floors: saturated; round over 17 bits, sticky over 2
    assert (one["sat"], one["round"], one["sticky"], one["select"], one["out"]) == (34, 34, 4, 0, 16)
    assert requant_lut(node([3] * 4, ib=10))["sat"] == 0  # a 7-bit floor cannot leave the 8-bit range
    # lane 0 serves channels 0 and 2 (shifts 1 and 4), lane 1 channels 1 and 3 (-1 and 0): rtl/requant and
    # rtl/mvau build a constant-shift requantizer per shift a lane takes (floors of 19, 16 | 20, 20 bits;
    # rounding over 19 and 16; sticky 0 and 3 bits) and a choice of two on each lane's 8 output bits
    table = requant_lut(node([1, -1, 4, 0]))
    assert (table["sat"], table["round"], table["sticky"], table["select"]) == (75, 35, 3, 16)
    assert requant_lut(node([1, -1, 4, 0]), lanes=2, width=24)["sat"] == 23 + 20 + 24 + 24  # an MVAU's accumulator
    # the fit sees only the features ecp5.LUT_FEATURES chooses for the table; every=True gives all
    assert set(features(node([1, -1, 4, 0]))["lut"]) == {"base", "sat", "select"}
    assert {"out", "sticky", "word"} <= set(features(node([1, -1, 4, 0]), every=True)["lut"])


def test_joint_fit_shares_fixes_and_takes_offsets():
    """fit_joint: a shared feature one coefficient for every table, a fixed one kept, and a row's offset
    (a part priced beforehand, as an MVAU's fused requant at Requant's coefficients) taken off its count."""
    from hwsim.bitstream.calibrate import fit_joint

    rows = [{"table": t, "features": {"lut": {"own": own, "mem": mem, "ram": 2.0}}, "counts": {"lut": count},
             "offset": {"lut": off}}
            for t, own, mem, off in (("A", 1.0, 0.0, 0.0), ("A", 2.0, 4.0, 0.0), ("B", 1.0, 2.0, 30.0), ("B", 3.0, 1.0, 30.0))
            for count in [{"A": 5.0, "B": 7.0}[t] * own + 3.0 * mem + 6.0 * 2.0 + off]]
    shared, tables = fit_joint(rows, "lut", shared=("mem",), fixed={"ram": 6.0})
    assert shared == {"ram": 6.0, "mem": pytest.approx(3.0)}
    assert tables["A"]["own"] == pytest.approx(5.0) and tables["B"]["own"] == pytest.approx(7.0)


def test_group_shifter_coefficients_are_the_measured_medians():
    """ecp5.FIXED's shifter costs are experiments/group_shift_pairs.py's committed medians (LUT
    products and multiplier blocks apart), and a grouped MVAU prices its shifters at its style's."""
    from hwsim.dataflow.ecp5 import FIXED, features

    data = json.loads((RESULTS.parent / "group_shift" / "pairs.json").read_text())
    medians = data["median_per_unit"]
    assert (FIXED["lut"]["gshift"], FIXED["lut"]["gshift_m18"]) == (medians["LUT"], medians["MULT18"])
    assert {r["products"] for r in data["rows"]} == {"LUT", "MULT18"}
    cfg = dict(MW=64, MH=16, PE=2, SIMD=8, WBITS=4, ABITS=8, WGROUP=8, GSBITS=3)
    lut_products = features(make_block("mvau", cfg).node)["lut"]
    blocks = features(make_block("mvau", {**cfg, "LUT_MULT": 0}).node)["lut"]
    assert lut_products["gshift"] == blocks["gshift_m18"] > 0
    assert "gshift_m18" not in lut_products and "gshift" not in blocks
