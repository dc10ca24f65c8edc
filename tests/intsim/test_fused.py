"""Fused chains and narrow (int8/16/32) storage equal the int64 numpy references exactly.

Each fused kernel is compared with the composition of the ops' references (Requant, GroupNorm,
Lut, Modulate, Softmax, IntLinear, IntConv, IntAdd, Upsample), on int32 and int64 operands,
with max-magnitude values and requantizations that saturate; the executor's fused run with the
reference simulator on the tiny U-Net and DiT; and narrowed datatypes inside a chain still
raise naming the node.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fuzz
from tests.intsim.test_speed_paths import _linear_graph

from hwsim.export.ops import IntConv, IntLinear, Requant, Upsample
from hwsim.intsim import kernels
from hwsim.intsim.executor import Simulator
from hwsim.intsim.ops.lut import lut_ref
from hwsim.intsim.ops.norm import groupnorm_ref, modulate_ref
from hwsim.intsim.ops.requant import AccumulatorOverflow
from hwsim.intsim.ops.softmax import build_exp_table, softmax_ref

I32 = (-(2**31), 2**31 - 1)
STORAGE = st.sampled_from([np.int32, np.int64])  # for accumulators
NARROW = st.sampled_from([np.int8, np.int16, np.int32, np.int64])  # for 8-bit values


def _acc(rng, shape, extreme, lo=I32[0], hi=I32[1]):
    """Accumulator values: random, or every value at one of the storage type's extremes."""
    return rng.choice([lo, hi], shape) if extreme else rng.integers(lo // 2**rng.integers(0, 20), hi // 2**rng.integers(0, 20) + 1, shape)


def _requant_attrs(rng, channels, axis, per_channel, bits=8):
    shifts = [int(s) for s in rng.integers(-2, 30, channels)] if per_channel else [int(rng.integers(-2, 30))]
    return {"shifts": shifts, "axis": axis, "qmin": -(2 ** (bits - 1)), "qmax": 2 ** (bits - 1) - 1}


def _table(rng, lo, hi):
    return rng.integers(-128, 128, hi - lo + 1), lo


@settings(max_examples=fuzz(60), deadline=None)
@given(st.integers(1, 3), st.sampled_from([(4, 2), (8, 4), (6, 1), (3, 3)]), st.integers(1, 20), st.booleans(),
       st.booleans(), st.booleans(), STORAGE, NARROW, st.data())
def test_requant_groupnorm_lut_equals_reference(n, cg, length, with_rq, per_channel, with_lut, storage, out, data):
    channels, groups = cg
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    extreme = data.draw(st.booleans())
    if with_rq:
        acc = _acc(rng, (n, channels, length), extreme)
        a = _requant_attrs(rng, channels, 1, per_channel)
        q = Requant.compute([acc], a)
        rq = kernels.rq_for(a, acc.shape, 1)
    else:
        acc = q = rng.choice([-128, 127], (n, channels, length)) if extreme else rng.integers(-128, 128, (n, channels, length))
        rq = None
    g, b = rng.integers(-(2**10), 2**10, channels), rng.integers(-(2**20), 2**20, channels)
    attrs = {"groups": groups, "ft": 12, "fg": 10, "qmin": -100, "qmax": 90}  # clamps inside the 8-bit range
    expect = groupnorm_ref(q, groups, g, b, 12, 10, -100, 90)
    lut = _table(rng, -100, 90) if with_lut else None
    if with_lut:
        expect = lut_ref(expect, *lut)
    got = kernels.groupnorm(acc.astype(storage), g, b, attrs, out, rq, lut)
    assert got.dtype == out and np.array_equal(got, expect)


@settings(max_examples=fuzz(40), deadline=None)
@given(st.integers(1, 2), st.sampled_from([(4, 2), (6, 1), (3, 3)]), st.integers(2, 80), st.integers(1, 5), st.booleans(),
       st.booleans(), NARROW, st.data())
def test_groupnorm_tabulated_path_equals_reference(n, cg, length, bits, with_rq, with_lut, out, data):
    """Groups whose values span fewer integers than a channel's length take the per-channel table
    (constant groups included); the table must give what the arithmetic gives."""
    channels, groups = cg
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    q = rng.integers(lo, hi + 1, (n, channels, length))
    if data.draw(st.booleans()):
        q[0] = hi  # a constant group: D = 0
    rq = None
    if with_rq:  # a shift left that keeps the small span: the prologue feeds the table
        a = {"shifts": [-1], "axis": 1, "qmin": -128, "qmax": 127}
        rq = kernels.rq_for(a, q.shape, 1)
        expect = Requant.compute([q], a)
    else:
        expect = q
    g, b = rng.integers(-(2**10), 2**10, channels), rng.integers(-(2**20), 2**20, channels)
    attrs = {"groups": groups, "ft": 12, "fg": 10, "qmin": -128, "qmax": 127}
    expect = groupnorm_ref(expect, groups, g, b, 12, 10, -128, 127)
    lut = _table(rng, -128, 127) if with_lut else None
    if with_lut:
        expect = lut_ref(expect, *lut)
    assert np.array_equal(kernels.groupnorm(q.astype(np.int8), g, b, attrs, out, rq, lut), expect)


@settings(max_examples=fuzz(40), deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.sampled_from([4, 16, 64]), st.booleans(), st.integers(-15, -8),
       st.integers(-15, -6), st.integers(-8, 0), STORAGE, st.data())
def test_requant_modulate_equals_reference(n, length, dim, per_channel, e_scale, e_shift, e_out, storage, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    acc = _acc(rng, (n, length, dim), data.draw(st.booleans()))
    a = _requant_attrs(rng, dim, 2, per_channel)
    scale, shift = rng.integers(-(2**15), 2**15, (n, dim)), rng.integers(-(2**15), 2**15, (n, dim))
    attrs = {"ft": 12, "e_scale": e_scale, "e_shift": e_shift, "e_out": e_out, "qmin": -128, "qmax": 127}
    expect = modulate_ref(Requant.compute([acc], a), scale[:, None], shift[:, None], 12, e_scale, e_shift, e_out, -128, 127)
    got = kernels.modulate(acc.astype(storage), scale, shift, attrs, np.int32, kernels.rq_for(a, acc.shape, 2))
    assert np.array_equal(got, expect)


@settings(max_examples=fuzz(40), deadline=None)
@given(st.integers(1, 6), st.integers(1, 60), st.integers(0, 24), STORAGE, st.data())
def test_requant_softmax_equals_reference(rows, length, shift, storage, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    acc = _acc(rng, (2, rows, length), data.draw(st.booleans()))
    a = {"shifts": [shift], "axis": 0, "qmin": -128, "qmax": 127}
    table = build_exp_table(2.0**-4, 15, 256)
    q = Requant.compute([acc], a)
    expect = softmax_ref(q.reshape(-1, length), table, 8).reshape(q.shape)
    got = kernels.softmax(acc.astype(storage), table, 8, np.int32, kernels.rq_for(a, acc.shape, 0))
    assert np.array_equal(got, expect)


@settings(max_examples=fuzz(40), deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 40), st.integers(1, 9), st.booleans(), st.booleans(),
       STORAGE, st.data())
def test_linear_requant_lut_equals_reference(batch, rows, inner, cols, per_channel, with_lut, storage, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    extreme = data.draw(st.booleans())
    x = rng.choice([-128, 127], (batch, rows, inner)) if extreme else rng.integers(-128, 128, (batch, rows, inner))
    w = rng.choice([-7, 7], (cols, inner)) if extreme else rng.integers(-7, 8, (cols, inner))
    b = rng.integers(-(2**12), 2**12, cols)
    a = _requant_attrs(rng, cols, 2, per_channel)
    a["shifts"] = [s % 12 for s in a["shifts"]]  # the accumulators are small: shifts that both round and saturate
    expect = Requant.compute([IntLinear.compute([x, w, b], {})], a)
    lut = _table(rng, -128, 127) if with_lut else None
    if with_lut:
        expect = lut_ref(expect, *lut)
    rq = kernels.rq_for(a, (batch, rows, cols), -1)
    bound = int(np.abs(w).sum(1).max()) * 128
    for used in (bound, 2**60):  # float32 GEMM and the int64 one
        assert np.array_equal(kernels.int_linear(x.astype(storage), w, b, used, np.int32, rq, lut), expect)


@settings(max_examples=fuzz(40), deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 6), st.integers(2, 8), st.sampled_from([1, 3]),
       st.sampled_from([1, 2]), st.sampled_from(["none", "temb", "full"]), st.sampled_from(["none", "one", "channel"]),
       STORAGE, st.data())
def test_conv_add_requant_equals_reference(n, c, oc, size, k, stride, add, requant, storage, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    extreme = data.draw(st.booleans())
    x = rng.choice([-128, 127], (n, c, size, size)) if extreme else rng.integers(-128, 128, (n, c, size, size))
    w = rng.choice([-127, 127], (oc, c, k, k)) if extreme else rng.integers(-127, 128, (oc, c, k, k))
    b = rng.integers(-1000, 1000, oc)
    pads = [k // 2] * 4
    attrs = {"strides": [stride, stride], "pads": pads}
    expect = IntConv.compute([x, w, b], attrs)
    extra = None
    if add != "none":
        shape = (n, oc, 1, 1) if add == "temb" else expect.shape
        extra = _acc(rng, shape, extreme, -(2**28), 2**28)
        expect = expect + extra
    rq = None
    if requant != "none":
        a = _requant_attrs(rng, oc, 1, requant == "channel")
        expect = Requant.compute([expect], a)
        rq = kernels.rq_for(a, expect.shape, 1)
    bound = int(np.abs(w).reshape(oc, -1).sum(1).max()) * 128
    out = np.int32 if requant != "none" else np.int64
    for used in (bound, 2**60):
        got = kernels.int_conv(x.astype(storage), w, b, attrs["strides"], pads, used, out,
                               None if extra is None else extra.astype(storage), rq)
        assert got.dtype == out and np.array_equal(got, expect)


def test_requant_lut_upsample_add_at_extremes():
    rng = np.random.default_rng(3)
    acc = rng.choice([I32[0], I32[1], 0, -1, 5, 6, 7], (2, 3, 4, 4)).astype(np.int32)
    a = {"shifts": [1, 4, -1], "axis": 1, "qmin": -128, "qmax": 127}  # ties, saturation and a left shift
    table = rng.integers(-128, 128, 256)
    expect = lut_ref(Requant.compute([acc.astype(np.int64)], a), table, -128)
    got = kernels.requant(acc, a["shifts"], 1, -128, 127, np.int32, (table, -128))
    assert np.array_equal(got, expect)
    for factor in (1, 2, 3):  # 2 has its own loop
        assert np.array_equal(kernels.upsample(acc, factor), Upsample.compute([acc], {"factor": factor}))
    for dtype in (np.int8, np.int16, np.int32):  # narrow operands whose sum and product need int64
        top = np.iinfo(dtype).max
        big = np.full((2, 3), top, dtype=dtype)
        assert kernels.int_add(big, big).tolist() == [[2 * top] * 3] * 2
        assert kernels.int_mul(big, -big[:1]).tolist() == [[-top * top] * 3] * 2
        assert kernels.lut(big[:, :1] - top, table, -128).tolist() == [[table[128]]] * 2  # index math in int64


def _kinds(sim):
    return {step.kind for step in sim._steps(True)}


@pytest.mark.parametrize("graph", ["unet_graph", "dit_graph"])
def test_fused_run_equals_reference(graph, request):
    path = request.getfixturevalue(graph)
    fast, ref = Simulator(path), Simulator(path, reference=True)
    expected = {"conv", "gn", "softmax"} if graph == "unet_graph" else {"mod", "softmax", "linear"}
    assert expected <= _kinds(fast)
    rng = np.random.default_rng(0)
    for scale, t in ((1.0, 0), (1.0, 500), (50.0, 999)):  # x * 50: the input quantizer saturates
        x = rng.standard_normal((3, 1, 8, 8)) * scale
        tt = np.full(3, t)
        assert np.array_equal(fast.run(x, tt), ref.run(x, tt))
        got, want = fast.run_integers(x, tt), ref.run_integers(x, tt)
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
    env = fast._run_integers(x, tt, fused=True)  # the stored tensors: int8/16/32 where proven to fit
    stored = {v.dtype for v in env.values()}
    assert np.dtype(np.int8) in stored and stored & {np.dtype(np.int16), np.dtype(np.int32)}


def test_narrowed_tensor_inside_a_chain_unfuses_and_is_named(unet_graph):
    """A narrowed datatype inside a fused chain makes that node checked: the chain is split and the
    overflow names the node, as node by node."""
    sim = Simulator(unet_graph)
    x, t = np.random.default_rng(1).standard_normal((2, 1, 8, 8)), np.array([10, 900])
    for kind in ("gn", "conv"):
        step = next(s for s in sim._steps(True) if s.kind == kind and len(s.nodes) > 1)
        name, _, _, output, _ = sim.nodes[step.nodes[0]]
        saved = sim.ranges[output]
        sim.ranges[output] = (-1, 0)
        assert all(step.nodes[0] not in s.nodes[:-1] for s in sim._steps(True))  # at most a chain's checked end
        with pytest.raises(AccumulatorOverflow, match=f"node '{name}'"):
            sim.run(x, t)
        sim.ranges[output] = saved
        assert step in sim._steps(True)


def test_int32_storage_never_wraps(tmp_path):
    """Unproven nodes keep int64 until checked: a value beyond int32 is reported, not wrapped; a proven
    node declared wider than 32 bits is stored as int64."""
    w = np.array([[2**30, 2**30, 1]])
    x = np.array([[7.0, 7.0, 1.0]])  # y = 14 * 2^30 + 1
    sim = Simulator(_linear_graph(tmp_path / "a.onnx", w, in_bits=4, out_bits=32))  # not proven: checked
    assert "big_linear" not in sim._proven()
    with pytest.raises(AccumulatorOverflow, match="node 'big_linear'"):
        sim.run(x, np.zeros(1, np.int64))
    sim = Simulator(_linear_graph(tmp_path / "b.onnx", w, in_bits=4, out_bits=40))  # proven, 40 bits
    assert "big_linear" in sim._proven()
    env = sim._run_integers(x, np.zeros(1, np.int64), fused=True)
    assert env["y"].dtype == np.int64 and env["y"].tolist() == [[14 * 2**30 + 1]]


@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
@pytest.mark.parametrize("int8_kernel", [True, False])
def test_conv_with_requant_prologue_equals_requant_then_conv(strides, int8_kernel, monkeypatch):
    """A Requant fused before an IntConv (into the VNNI input packing, or requantized first on the
    other paths) gives the unfused result."""
    from hwsim.intsim import vnni

    if not int8_kernel:
        monkeypatch.setattr(vnni, "conv_s1_planes", lambda *a: None)
    rng = np.random.default_rng(7)
    x = rng.integers(-3000, 3000, (2, 6, 7, 9)).astype(np.int32)
    w = rng.integers(-8, 8, (5, 6, 3, 3))
    b = rng.integers(-100, 100, 5)
    a = {"shifts": [3, 4, 5, 2, 6, 1], "axis": 1, "qmin": -128, "qmax": 127}
    rq_in = kernels.rq_for(a, x.shape, 1)
    q = Requant.compute([x.astype(np.int64)], a)
    expect = IntConv.compute([q, w, b], {"strides": list(strides), "pads": [1, 1, 1, 1]})
    got = kernels.int_conv(x, w, b, strides, (1, 1, 1, 1), 2**20, np.int64, None, None, rq_in)
    np.testing.assert_array_equal(got, expect)
