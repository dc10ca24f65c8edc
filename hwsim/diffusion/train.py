"""Training loop for eps-prediction denoisers: EMA, checkpoints, exact resume.

Every random draw of step k (batch order, timesteps, noise) comes from generators seeded by
(seed, epoch) and (seed, step), so a run killed and resumed from its last checkpoint follows
the same trajectory as one that never stopped. Checkpoints are single safetensors files
(model, EMA and Adam moments, with the step in the metadata), written atomically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from hwsim import config as cfgio
from hwsim.data import load_dataset, to_model_range
from hwsim.diffusion.schedule import NoiseSchedule, ScheduleConfig
from hwsim.modeldir import ModelSpec, save_model, save_tensors
from hwsim.nets import build_net
from hwsim.nets.common import count_parameters
from hwsim.provenance import provenance


@dataclass(frozen=True)
class TrainConfig:
    name: str  # model name, e.g. "unet-fashion"
    dataset: str  # fashion, mnist or digits
    kind: str  # "unet" or "dit"
    net: dict[str, Any] = field(default_factory=dict)  # overrides of the net's default config
    schedule: ScheduleConfig = ScheduleConfig()
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # peak learning rate (AdamW), after linear warm-up, cosine-decayed to 0
    warmup_steps: int = 200
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 250  # optimizer steps between checkpoints
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default


CHECKPOINT = "checkpoints/state.safetensors"


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _save_checkpoint(path: Path, step: int, seconds: float, net, ema, opt) -> None:
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"opt.{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(tensors, path, metadata={"step": str(step), "seconds": f"{seconds:.1f}"})


def _load_checkpoint(path: Path, net, ema, opt) -> tuple[int, float]:
    """Restore net, EMA and optimizer; returns (step, training seconds so far)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        step, seconds = int(meta["step"]), float(meta["seconds"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": opt_state, "param_groups": opt.state_dict()["param_groups"]})
    return step, seconds


def train(cfg: TrainConfig, out_dir: str | Path, progress: bool = True, max_steps: int | None = None) -> Path:
    """Train (or resume) a denoiser into ``out_dir`` as a model directory; returns the path.

    ``max_steps`` stops early (for tests and for splitting a run); a later call resumes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved_cfg = out / "train.json"
    if saved_cfg.is_file() and cfgio.to_dict(cfgio.load(TrainConfig, saved_cfg)) != cfgio.to_dict(cfg):
        raise cfgio.ConfigError(f"{saved_cfg}: differs from the requested config; use a fresh --out")
    cfgio.save(cfg, saved_cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    data = load_dataset(cfg.dataset, "train")
    images = torch.from_numpy(to_model_range(data.images))
    torch.manual_seed(cfg.seed)  # initial weights
    net = build_net(cfg.kind, {"in_channels": 1, "image_size": images.shape[-1], **cfg.net}, where="net")
    spec = ModelSpec(cfg.kind, cfg.dataset, tuple(images.shape[1:]), cfgio.to_dict(net.config), cfg.schedule)
    ema = build_net(cfg.kind, spec.net)
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False)
    schedule = NoiseSchedule(cfg.schedule)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    steps_per_epoch = len(images) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    step, seconds = _load_checkpoint(out / CHECKPOINT, net, ema, opt) if (out / CHECKPOINT).is_file() else (0, 0.0)
    stop = total if max_steps is None else min(total, max_steps)
    log = (out / "train_log.jsonl").open("a")
    bar = tqdm(total=total, initial=step, desc=f"train {cfg.name}", unit="step", disable=not progress)
    started = time.time()
    net.train()
    while step < stop:
        epoch, index = divmod(step, steps_per_epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(images))
        x0 = images[order[index * cfg.batch_size : (index + 1) * cfg.batch_size]]
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        t = torch.randint(0, schedule.num_train_timesteps, (len(x0),), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        loss = torch.nn.functional.mse_loss(net(schedule.add_noise(x0, noise, t), t), noise)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step, total)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p, 1 - cfg.ema_decay)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", epoch=epoch)
        if step % 50 == 0:
            log.write(json.dumps({"step": step, "loss": round(loss.item(), 6)}) + "\n")
            log.flush()
        if step % cfg.checkpoint_every == 0 or step == stop:
            _save_checkpoint(out / CHECKPOINT, step, seconds + time.time() - started, net, ema, opt)
    bar.close()
    log.close()
    if step >= total:
        save_model(spec, ema, out)
        summary = {
            "name": cfg.name,
            "parameters": count_parameters(net),
            "steps": total,
            "seconds": round(seconds + time.time() - started, 1),  # summed over resumed sessions
            "threads": torch.get_num_threads(),
            "provenance": provenance(),
        }
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out
