"""FINN's streamlining of a Brevitas residual block, FINN's python execution, and hwsim's re-execution."""

import importlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper
from torch import nn

from tests.conftest import fuzz

from hwsim.intsim.finn_exec import FinnSimulator, UnsupportedNode, multithreshold, multithreshold_ref


@pytest.fixture
def finn(tmp_path, monkeypatch):
    """hwsim.export.finn imported with FINN_BUILD_DIR in a fresh temp dir (FINN writes there)."""
    build = tmp_path / "finn-build"
    build.mkdir()
    monkeypatch.setenv("FINN_BUILD_DIR", str(build))
    return importlib.import_module("hwsim.export.finn")


OUT_LSB = 4.0 / 128  # the output quantizer's scale: 2^ceil(log2(max_val=4)) / 2^7


class Block(nn.Module):
    """QuantIdentity -> conv -> QuantReLU -> conv, + residual (1x1 conv or identity) -> QuantIdentity."""

    def __init__(self, weight_bits: int, residual: str):
        from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU
        from brevitas.quant.fixed_point import (
            Int8ActPerTensorFixedPointMinMaxInit,
            Int8WeightPerTensorFixedPoint,
            Uint8ActPerTensorFixedPointMaxInit,
        )

        super().__init__()
        conv = dict(bias=False, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=weight_bits)
        act = dict(act_quant=Int8ActPerTensorFixedPointMinMaxInit, return_quant_tensor=True)
        self.inp = QuantIdentity(min_val=-2.0, max_val=2.0, **act)
        self.conv1 = QuantConv2d(4, 8, 3, padding=1, **conv)
        self.relu = QuantReLU(act_quant=Uint8ActPerTensorFixedPointMaxInit, max_val=4.0, return_quant_tensor=True)
        self.conv2 = QuantConv2d(8, 8 if residual == "conv" else 4, 3, padding=1, **conv)
        self.proj = QuantConv2d(4, 8, 1, **conv) if residual == "conv" else None
        self.out = QuantIdentity(min_val=-4.0, max_val=4.0, **{**act, "return_quant_tensor": False})

    def forward(self, x):
        x = self.inp(x)
        y = self.conv2(self.relu(self.conv1(x)))
        return self.out(y + (self.proj(x) if self.proj is not None else x))


class HalfUp(nn.Module):
    """Round half up, which is what FINN's half-step thresholds with ``>=`` compute."""

    def forward(self, x):
        return torch.floor(x + 0.5)


def half_up_activations(block: nn.Module) -> nn.Module:
    """Swap the activation quantizers' half-to-even RoundSte for HalfUp (weights keep half-to-even)."""
    from brevitas.core.function_wrapper import RoundSte

    for layer in (block.inp, block.relu, block.out):
        for mod in list(layer.modules()):
            for name, child in mod.named_children():
                if isinstance(child, RoundSte):
                    setattr(mod, name, HalfUp())
    return block


def _export(tmp_path, finn, weight_bits, residual, seed=0):
    """The FINN-dialect graph, inputs, and Brevitas' outputs with half-even and half-up activations."""
    from brevitas.export import export_qonnx

    torch.manual_seed(seed)
    block = Block(weight_bits, residual).eval()
    xs = [torch.randn(1, 4, 6, 6) * scale for scale in (0.5, 1.0, 3.0)]  # 3.0: saturates the input quantizer
    with torch.no_grad():
        even = [block(x).numpy() for x in xs]
        export_qonnx(block, args=xs[0], export_path=str(tmp_path / "block.onnx"), dynamo=False, opset_version=18)
        up = [half_up_activations(block)(x).numpy() for x in xs]
    path = finn.to_finn_dialect(tmp_path / "block.onnx", tmp_path / "block_finn.onnx")
    return path, [x.numpy() for x in xs], even, up


