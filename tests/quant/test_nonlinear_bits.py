"""``nonlinear_bits``: the hardware-exact nonlinear ops (GroupNorm, SiLU/GELU tables, softmax,
attention matmuls) at their own width, apart from the layers' input activations."""

import dataclasses
from pathlib import Path

import pytest
from brevitas.nn import QuantConv2d, QuantLinear

from hwsim.export.pipeline import export_model
from hwsim.modeldir import load_model
from hwsim.quant import modules as hw
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.diagnose import fixed_inputs, output_mse
from hwsim.quant.plan import PlanError, PrecisionPlan
from hwsim.quant.qmodel import quantize_dir, save_quantized

MODELS = Path(__file__).resolve().parents[2] / "models"


def plan(nonlinear_bits=None) -> PrecisionPlan:
    return dataclasses.replace(PrecisionPlan.uniform(8, 6, weight_granularity="per_channel"), nonlinear_bits=nonlinear_bits)


def test_wider_nonlinear_ops_lower_the_error():
    model = load_model(MODELS / "unet-digits")
    inputs = fixed_inputs(model, samples=8)
    calib = CalibrationConfig(samples=8, steps=50)
    narrow = output_mse(quantize_dir(model.path, plan(), calib).net(), model.net, inputs)
    q = quantize_dir(model.path, plan(10), calib)
    net = q.net()
    assert output_mse(net, model.net, inputs) < 0.8 * narrow
    norms = [m for m in net.modules() if isinstance(m, hw.IntGroupNorm)]
    assert norms and {m.bits for m in norms} == {10}
    layers = [m for m in net.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    assert {int(m.input_quant.bit_width()) for m in layers} == {6}  # the layers' inputs keep act_bits


def test_nonlinear_bits_export_bit_exact_and_bad_values_fail(tiny_model_dir, tmp_path):
    q = quantize_dir(tiny_model_dir, plan(10), CalibrationConfig(samples=2, steps=4))
    out = save_quantized(q, tmp_path / "q")
    export_model(out, None, out, check_samples=1, check_steps=4)  # raises unless bit-exact
    assert plan(10).describe() == "W8A6 nonlinear A10"
    for bad in (1, 17, 8.0, True):
        with pytest.raises(PlanError, match="nonlinear_bits must be an integer in 2..16"):
            plan(bad)
