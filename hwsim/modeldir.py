"""Model directories: ``config.json`` + ``weights.safetensors`` (+ ``card.md``).

Weights are only ever read with safetensors, never unpickled, so a model directory from
anyone is safe to load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hwsim import config as cfgio
from hwsim.diffusion.schedule import NoiseSchedule, ScheduleConfig
from hwsim.nets import build_net

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild and sample a trained denoiser."""

    kind: str  # "unet" or "dit"
    dataset: str  # the data it was trained on: fashion, mnist, digits
    image_shape: tuple[int, ...]  # (C, H, W)
    net: dict[str, Any] = field(default_factory=dict)  # the net's config (UNetConfig / DiTConfig)
    schedule: ScheduleConfig = ScheduleConfig()


@dataclass
class LoadedModel:
    spec: ModelSpec
    net: nn.Module
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def noise_schedule(self) -> NoiseSchedule:
        return NoiseSchedule(self.spec.schedule)


class ModelDirError(RuntimeError):
    """A model directory is missing files or holds weights that do not fit its config."""


def save_model(spec: ModelSpec, net: nn.Module, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfgio.save(spec, out / CONFIG_FILE)
    save_tensors({k: v for k, v in net.state_dict().items()}, out / WEIGHTS_FILE)
    return out


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Atomic safetensors write: a crash mid-write leaves the previous file intact."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)


def load_spec(model_dir: str | Path) -> ModelSpec:
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ModelDirError(f"{model_dir}: not a model directory (no {CONFIG_FILE})")
    return cfgio.load(ModelSpec, path)


def load_model(model_dir: str | Path) -> LoadedModel:
    """Rebuild the float net of a model directory and load its safetensors weights."""
    model_dir = Path(model_dir)
    spec = load_spec(model_dir)
    net = build_net(spec.kind, spec.net, where=f"{model_dir / CONFIG_FILE}: net")
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelDirError(f"{model_dir}: no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises several types for corrupt files
        raise ModelDirError(f"{weights}: not a readable safetensors file ({err})") from None
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelDirError(f"{weights}: weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return LoadedModel(spec, net.eval(), model_dir)