@pytest.mark.parametrize("residual", ["conv", "identity"])
@pytest.mark.parametrize("weight_bits", [4, 8])
def test_finn_equals_brevitas_and_simulator_equals_finn(tmp_path, finn, weight_bits, residual):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    path, xs, even, up = _export(tmp_path, finn, weight_bits, residual)
    model = ModelWrapper(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert ops <= {"MultiThreshold", "Im2Col", "MatMul", "Mul", "Add", "Transpose"}, ops
    assert "Conv" not in ops and "Quant" not in ops
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    sim = FinnSimulator(path)
    for x, ref_even, ref_up in zip(xs, even, up):  # FINN graphs are batch 1
        finn_out = execute_onnx(model, {iname: x})[oname]
        # FINN's MultiThreshold rounds activations half up, Brevitas' Quant half to even:
        # exactly equal to Brevitas with half-up activations, within one output LSB of plain Brevitas.
        assert np.array_equal(finn_out, ref_up)
        assert np.abs(finn_out - ref_even).max() <= OUT_LSB
        sim_out = sim.run({iname: x})[oname]
        assert sim_out.dtype == finn_out.dtype and np.array_equal(sim_out, finn_out)


@settings(max_examples=fuzz(20), deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(1, 17),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_multithreshold_kernel_equals_qonnx(rows, channels, steps, shared, seed):
    """Half-integer thresholds in random order, duplicated, and inputs sitting on them (ties)."""
    from qonnx.custom_op.general.multithreshold import multithreshold as qonnx_multithreshold

    rng = np.random.default_rng(seed)
    thr = (rng.integers(-8, 8, (1 if shared else channels, steps)) + 0.5 * rng.integers(0, 2)).astype(np.float32)
    x = rng.choice(np.concatenate([thr.ravel(), rng.integers(-10, 10, 8) * 0.5]), (rows, channels, 3))
    x = x.astype(np.float32)
    expected = qonnx_multithreshold(x, thr)
    assert np.array_equal(multithreshold_ref(x, thr), expected)
    assert np.array_equal(multithreshold(x, thr), expected)
    chlast = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    expected_last = qonnx_multithreshold(chlast, thr, channels_last=True)
    assert np.array_equal(multithreshold(chlast, thr, channel_axis=-1), expected_last)


@settings(max_examples=fuzz(20), deadline=None)
@given(hnp.arrays(np.float32, (3, 2), elements=st.floats(-1e3, 1e3, width=32)),
       hnp.arrays(np.float32, (2, 9), elements=st.floats(-1e3, 1e3, width=32)))
def test_multithreshold_kernel_equals_qonnx_float(x, thr):
    from qonnx.custom_op.general.multithreshold import multithreshold as qonnx_multithreshold

    assert np.array_equal(multithreshold(x, thr), qonnx_multithreshold(x, thr))


@pytest.mark.parametrize("kernel,stride,pads,dilations", [
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((3, 2), (2, 1), (0, 1, 2, 0), (1, 1)),
    ((2, 2), (1, 2), (1, 0, 0, 1), (2, 1)),
    ((1, 1), (2, 2), (0, 0, 0, 0), (1, 1)),
])
def test_im2col_equals_qonnx(tmp_path, kernel, stride, pads, dilations):
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    node = helper.make_node("Im2Col", ["x"], ["y"], domain="qonnx.custom_op.general", name="im2col0",
                            kernel_size=kernel, stride=stride, pad_amount=pads, dilations=dilations,
                            input_shape="(1, 7, 6, 3)", pad_value=-2)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7, 6, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = ModelWrapper(helper.make_model(graph)).transform(InferShapes())
    model.set_tensor_datatype("x", DataType["INT8"])
    model.save(str(tmp_path / "im2col.onnx"))
    x = np.random.default_rng(0).integers(-128, 128, (1, 7, 6, 3)).astype(np.float32)
    expected = execute_onnx(model, {"x": x})["y"]
    assert np.array_equal(FinnSimulator(tmp_path / "im2col.onnx").run({"x": x})["y"], expected)


def test_unsupported_node_is_named(tmp_path):
    import onnx

    node = helper.make_node("Relu", ["x"], ["y"], name="act0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph), tmp_path / "relu.onnx")
    message = r"node 'act0' has op type 'Relu', not one of the supported \[.*'MultiThreshold'"
    with pytest.raises(UnsupportedNode, match=message):
        FinnSimulator(tmp_path / "relu.onnx")


def test_inexact_matmul_is_refused(tmp_path):
    import onnx
    from onnx import numpy_helper

    w = numpy_helper.from_array(np.full((2, 2), 0.1, dtype=np.float32), "w")
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    onnx.save(helper.make_model(graph), tmp_path / "mm.onnx")
    with pytest.raises(ValueError, match="MatMul node 'mm0'"):
        FinnSimulator(tmp_path / "mm.onnx").run({"x": np.ones((1, 2), np.float32)})
