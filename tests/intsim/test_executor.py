"""The contract: the integer graph run by the simulator equals the quantized torch model in float64."""

import dataclasses

import numba
import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.export.intgraph import to_integer_graph
from hwsim.intsim.executor import GraphError, Simulator
from hwsim.intsim.ops.requant import AccumulatorOverflow
from hwsim.nets import build_net
from hwsim.quant.plan import Override, PrecisionPlan
from hwsim.quant.calibrate import calibration_inputs
from hwsim.quant import modules as hw
from hwsim.quant.calibrate import collect_ranges
from hwsim.quant.quantize import prepared, quantize_calibrated, quantize_net
from tests.conftest import TINY_DIT, TINY_UNET, fuzz


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = build_net("unet", TINY_UNET).eval()
    return net, calibration_inputs(net, NoiseSchedule(), (1, 8, 8), num_samples=8, steps=10)


def _w8a8_graph(net, calib, tmp_path):
    return to_integer_graph(quantize_calibrated(net, PrecisionPlan.uniform(8, 8), calib, 1000), calib[0], tmp_path / "g.onnx")


@pytest.mark.parametrize("bits, granularity, split, scale, zero_point", [
    ((8, 8), "per_tensor", False, "po2", False), ((4, 8), "per_channel", False, "po2", False),
    ((4, 4), "per_tensor", False, "po2", False), ((8, 8), "per_tensor", True, "po2", False),
    ((4, 4), "per_channel", True, "po2", False), ((8, 8), "per_channel", False, "float", False),
    ((4, 6), "per_tensor", True, "float", False), ((8, 8), "per_channel", False, "po2", True),
    ((4, 6), "per_channel", True, "float", True), ((4, 8), "per_group", True, "po2", False),
    ((4, 6), "per_group", False, "float", True)])
def test_simulator_equals_quantized_model(tiny, tmp_path, bits, granularity, split, scale, zero_point):
    net, calib = tiny
    clip = "mse" if scale == "float" and granularity == "per_channel" else "max"  # clipped weights stay exact too
    plan = PrecisionPlan.uniform(*bits, weight_granularity=granularity, scale=scale, mantissa_bits=5,
                                 act_zero_point=zero_point, weight_clip=clip, group_size=4)
    if granularity == "per_group":  # conv_in has one input channel; every other layer's weights are group-wise
        plan = dataclasses.replace(plan, first=Override(weight_granularity="per_channel"))
    qnet = quantize_net(net, plan, collect_ranges(prepared(net), calib, zero_point), 1000, split_concat=split)
    if split:  # the halves really are on different grids somewhere, so the shifts are exercised
        assert any(m.shift_bits > 0 for m in qnet.modules() if isinstance(m, hw.SplitConcat))
    if scale == "float" or zero_point:  # every layer but the split concatenations' consumers has an integer input grid
        assert sum(isinstance(m, hw.IntegerInputLayer) for m in qnet.modules()) >= 10
    if zero_point:  # and some of them really are asymmetric
        assert any(m.zero_point not in (None, 2 ** (m.bits - 1)) for m in qnet.modules() if isinstance(m, hw.IntegerInputLayer))
    if granularity == "per_group":  # convolutions too, behind integer input grids where the plan asks for them
        grouped = [m for m in qnet.modules() if isinstance(m, hw.GroupQuantLayer)]
        assert sum(m.is_conv for m in grouped) >= 6 and len(grouped) >= 10
        assert any((m.w_int.abs() > 2 ** (m.bits - 1)).any() for m in grouped)  # coarser groups shifted left
    path = to_integer_graph(qnet, calib[0], tmp_path / "g.onnx")
    fast, ref = Simulator(path), Simulator(path, reference=True)
    for x, t in calib[::3]:
        with torch.no_grad():
            expect = qnet(x.double(), t).numpy()
        assert np.array_equal(ref.run(x.numpy(), t.numpy()), expect)
        got, want = fast.run_integers(x.numpy(), t.numpy()), ref.run_integers(x.numpy(), t.numpy())
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_graph_is_integer_and_typed(tiny, tmp_path):
    net, calib = tiny
    path = _w8a8_graph(net, calib, tmp_path)
    model = onnx.load(str(path))
    typed = {a.tensor_name for a in model.graph.quantization_annotation}
    outputs = [n.output[0] for n in model.graph.node if n.op_type != "Dequant"]
    assert set(outputs) <= typed
    ints = Simulator(path).run_integers(calib[0][0].numpy(), calib[0][1].numpy())
    assert all(v.dtype == np.int64 for k, v in ints.items() if k not in ("x", "eps"))


