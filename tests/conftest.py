"""Shared fixtures: one CPU thread per test process, a per-session FID cache, tiny models."""

from __future__ import annotations

import os

import pytest
import torch

from hwsim.modeldir import ModelSpec, save_model
from hwsim.nets import build_net

# Fuzzing quotas scale with HWSIM_FUZZ_SCALE (`make fuzz` sets 20: over 10,000 kernel cases).
FUZZ_SCALE = int(os.environ.get("HWSIM_FUZZ_SCALE", "1"))


def fuzz(n: int) -> int:
    """Number of hypothesis examples for a test whose CI quota is ``n``."""
    return n * FUZZ_SCALE


TINY_UNET = {"image_size": 8, "base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1], "groups": 4}


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(1)


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
