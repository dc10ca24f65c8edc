"""The mapping from the integer graph: every op placed, work counted as qonnx counts it, layout exact."""

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.dataflow import layout
from hwsim.dataflow.graph import DataflowGraph, GraphError
from hwsim.dataflow.inference_cost import qonnx_cost
from hwsim.dataflow.mapping import load_dataflow, map_integer_graph
from tests.conftest import fuzz


@pytest.mark.parametrize("which", ["unet_graph", "dit_graph", "unet_float_graph", "unet_zero_point_graph"])
def test_macs_and_bitops_equal_qonnx_inference_cost(which, request, tmp_path):
    path = request.getfixturevalue(which)
    graph = map_integer_graph(path, steps=10)
    qonnx = qonnx_cost(path, tmp_path)
    assert graph.macs() == qonnx["total_macs"] > 0
    assert graph.bitops() == qonnx["total_bops"]
    assert qonnx["unsupported"] == "set()"  # qonnx reports it as a string


def test_unet_node_types(unet_graph):
    graph = map_integer_graph(unet_graph, steps=10)
    types = collections.Counter(n.op_type for n in graph.nodes)
    for t in ("MVAU", "ConvolutionInputGenerator_rtl", "FMPadding", "GroupNorm", "LutActivation", "ElementwiseAdd",
              "IntSoftmax", "StreamingSplit", "StreamingConcat", "UpsampleNearestNeighbour", "TimestepTable",
              "DuplicateStreams", "HostInput", "HostOutput"):
        assert types[t] > 0, t
    # channels-last streaming makes the attention's reshape/transpose chains free
    assert types["StreamReorder"] == 0
    # attention: q, k, v are channel ranges of each token; the two matmuls are dynamic MVAUs
    split = next(n for n in graph.nodes if n.op_type == "StreamingSplit")
    assert len(set(split.attrs["ChannelsPerStream"])) == 1 and len(split.attrs["ChannelsPerStream"]) == 3
    assert sum(n.attrs.get("mem_mode") == "dynamic" for n in graph.nodes) == 2 * types["IntSoftmax"]
    # timestep tables hold one row per sampler step, not per training timestep
    assert all(n.attrs["NumSteps"] == 10 for n in graph.nodes if n.op_type == "TimestepTable")


def test_float_scales_map_to_constant_multipliers(unet_graph, unet_float_graph):
    """Each float-scale layer adds an exact input and output multiplier (ElementwiseMul with a
    constant) beside the same MVAUs; the multiplier's price is what the cost model then adds."""
    po2, flt = (map_integer_graph(g, steps=10) for g in (unet_graph, unet_float_graph))
    types = {g: collections.Counter(n.op_type for n in graph.nodes) for g, graph in (("po2", po2), ("float", flt))}
    assert types["float"]["MVAU"] == types["po2"]["MVAU"] and flt.macs() == po2.macs()
    muls = [n for n in flt.nodes if n.op_type == "ElementwiseMul" and n.attrs["rhs_style"] == "const"]
    layers = sum(n.op_type == "MVAU" and n.attrs.get("mem_mode") != "dynamic" for n in flt.nodes)  # not attention's
    assert types["po2"]["ElementwiseMul"] == 0 and len(muls) == 2 * layers - 1  # conv_in's input: the host quantizer
    assert types["float"]["Requant"] > types["po2"]["Requant"]


def test_dit_unpatchify_needs_a_reorder_buffer(dit_graph):
    graph = map_integer_graph(dit_graph, steps=10)
    reorders = [n for n in graph.nodes if n.op_type == "StreamReorder"]
    assert len(reorders) == 1  # tokens of 2x2 patches back to pixel rows
    # 4 patches per pixel row, 4 values each: the last patch's first pixel row (input 12) is needed
    # at output 6, when 13 inputs have arrived and 6 left: 7 held, one passing straight through
    assert reorders[0].attrs["bufferDepth"] == 6
    assert {"AdaLayerNorm", "ElementwiseMul"} <= {n.op_type for n in graph.nodes}
    # rtl/reorder addresses its slots mod S: 14 at full rate for this sequence (checked on the RTL in
    # tests/rtl/test_reorder.py), and that is what the model prices
    assert reorders[0].slots() == 14 and reorders[0].buffer_bits() == 14 * reorders[0].dt("inputDataType")


def test_save_and_load_round_trip(unet_graph, tmp_path):
    graph = map_integer_graph(unet_graph, steps=10)
    path = graph.save(tmp_path / "df.onnx")
    again = load_dataflow(path, steps=10)
    assert [n.to_dict() for n in again.nodes] == [
        {**n.to_dict(), "inputs": [graph.stream(i) for i in n.inputs]} for n in graph.nodes]
    assert again.macs() == graph.macs()