def test_bad_inputs(tiny, tmp_path):
    net, calib = tiny
    path = _w8a8_graph(net, calib, tmp_path)
    sim = Simulator(path)
    with pytest.raises(GraphError, match=r"input 'x': shape \(2, 1, 9, 9\) does not match"):
        sim.run(np.zeros((2, 1, 9, 9)), np.zeros(2, dtype=np.int64))
    (tmp_path / "bad.onnx").write_bytes(b"\x08garbage")
    with pytest.raises(GraphError, match="not a readable ONNX file"):
        Simulator(tmp_path / "bad.onnx")


def test_unsupported_op_is_named(tmp_path):
    node = onnx.helper.make_node("Relu", ["x"], ["eps"], name="my_relu")
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [1])],
                                   [onnx.helper.make_tensor_value_info("eps", onnx.TensorProto.DOUBLE, [1])])
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "r.onnx"))
    with pytest.raises(GraphError, match=r"node 'my_relu' has unsupported op onnx:Relu; supported: .*IntConv"):
        Simulator(tmp_path / "r.onnx")


def test_every_narrowed_accumulator_overflows_with_the_node_name(tiny, tmp_path):
    net, calib = tiny
    path = _w8a8_graph(net, calib, tmp_path)
    x, t = calib[0][0].numpy(), calib[0][1].numpy()
    accumulators = [n for n in Simulator(path).nodes if n[1].__name__ in ("IntConv", "IntLinear", "IntMatMul", "IntAdd")]
    assert len(accumulators) > 30
    for name, _, _, output, _ in accumulators:
        sim = Simulator(path)
        sim.ranges[output] = (-1, 0)  # deliberately narrowed to one bit
        with pytest.raises(AccumulatorOverflow, match=f"node '{name}'"):
            sim.run(x, t)
        sim.saturate = True  # or saturate, if asked
        assert np.isfinite(sim.run(x, t)).all()


def test_float_tensor_between_nodes_is_refused(tiny, tmp_path):
    net, calib = tiny
    path = _w8a8_graph(net, calib, tmp_path)
    model = onnx.load(str(path))
    init = model.graph.initializer[0]
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init).astype(np.float32), init.name))
    onnx.save(model, str(tmp_path / "f.onnx"))
    with pytest.raises(GraphError, match=f"tensor '{init.name}' is float32; the integer graph carries integers only"):
        Simulator(tmp_path / "f.onnx")
    model = onnx.load(str(path))
    model.graph.node[5].input[0] = "x"  # a float input fed straight into an integer op
    onnx.save(model, str(tmp_path / "g2.onnx"))
    with pytest.raises(GraphError, match=r"reads float tensor 'x'; only QuantInput may"):
        Simulator(tmp_path / "g2.onnx")


def test_sampling_through_the_simulator_equals_the_quantized_model(tiny, tmp_path):
    """Same seeds, same eps at every step: the trajectories (hence any FID) are identical."""
    from hwsim.diffusion.samplers import make_scheduler, sample
    from hwsim.intsim.denoiser import IntsimDenoiser
    from hwsim.quant.quantize import quantized_denoiser

    net, calib = tiny
    qnet = quantize_calibrated(net, PrecisionPlan.uniform(4, 8), calib, 1000)
    path = to_integer_graph(qnet, calib[0], tmp_path / "g.onnx")
    scheduler = make_scheduler("ddim", NoiseSchedule())
    a = sample(quantized_denoiser(qnet), scheduler, 6, (1, 8, 8), 10, seed=7, progress=False)
    b = sample(IntsimDenoiser(path), scheduler, 6, (1, 8, 8), 10, seed=7, progress=False)
    assert torch.equal(a, b)


@pytest.mark.parametrize("bits, granularity, scale", [((8, 8), "per_tensor", "po2"), ((4, 8), "per_channel", "po2"),
                                                     ((4, 8), "per_group", "po2"), ((8, 8), "per_channel", "float")])
def test_simulator_equals_quantized_dit(tmp_path, bits, granularity, scale):
    torch.manual_seed(0)
    net = build_net("dit", TINY_DIT).eval()
    for p in net.parameters():  # adaLN-Zero starts at zero: randomize so every path carries signal
        torch.nn.init.normal_(p, std=0.2)
    calib = calibration_inputs(net, NoiseSchedule(), (1, 8, 8), num_samples=8, steps=10)
    plan = PrecisionPlan.uniform(*bits, weight_granularity=granularity, group_size=8, scale=scale)
    if granularity == "per_group":  # the patchify conv takes per-channel scales; every Linear is group-wise
        plan = dataclasses.replace(plan, first=Override(weight_granularity="per_channel"))
    qnet = quantize_calibrated(net, plan, calib, 1000)
    if granularity == "per_group":
        assert any(isinstance(m, hw.GroupQuantLayer) for m in qnet.modules())
    path = to_integer_graph(qnet, calib[0], tmp_path / "dit.onnx")
    fast, ref = Simulator(path), Simulator(path, reference=True)
    for x, t in calib[::4]:
        with torch.no_grad():
            expect = qnet(x.double(), t).numpy()
        assert np.array_equal(ref.run(x.numpy(), t.numpy()), expect)
        assert np.array_equal(fast.run(x.numpy(), t.numpy()), expect)
    ops_used = {n[1].__name__ for n in ref.nodes}
    assert {"Modulate", "IntMul", "Slice", "Lut", "Softmax", "IntMatMul", "TableLookup"} <= ops_used


