"""The FINN handoff: hwsim's requantization as exact integer thresholds, the FINN-dialect models of
the tiny U-Net and DiT loaded, estimated and executed by finn-plus, and ``hwsim export --finn``."""

import importlib
import json

import numpy as np
import pytest
from onnx import helper
from typer.testing import CliRunner

from hwsim.dataflow.folding import fold_to_cycles
from hwsim.dataflow.mapping import map_integer_graph
from hwsim.intsim.executor import Simulator
from hwsim.intsim.ops.requant import requant_ref

# --- requantization as thresholds ------------------------------------------------------------------

CASES = [  # shift, qmin, qmax, output datatype, input datatype (every value of it is checked)
    (1, -128, 127, "INT8", "INT10"),
    (2, -128, 127, "INT8", "INT12"),
    (3, -127, 127, "INT8", "INT12"),  # narrow range
    (5, -128, 127, "INT8", "INT14"),  # saturates at both ends
    (4, -5, 6, "INT4", "INT9"),  # a clamp inside the output type
    (1, 0, 15, "UINT4", "INT7"),  # unsigned output of a signed accumulator
    (0, -8, 7, "INT4", "INT6"),  # no shift, saturating
    (-1, -128, 127, "INT8", "INT8"),  # left shifts, saturating
    (-3, -512, 511, "INT10", "INT8"),
    (7, -2**62, 2**62, "INT6", "INT12"),  # an aligning requant's clamp: the output type's bounds bind
]