def test_not_a_dataflow_graph_is_refused(unet_graph, tmp_path):
    with pytest.raises(GraphError, match="not a dataflow graph"):
        DataflowGraph.load(unet_graph)
    with pytest.raises(FileNotFoundError, match="no such graph"):
        load_dataflow(tmp_path / "missing", steps=10)


def _buffer_by_simulation(sequence: np.ndarray) -> int:
    """Stream the input in order, emit the outputs in ``sequence`` order; the most held at once."""
    wanted, arrived, held, peak = set(sequence.tolist()), 0, set(), 0
    for need in sequence.tolist():
        while need not in held:
            if arrived in wanted:
                held.add(arrived)
            arrived += 1
            peak = max(peak, len(held))
        held.remove(need)
    return peak - 1


@settings(max_examples=fuzz(60), deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.permutations(list(range(n)))), st.data())
def test_reorder_depth_equals_a_simulated_buffer(perm, data):
    keep = data.draw(st.lists(st.booleans(), min_size=len(perm), max_size=len(perm)))
    seq = np.array([p for p, k in zip(perm, keep) if k] or perm[:1])
    assert layout.reorder_depth(seq) == _buffer_by_simulation(seq)


def test_nm_structure_is_found_in_the_mvau_order():
    from hwsim.dataflow.mapping import mvau_rows, nm_pattern

    rows = np.zeros((2, 16), dtype=np.int64)
    rows[:, ::4], rows[:, 1::4] = 3, -1  # two of every four
    assert nm_pattern(rows) == {"sparsityN": 2, "sparsityM": 4}
    rows[0, 2] = 5
    assert nm_pattern(rows) == {}  # three of four in one group: nothing to exploit
    # a 3x3 convolution pruned 2:4 along PyTorch's (c, ky, kx) order is not 2:4 along (ky, kx, c)
    torch_order = np.random.default_rng(0).integers(1, 100, size=(1, 36)).reshape(1, 9, 4)
    torch_order = torch_order * (np.argsort(np.argsort(-torch_order, axis=2), axis=2) < 2)  # top 2 of 4
    conv = torch_order.reshape(1, 4, 3, 3)
    assert nm_pattern(conv.reshape(1, -1)) == {"sparsityN": 2, "sparsityM": 4}
    assert nm_pattern(mvau_rows(conv)) == {}


def test_sparse_model_maps_to_sparse_mvaus(tiny_model_dir, tmp_path):
    from hwsim.export.pipeline import export_model
    from hwsim.quant.calibrate import CalibrationConfig
    from hwsim.quant.plan import PrecisionPlan
    from hwsim.quant.qmodel import quantize_dir, save_quantized

    quantized = quantize_dir(tiny_model_dir, PrecisionPlan.uniform(8, 8), CalibrationConfig(samples=2, steps=4), ["sparse-2:4"])
    save_quantized(quantized, tmp_path / "q")
    graph = map_integer_graph(export_model(tmp_path / "q", None, tmp_path / "q", check_samples=1, check_steps=4), steps=4)
    sparse = [n for n in graph.nodes if n.op_type == "MVAU" and n.sparse()]
    assert sparse and all(n.macs() * 2 == n.attrs["MW"] * n.attrs["MH"] * n.n_vectors() for n in sparse)
    assert all(n.attrs["sparsityN"] == 2 and n.attrs["sparsityM"] == 4 for n in sparse)
    # the stitched RTL of a block with a sparse 1x1 shortcut equals the simulator
    from hwsim.rtlgen.stitch import block_nodes, verify

    names = block_nodes(graph, "down.1.blocks.0")
    assert any(graph.node(n).op_type == "MVAU" and graph.node(n).sparse() for n in names)
    assert verify(graph, names, tmp_path / "rtl", list(range(0, 1000, 250)), samples=2, lanes=4)["bit_exact"]


def test_attention_streams_can_be_folded(unet_graph, dit_graph):
    """The vector stream of each attention matmul carries whole vectors per word group (its
    producer's channels are the matmul's MW), also for one head, where several orders tie."""
    for path in (unet_graph, dit_graph):
        graph = map_integer_graph(path, steps=10)
        producers = graph.producers()
        dynamic = [n for n in graph.nodes if n.attrs.get("mem_mode") == "dynamic"]
        assert dynamic
        for n in dynamic:
            src = producers[graph.stream(n.inputs[0])]
            assert src.attrs.get("NumChannels", n.attrs["MW"]) == n.attrs["MW"], (n.name, src.name)