def test_per_node_statistics(tiny, tmp_path):
    net, calib = tiny
    path = _w8a8_graph(net, calib, tmp_path)
    sim = Simulator(path)
    sim.enable_stats()
    for x, t in calib[:3]:
        sim.run(x.numpy(), t.numpy())
    stats = sim.stats()
    assert len(stats) == len(sim.nodes) - 1  # every integer node; Dequant's output is float
    for node, s in stats.items():
        lo, hi = s["observed_range"]
        assert s["declared_range"][0] <= lo <= hi <= s["declared_range"][1], node
        assert 0 <= s["zero_fraction"] <= 1 and 0 <= s["toggles_per_value"] <= 64
    silu = [s for n, s in stats.items() if ":Lut:" in n]
    assert silu and all(s["values"] > 0 for s in silu)


def test_toggle_count_by_hand(tmp_path):
    sim = Simulator.__new__(Simulator)
    sim.ranges, sim.members = {}, [sim]  # a bare simulator: one graph, no timestep groups
    sim.enable_stats()
    sim._record("n", "o", np.array([0, 3, 0, -1], dtype=np.int64))  # 0->3: 2 bits, 3->0: 2, 0->-1: 64
    assert sim.stats()["n"]["toggles_per_value"] == pytest.approx(68 / 3)
    assert sim.stats()["n"]["zero_fraction"] == 0.5
    sim.ranges = {"o8": (-128, 127)}  # in a declared INT8 tensor, 0 -> -1 flips 8 bits
    sim._record("m", "o8", np.array([0, 3, 0, -1], dtype=np.int64))
    assert sim.stats()["m"]["toggles_per_value"] == pytest.approx(12 / 3) and sim.stats()["m"]["declared_bits"] == 8


@st.composite
def _random_unet(draw):
    levels = draw(st.integers(1, 3))
    base = draw(st.sampled_from([4, 8]))
    mults = [1] + [draw(st.sampled_from([1, 2])) for _ in range(levels - 1)]
    groups = draw(st.sampled_from([g for g in (1, 2, 4) if all(base * m % g == 0 for m in mults)]))
    attention = [lvl for lvl in range(levels) if draw(st.booleans())]
    heads = draw(st.sampled_from([h for h in (1, 2) if all(base * m % h == 0 for m in mults)]))
    cfg = {"image_size": 8, "base_channels": base, "channel_mults": mults, "res_blocks": draw(st.integers(1, 2)),
           "attention_levels": attention, "groups": groups, "heads": heads}
    plan = PrecisionPlan.uniform(draw(st.integers(2, 8)), draw(st.integers(3, 8)),
                                 weight_granularity=draw(st.sampled_from(["per_tensor", "per_channel"])))
    return cfg, plan, draw(st.integers(0, 1000))


@settings(max_examples=fuzz(4), deadline=None)
@given(_random_unet())
def test_random_graphs_are_bit_exact(tmp_path_factory, case):
    """Random U-Net topologies and precisions: every one is bit-exact through the simulator."""
    cfg, plan, seed = case
    torch.manual_seed(seed)
    net = build_net("unet", cfg).eval()
    calib = calibration_inputs(net, NoiseSchedule(), (1, 8, 8), num_samples=4, steps=4, seed=seed)
    qnet = quantize_calibrated(net, plan, calib, 1000)
    sim = Simulator(to_integer_graph(qnet, calib[0], tmp_path_factory.mktemp("g") / "g.onnx"))
    for x, t in calib[::2]:
        with torch.no_grad():
            assert np.array_equal(sim.run(x.numpy(), t.numpy()), qnet(x.double(), t).numpy())


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")
def test_blas_runs_on_one_thread_while_numba_runs_on_several():
    """Both pools busy-wait for each other's cores otherwise (2-3x slower runs on two cores)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from hwsim.intsim.executor import _one_thread_pool

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    before = numba.get_num_threads()
    try:
        with threadpool_limits(2, user_api="blas"):
            numba.set_num_threads(2)
            with _one_thread_pool():
                assert blas_threads() == {1}
            assert blas_threads() == {2}
            numba.set_num_threads(1)
            with _one_thread_pool():
                assert blas_threads() == {2}
    finally:
        numba.set_num_threads(before)
