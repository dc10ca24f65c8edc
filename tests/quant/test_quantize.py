import copy

import pytest
import torch
from brevitas.nn import QuantConv2d, QuantLinear

from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.nets import build_net
from hwsim.quant import modules as hw
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.calibrate import calibration_inputs
from hwsim.quant.quantize import fold_attention_scale, quantize_calibrated
from tests.conftest import TINY_UNET


@pytest.fixture(scope="module")
def float_net():
    torch.manual_seed(0)
    return build_net("unet", TINY_UNET).eval()


@pytest.fixture(scope="module")
def calib(float_net):
    return calibration_inputs(float_net, NoiseSchedule(), (1, 8, 8), num_samples=8, steps=10)


def _sqnr(ref, out):
    return float(10 * torch.log10(ref.pow(2).mean() / (ref - out).pow(2).mean()))


def test_fold_attention_scale_keeps_the_float_function(float_net):
    folded = fold_attention_scale(copy.deepcopy(float_net))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 700])
    assert torch.allclose(folded(x, t), float_net(x, t), atol=1e-5)


def test_quantized_net_structure_and_float_net_untouched(float_net, calib):
    before = copy.deepcopy(float_net.state_dict())
    q = quantize_calibrated(float_net, PrecisionPlan.uniform(8, 8), calib, 1000)
    kinds = {type(m) for m in q.modules()}
    assert {QuantConv2d, QuantLinear, hw.IntGroupNorm, hw.LUTActivation, hw.IntSoftmax, hw.QuantMatMul, hw.TimestepTable} <= kinds
    assert not any(type(m) in (torch.nn.Conv2d, torch.nn.GroupNorm, torch.nn.SiLU, torch.nn.Softmax) for m in q.modules())
    assert all(torch.equal(v, float_net.state_dict()[k]) for k, v in before.items())


def test_accumulators_are_integers_at_their_scale(float_net, calib):
    """The premise of bit-exactness: in float64, every layer output is an integer times s_in * s_w."""
    q = quantize_calibrated(float_net, PrecisionPlan.uniform(4, 8, weight_granularity="per_channel"), calib, 1000)
    checked = []

    def hook(module, args, output):
        scale = module.quant_weight().scale.reshape(-1) * module.input_quant.scale()
        scale = scale.reshape((1, -1, 1, 1) if output.ndim == 4 else (1,) * (output.ndim - 1) + (-1,))
        acc = output / scale
        assert torch.equal(acc, torch.round(acc))
        checked.append(module)

    handles = [m.register_forward_hook(hook) for m in q.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    x, t = calib[5]
    q(x.double(), t)
    for h in handles:
        h.remove()
    assert len(checked) == sum(isinstance(m, (QuantConv2d, QuantLinear)) for m in q.modules())


def test_more_bits_less_error(float_net, calib):
    x, t = calib[4]
    ref = float_net(x, t).double()
    sqnr = {bits: _sqnr(ref, quantize_calibrated(float_net, PrecisionPlan.uniform(*bits), calib, 1000)(x.double(), t))
            for bits in [(8, 8), (4, 8), (4, 4)]}
    assert sqnr[(8, 8)] > 15 and sqnr[(8, 8)] > sqnr[(4, 8)] > sqnr[(4, 4)]


def test_timestep_table_domain():
    table = hw.TimestepTable(torch.zeros(10, 3), 0.5)
    assert table(torch.tensor([0, 9])).shape == (2, 3)
    with pytest.raises(ValueError, match=r"covers integer t in \[0, 9\]"):
        table(torch.tensor([10]))


def test_po2_scale_matches_brevitas():
    q = hw.act_quant(4, 3.0)
    assert float(q.act_quant.scale()) == hw.po2_scale(3.0, 4) == 0.5


def test_dit_quantization_tracks_the_float_model():

    torch.manual_seed(0)
    net = build_net("dit", {"image_size": 8, "patch_size": 2, "dim": 16, "depth": 2, "heads": 2, "mlp_ratio": 2}).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    calib = calibration_inputs(net, NoiseSchedule(), (1, 8, 8), num_samples=8, steps=10)
    x, t = calib[4]
    ref = net(x, t).double()
    sqnr = {bits: _sqnr(ref, quantize_calibrated(net, PrecisionPlan.uniform(*bits), calib, 1000)(x.double(), t)) for bits in [(8, 8), (4, 4)]}
    assert sqnr[(8, 8)] > 15 and sqnr[(8, 8)] > sqnr[(4, 4)]
