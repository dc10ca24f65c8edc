"""Denoiser networks, one definition each, looked up by kind."""

from __future__ import annotations

from typing import Any

from torch import nn

from hwsim import config as cfgio
from hwsim.nets.dit import DiT, DiTConfig
from hwsim.nets.unet import UNet, UNetConfig

NETS: dict[str, tuple[type[nn.Module], type]] = {"unet": (UNet, UNetConfig), "dit": (DiT, DiTConfig)}


def build_net(kind: str, net_config: dict[str, Any], where: str = "net") -> nn.Module:
    """Build a float net of ``kind`` from a config dict (unknown keys are errors)."""
    if kind not in NETS:
        raise cfgio.ConfigError(f"{where}: unknown net kind {kind!r}; known: {', '.join(NETS)}")
    net_cls, config_cls = NETS[kind]
    try:
        return net_cls(cfgio.from_dict(config_cls, net_config, where))
    except ValueError as err:
        if isinstance(err, cfgio.ConfigError):
            raise
        raise cfgio.ConfigError(f"{where}: {err}") from None
