"""Integer graphs of the tiny U-Net and DiT (untrained, calibrated on their own trajectories)."""

import pytest
import torch

from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.export.intgraph import to_integer_graph
from hwsim.nets import build_net
from hwsim.quant.calibrate import calibration_inputs
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.quantize import quantize_calibrated
from tests.conftest import TINY_UNET

TINY_DIT = {"image_size": 8, "patch_size": 2, "dim": 16, "depth": 2, "heads": 2, "mlp_ratio": 2}


def _graph(kind: str, config: dict, bits: tuple[int, int], path):
    torch.manual_seed(0)
    net = build_net(kind, config).eval()
    if kind == "dit":  # adaLN-Zero starts at zero: randomize so every path carries signal
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.2)
    calib = calibration_inputs(net, NoiseSchedule(), (1, 8, 8), num_samples=4, steps=5)
    qnet = quantize_calibrated(net, PrecisionPlan.uniform(*bits, weight_granularity="per_channel"), calib, 1000)
    return to_integer_graph(qnet, calib[0], path)


@pytest.fixture(scope="session")
def unet_graph(tmp_path_factory):
    return _graph("unet", TINY_UNET, (4, 8), tmp_path_factory.mktemp("df") / "unet.onnx")


@pytest.fixture(scope="session")
def dit_graph(tmp_path_factory):
    return _graph("dit", TINY_DIT, (8, 8), tmp_path_factory.mktemp("df") / "dit.onnx")
