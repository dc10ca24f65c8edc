import pytest
import torch

from hwsim.modeldir import ModelDirError
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.qmodel import load_quantized, quantize_dir, save_quantized


def test_saved_quantized_model_rebuilds_the_same_net(tiny_model_dir, tmp_path):
    q = quantize_dir(tiny_model_dir, PrecisionPlan.uniform(4, 8), CalibrationConfig(samples=4, steps=5))
    out = save_quantized(q, tmp_path / "q")
    loaded = load_quantized(out)
    assert loaded.ranges == q.ranges and loaded.plan == q.plan
    x, t = torch.randn(3, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 500, 999])
    with torch.no_grad():
        assert torch.equal(loaded.net()(x, t), q.net()(x, t))


def test_bad_quantized_directories_name_the_file(tiny_model_dir, tmp_path):
    with pytest.raises(ModelDirError, match="not a quantized model directory"):
        load_quantized(tiny_model_dir)
    out = save_quantized(quantize_dir(tiny_model_dir, PrecisionPlan.uniform(8, 8), CalibrationConfig(4, 5)), tmp_path / "q")
    (out / "calibration.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelDirError, match="calibration.safetensors: not a readable safetensors file"):
        load_quantized(out)
