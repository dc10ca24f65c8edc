import pytest
import torch

from hwsim.config import ConfigError
from hwsim.modeldir import ModelDirError, ModelSpec, load_model, save_model
from hwsim.nets import build_net
from hwsim.nets.common import count_parameters
from tests.conftest import TINY_UNET

CASES = [
    ("unet", {}, (2, 1, 28, 28)),
    ("unet", TINY_UNET, (3, 1, 8, 8)),
    ("unet", {"image_size": 16, "base_channels": 8, "channel_mults": [1, 2, 2], "res_blocks": 2, "heads": 2, "groups": 4}, (2, 1, 16, 16)),
    ("dit", {}, (2, 1, 28, 28)),
    ("dit", {"image_size": 8, "patch_size": 2, "dim": 32, "depth": 2, "heads": 2}, (3, 1, 8, 8)),
]


@pytest.mark.parametrize("kind, cfg, shape", CASES)
def test_forward_shape_and_time_dependence(kind, cfg, shape):
    torch.manual_seed(0)
    net = build_net(kind, cfg)
    for p in net.parameters():  # DiT starts as the identity (adaLN-Zero): randomize to see t
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(shape)
    out = net(x, torch.full((shape[0],), 10))
    assert out.shape == shape and torch.isfinite(out).all()
    assert not torch.allclose(out, net(x, torch.full((shape[0],), 900)))


def test_default_unet_fits_the_block_ram_budget():
    """At most 0.4 M parameters: 3.2 Mbit at 8 bits, within an ECP5-85F's 3.7 Mbit."""
    assert count_parameters(build_net("unet", {})) <= 400_000
    assert count_parameters(build_net("dit", {})) <= 400_000


def test_dit_starts_as_zero_output():
    out = build_net("dit", {})(torch.randn(2, 1, 28, 28), torch.tensor([1, 500]))
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize(
    "kind, cfg, match",
    [
        ("unet", {"image_size": 10}, "not divisible"),
        ("unet", {"attention_levels": [5]}, "out of range"),
        ("unet", {"width": 3}, r"unknown key\(s\) \['width'\]"),
        ("dit", {"patch_size": 5}, "not divisible"),
        ("transformer", {}, "unknown net kind"),
    ],
)
def test_bad_configs(kind, cfg, match):
    with pytest.raises(ConfigError, match=match):
        build_net(kind, cfg)


def test_safetensors_round_trip(tmp_path):
    torch.manual_seed(1)
    net = build_net("dit", {"image_size": 8, "patch_size": 2, "dim": 16, "depth": 1, "heads": 2})
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    spec = ModelSpec("dit", "digits", (1, 8, 8), dict(net.config.__dict__))
    loaded = load_model(save_model(spec, net, tmp_path / "m"))
    assert loaded.spec == spec
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 7])
    assert torch.equal(loaded.net(x, t), net.eval()(x, t))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "weights.safetensors"]


def test_bad_model_directories(tmp_path, tiny_model_dir):
    with pytest.raises(ModelDirError, match="not a model directory"):
        load_model(tmp_path)
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (bad / "weights.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelDirError, match="not a readable safetensors file"):
        load_model(bad)