@pytest.mark.parametrize("shift,qmin,qmax,out,inp", CASES)
def test_thresholds_equal_requant_exhaustively(shift, qmin, qmax, out, inp):
    """Every input of the accumulator type, ties (x = (k - 1/2) * 2^s) and negatives included."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.general.multithreshold import multithreshold

    from hwsim.export.finn_handoff import requant_thresholds

    lo, hi = int(DataType[inp].min()), int(DataType[inp].max())
    x = np.arange(lo, hi + 1, dtype=np.int64)
    expect = requant_ref(x, shift, max(qmin, int(DataType[out].min())), min(qmax, int(DataType[out].max())))
    t = requant_thresholds(shift, qmin, qmax, out, lo, hi)
    assert t.shape == (2 ** DataType[out].bitwidth() - 1,) and np.all(np.diff(t) >= 0)
    assert t.min() >= lo and t.max() <= hi + 1
    got = int(DataType[out].min()) + (x[:, None] >= t[None, :]).sum(axis=1)
    assert np.array_equal(got, expect)
    # the same through qonnx's MultiThreshold (what FINN's Thresholding and MVAU execute), in float32
    finn = multithreshold(x.astype(np.float32).reshape(-1, 1), t.astype(np.float32).reshape(1, -1),
                          out_bias=float(DataType[out].min()))
    assert np.array_equal(finn.reshape(-1).astype(np.int64), expect)


def test_half_up_thresholds_differ_at_ties():
    """FINN's streamlined thresholds sit at half steps (round half up): off by one at every odd tie."""
    from hwsim.export.finn_handoff import requant_thresholds

    x = np.arange(-512, 512)
    expect = requant_ref(x, 2, -128, 127)
    half_up = np.ceil((np.arange(-127, 128) - 0.5) * 4)  # x >= (k - 1/2) * 2^s
    got = -128 + (x[:, None] >= half_up[None, :]).sum(axis=1)
    ties = (x % 4 == 2) & ((x // 4) % 2 == 0)  # x/4 = n + 1/2 with n even: half-even keeps n
    assert np.array_equal(got != expect, ties)
    exact = -128 + (x[:, None] >= requant_thresholds(2, -128, 127, "INT8", -512, 511)[None, :]).sum(axis=1)
    assert np.array_equal(exact, expect)


def test_plan_requant_picks_the_exact_form():
    from hwsim.export.finn_handoff import plan_requant

    left = plan_requant([-2, -1], -2**63, 2**63 - 1, "INT15", -4096, 4095)  # aligning left shift: a multiply
    assert left.thresholds is None and left.factors.tolist() == [4, 2]
    clamped = plan_requant([-2], -128, 127, "INT8", -256, 255)  # left shift that saturates: thresholds
    assert clamped.factors is None and clamped.thresholds.shape == (1, 255) and clamped.act_val == -128
    assert plan_requant([3], -2**15, 2**15 - 1, "INT16", -2**18, 2**18 - 1) is None  # 16-bit table: too big


# --- the exported models ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def handoff(request, tmp_path_factory):
    """``(name) -> (graph, out_dir, manifest)``: the tiny U-Net or DiT mapped, folded to 3000 cycles
    per node (so that PE/SIMD are not all 1) and handed off; FINN_BUILD_DIR in a temp dir."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FINN_BUILD_DIR", str(tmp_path_factory.mktemp("finn-build")))
    handoff_mod = importlib.import_module("hwsim.export.finn_handoff")
    done = {}

    def get(which: str):
        if which not in done:
            graph = map_integer_graph(request.getfixturevalue(which), steps=10)
            fold_to_cycles(graph, 3000)
            out = tmp_path_factory.mktemp(f"finn-{which}")
            paths = handoff_mod.to_finn(graph, out)
            manifest = handoff_mod.load_manifest(out)
            assert [out / m["file"] for m in manifest["models"]] == paths
            done[which] = (graph, out, manifest)
        return done[which]

    yield get
    mp.undo()


GRAPHS = ["unet_graph", "dit_graph"]


@pytest.mark.parametrize("which", GRAPHS)
def test_models_are_finn_dialect_and_cover_every_static_mvau(handoff, which):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    from hwsim.export.finn_handoff import FINN_DOMAIN

    graph, out, manifest = handoff(which)
    static = [n for n in graph.nodes if n.op_type == "MVAU" and not n.dynamic()]
    assert manifest["covered_macs"] == sum(n.macs() for n in static)  # every requantization was expressible
    assert manifest["covered_macs"] == sum(m["macs"] for m in manifest["models"])
    assert manifest["graph_macs"] == graph.macs() and 0.5 < manifest["mac_share"] < 1
    assert set(manifest["left_behind"]) >= {"TimestepTable", "IntSoftmax", "MVAU", "HostInput"}
    assert manifest["left_behind"]["MVAU"] == sum(n.dynamic() for n in graph.nodes if n.op_type == "MVAU")
    exported = [name for m in manifest["models"] for name in m["hwsim_nodes"]]
    assert len(exported) == len(set(exported))
    for entry in manifest["models"]:
        model = ModelWrapper(str(out / entry["file"]))
        nodes = model.graph.node
        # the DiT's gated residual stream is 37 bits wide: FINN's float32 execution is not exact on it
        assert len(nodes) == entry["nodes"] and (entry["float32_exact"] or which == "dit_graph")
        assert all(n.domain == FINN_DOMAIN and helper.get_attribute_value(
            next(a for a in n.attribute if a.name == "backend")) == b"fpgadataflow" for n in nodes)
        for tensor in model.get_all_tensor_names():
            assert model.get_tensor_datatype(tensor).is_integer(), tensor
        for e in entry["inputs"] + entry["outputs"]:  # NHWC (tokens: (1, 1, L, C)), named after hwsim's streams
            assert len(model.get_tensor_shape(e["name"])) == 4 and e["stream"] in graph.carries
        # FINN's own shape and datatype inference agree with every annotation and attribute
        before = sorted(n.SerializeToString() for n in nodes)  # (InferShapes may reorder them)
        dtypes = {t: model.get_tensor_datatype(t) for t in model.get_all_tensor_names()}
        shapes = {t: model.get_tensor_shape(t) for t in model.get_all_tensor_names()}
        again = model.transform(InferShapes()).transform(InferDataTypes())
        assert sorted(n.SerializeToString() for n in again.graph.node) == before
        assert {t: again.get_tensor_datatype(t) for t in dtypes} == dtypes
        assert {t: again.get_tensor_shape(t) for t in shapes} == shapes


@pytest.mark.parametrize("which", GRAPHS)
def test_finn_estimates_equal_hwsim_cycles(handoff, which):
    """FINN's estimates (specialized as step_specialize_layers does) run on every model, and FINN's
    expected cycles equal hwsim's cost node's for every node exported from one."""
    from finn.analysis.fpgadataflow.dataflow_performance import dataflow_performance
    from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.core.modelwrapper import ModelWrapper

    from hwsim.export.finn_handoff import DEFAULT_FPGA_PART, finn_estimates

    graph, out, manifest = handoff(which)
    compared = set()
    for entry in manifest["models"]:
        estimates = finn_estimates(out / entry["file"])
        assert set(estimates) == set(entry["origin"])
        for name, est in estimates.items():
            assert est["op_type"].endswith(("_hls", "_rtl")) and {"LUT", "BRAM_18K", "DSP"} <= set(est["resources"])
            origin = entry["origin"][name]
            if origin is None:  # a bias add, a shift or a reshape the MVAU or the stream does in hwsim
                continue
            node = graph.node(origin)
            if node.op_type == "MVAU" and node.sparse():
                continue  # FINN has no N:M sparse MVAU
            assert est["cycles"] == node.get_exp_cycles(), (name, est, node.attrs)
            compared.add(node.op_type)
        model = ModelWrapper(str(out / entry["file"])).transform(SpecializeLayers(DEFAULT_FPGA_PART))
        perf = model.transform(AnnotateCycles()).analysis(dataflow_performance)
        assert perf["max_cycles"] == max(e["cycles"] for e in estimates.values())
    assert {"MVAU", "Requant", "ElementwiseAdd", "DuplicateStreams"} <= compared


@pytest.mark.parametrize("which", GRAPHS)
def test_finn_execution_equals_simulator(handoff, which):
    """execute_onnx of each model fed with the simulator's integers at its inputs gives exactly the
    simulator's integers at its outputs; also after FINN's bit-width minimization passes."""
    from finn.core.onnx_exec import execute_onnx
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes

    from hwsim.export.finn_handoff import boundary_values, execute

    graph, out, manifest = handoff(which)
    sim = Simulator(graph.source)
    rng = np.random.default_rng(0)
    shape = [d or 1 for d in sim.input_shapes["x"]]
    envs = [sim.run_integers(rng.standard_normal(shape) * scale, np.array([t])) for scale, t in ((1.0, 999), (3.0, 20))]
    for entry in manifest["models"]:
        for env in envs:
            got, expect = execute(out / entry["file"], entry, env)
            assert set(got) == set(expect)
            for name in expect:
                assert np.array_equal(got[name], expect[name]), (entry["file"], name)
        minimized = ModelWrapper(str(out / entry["file"]))
        for t in (MinimizeWeightBitWidth(), MinimizeAccumulatorWidth(), InferDataTypes(), RoundAndClipThresholds(),
                  InferDataTypes()):  # FINN's step_minimize_bit_width
            minimized = minimized.transform(t)
        got = execute_onnx(minimized, boundary_values(entry["inputs"], envs[1]))
        expect = boundary_values(entry["outputs"], envs[1], np.int64)
        assert all(np.array_equal(got[k], expect[k]) for k in expect), entry["file"]
        parent = minimized.transform(CreateDataflowPartition(partition_model_dir=str(out / "partitions" / entry["file"])))
        assert [n.op_type for n in parent.graph.node] == ["StreamingDataflowPartition"]


def test_cli_export_finn(tiny_model_dir, tmp_path, monkeypatch):
    from hwsim.cli import app

    monkeypatch.setenv("FINN_BUILD_DIR", str(tmp_path))
    (tmp_path / "plan.yaml").write_text("default: {weight_bits: 4, act_bits: 8}\n")
    result = CliRunner().invoke(app, ["export", str(tiny_model_dir), "--plan", str(tmp_path / "plan.yaml"),
                                      "--out", str(tmp_path / "q"), "--calib-samples", "2", "--calib-steps", "3",
                                      "--check-samples", "1", "--check-steps", "2", "--threads", "1", "--finn"])
    assert result.exit_code == 0, result.output
    assert "FINN-dialect models written to" in result.output
    manifest = json.loads((tmp_path / "q" / "finn" / "manifest.json").read_text())
    assert manifest["models"] and all((tmp_path / "q" / "finn" / m["file"]).is_file() for m in manifest["models"])
    assert manifest["source"] == str(tmp_path / "q" / "integer.onnx") and manifest["mac_share"] > 0.5
