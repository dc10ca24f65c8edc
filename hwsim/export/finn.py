"""Brevitas QONNX -> streamlined FINN-dialect graph, with finn-plus doing what FINN does.

Why FINN: its streamlining (arXiv:1709.04060) is the reference route from a quantized net to
dataflow hardware: scales move through the graph and fold into ``MultiThreshold`` nodes, convs
lower to ``Im2Col`` + ``MatMul``, and the result is what FINN's to-HW conversions consume.
Comparing hwsim with it keeps both honest (:mod:`hwsim.intsim.finn_exec` re-executes it).

What FINN cannot do (docs/numerics.md, STACK.md "FINN"): GroupNorm stays an
InstanceNormalization with no HW op (and breaks CreateDataflowPartition), SiLU becomes a float
PWPolyF whose RTL exists only for Versal. So only conv/ReLU/residual blocks go through here;
the full denoisers use hwsim's own integer graph. Caveats: ``MultiThreshold`` rounds half *up*,
Brevitas' ``Quant`` half to even, so the two differ by one LSB at exact ties (seen with 4-bit
weights); FINN graphs are batch 1; a residual Add whose branches carry different scales stays
a float Add of two Mul nodes (MoveMulPastJoinAdd only moves equal scales).

Needs ``FINN_BUILD_DIR`` set before import (FINN writes there, else into the cwd).
"""

from __future__ import annotations

from pathlib import Path

from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
from finn.transformation.streamline import Streamline
from finn.transformation.streamline.absorb import AbsorbConsecutiveTransposes, AbsorbTransposeIntoMultiThreshold
from finn.transformation.streamline.reorder import (
    MoveLinearPastEltwiseAdd,
    MoveLinearPastFork,
    MoveMulPastJoinAdd,
    MoveScalarLinearPastInvariants,
    MoveTransposePastJoinAdd,
)
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames, RemoveUnusedTensors
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul
from qonnx.util.cleanup import cleanup_model

RESIDUAL_HELPERS = (
    MoveLinearPastFork,
    MoveLinearPastEltwiseAdd,
    MoveMulPastJoinAdd,
    MoveTransposePastJoinAdd,
    MoveScalarLinearPastInvariants,
)


def _streamline(model: ModelWrapper, max_rounds: int = 10) -> ModelWrapper:
    """Streamline with the ResNet-style residual helpers until the graph stops changing."""
    for _ in range(max_rounds):
        before = model.model.SerializeToString()
        model = model.transform(Streamline())
        for helper in RESIDUAL_HELPERS:
            model = model.transform(helper())
        if model.model.SerializeToString() == before:
            break
    return model


def to_finn_dialect(qonnx_path: str | Path, out_path: str | Path) -> Path:
    """Convert a Brevitas QONNX export to a streamlined FINN-dialect graph (no HW layers yet)."""
    model = cleanup_model(ModelWrapper(str(qonnx_path)))
    model = model.transform(ConvertQONNXtoFINN())
    model = _streamline(model)
    model = model.transform(LowerConvsToMatMul())
    model = model.transform(AbsorbTransposeIntoMultiThreshold())
    model = model.transform(AbsorbConsecutiveTransposes())
    model = _streamline(model)
    model = model.transform(RoundAndClipThresholds())
    for t in (InferShapes(), InferDataTypes(), InferDataLayouts(), RemoveUnusedTensors(),
              GiveUniqueNodeNames(), GiveReadableTensorNames()):
        model = model.transform(t)
    out = Path(out_path)
    model.save(str(out))
    return out
