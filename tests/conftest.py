"""Shared fixtures: one CPU thread per test process, a per-session FID cache, tiny models."""

from __future__ import annotations

import os

import numba
import pytest
import torch
from threadpoolctl import threadpool_limits

from hwsim.modeldir import ModelSpec, save_model
from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.export.intgraph import to_integer_graph
from hwsim.quant.calibrate import calibration_inputs
from hwsim.quant.plan import LayerPrecision, Override, PrecisionPlan
from hwsim.quant.quantize import quantize_calibrated
from hwsim.nets import build_net

# Fuzzing quotas scale with HWSIM_FUZZ_SCALE (`make fuzz` sets 20: over 10,000 kernel cases).
FUZZ_SCALE = int(os.environ.get("HWSIM_FUZZ_SCALE", "1"))


def fuzz(n: int) -> int:
    """Number of hypothesis examples for a test whose CI quota is ``n``."""
    return n * FUZZ_SCALE


TINY_UNET = {"image_size": 8, "base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1], "groups": 4}


@pytest.fixture(autouse=True, scope="session")
def _threads():
    """Torch on one thread; under several pytest-xdist workers Numba and BLAS too, whose OpenMP
    threads otherwise spin on the cores the other worker needs (tests/intsim on two workers:
    4.0 min with two threads a pool, 1.2 with one)."""
    torch.set_num_threads(1)
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        numba.set_num_threads(1)
        threadpool_limits(1)


@pytest.fixture(autouse=True, scope="session")
def _fid_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HWSIM_CACHE_DIR", str(tmp_path_factory.mktemp("fid-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """An untrained 8x8 U-Net saved as a model directory for the digits dataset."""
    torch.manual_seed(0)
    net = build_net("unet", {"in_channels": 1, **TINY_UNET})
    spec = ModelSpec("unet", "digits", (1, 8, 8), dict(net.config.__dict__))
    return save_model(spec, net, tmp_path_factory.mktemp("models") / "tiny-digits")


# integer graphs of the tiny U-Net and DiT (untrained, calibrated on their own trajectories)
TINY_DIT = {"image_size": 8, "patch_size": 2, "dim": 16, "depth": 2, "heads": 2, "mlp_ratio": 2}


def _graph(kind: str, config: dict, bits: tuple[int, int], path, scale: str = "po2", zero_point: bool = False,
           plan: PrecisionPlan | None = None):
    torch.manual_seed(0)
    net = build_net(kind, config).eval()
    if kind == "dit":  # adaLN-Zero starts at zero: randomize so every path carries signal
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.2)
    calib = calibration_inputs(net, NoiseSchedule(), (1, 8, 8), num_samples=4, steps=5)
    plan = plan or PrecisionPlan.uniform(*bits, weight_granularity="per_channel", scale=scale, act_zero_point=zero_point)
    return to_integer_graph(quantize_calibrated(net, plan, calib, 1000), calib[0], path)


@pytest.fixture(scope="session")
def unet_graph(tmp_path_factory):
    return _graph("unet", TINY_UNET, (4, 8), tmp_path_factory.mktemp("df") / "unet.onnx")


@pytest.fixture(scope="session")
def unet_float_graph(tmp_path_factory):
    """The tiny U-Net with float (8-bit mantissa) scales on every Conv/Linear."""
    return _graph("unet", TINY_UNET, (4, 8), tmp_path_factory.mktemp("df") / "unet-float.onnx", scale="float")


@pytest.fixture(scope="session")
def unet_zero_point_graph(tmp_path_factory):
    """The tiny U-Net with zero points on every Conv/Linear input (asymmetric INT(b+1) streams)."""
    return _graph("unet", TINY_UNET, (4, 8), tmp_path_factory.mktemp("df") / "unet-zp.onnx", zero_point=True)


@pytest.fixture(scope="session")
def dit_graph(tmp_path_factory):
    return _graph("dit", TINY_DIT, (8, 8), tmp_path_factory.mktemp("df") / "dit.onnx")


@pytest.fixture(scope="session")
def dit_group_graph(tmp_path_factory):
    """The tiny DiT at W4A8 with Q-DiT's group-wise weights (groups of 8 inputs; the one-channel
    patchify per channel): the integer graph carries each group's 4-bit integers shifted left."""
    plan = PrecisionPlan(default=LayerPrecision(4, 8, weight_granularity="per_group", group_size=8),
                         first=Override(weight_granularity="per_channel"))
    return _graph("dit", TINY_DIT, (4, 8), tmp_path_factory.mktemp("df") / "dit-g8.onnx", plan=plan)
