"""The small CNN classifier whose penultimate features define classifier-FID.

Inception-v3 features are the FID standard but cost about 0.4 CPU-s per image here; a
classifier trained by the project on the same dataset gives features that separate real
from generated 28x28 images in milliseconds, which is what sweeps need. The features are
the penultimate layer before its ReLU (dense, closer to Gaussian than the rectified ones).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from hwsim import config as cfgio
from hwsim.data import load_dataset, to_model_range
from hwsim.modeldir import save_tensors
from hwsim.provenance import provenance


@dataclass(frozen=True)
class ClassifierConfig:
    dataset: str
    image_size: int = 28
    width: int = 32  # channels of the first two convs; doubled after the first pooling
    features: int = 128  # dimension of the FID feature space
    num_classes: int = 10
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        w = cfg.width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * w * (cfg.image_size // 4) ** 2, cfg.features),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.3), nn.Linear(cfg.features, cfg.num_classes))
        self.num_features = cfg.features  # torchmetrics reads this off custom feature extractors

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], [N, 1, H, W] -> features [N, F]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def load_classifier(model_dir: str | Path) -> Classifier:
    model_dir = Path(model_dir)
    cfg = cfgio.load(ClassifierConfig, model_dir / "config.json")
    net = Classifier(cfg)
    net.load_state_dict(load_file(str(model_dir / "weights.safetensors")))
    return net.eval()


@torch.no_grad()
def accuracy(net: Classifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    net.eval()
    preds = torch.cat([net(images[i : i + batch]).argmax(1) for i in range(0, len(images), batch)])
    return float((preds == labels).float().mean())


def train_classifier(cfg: ClassifierConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train on the train split, report test accuracy, write a model directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train, test = load_dataset(cfg.dataset, "train"), load_dataset(cfg.dataset, "test")
    x, y = torch.from_numpy(to_model_range(train.images)), torch.from_numpy(train.labels)
    net = Classifier(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps = cfg.epochs * (len(x) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    started = time.time()
    bar = tqdm(total=steps, desc=f"classifier {cfg.dataset}", disable=not progress)
    for epoch in range(cfg.epochs):
        net.train()
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(x))
        for i in range(len(x) // cfg.batch_size):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    acc = accuracy(net, torch.from_numpy(to_model_range(test.images)), torch.from_numpy(test.labels))
    cfgio.save(cfg, out / "config.json")
    save_tensors(net.state_dict(), out / "weights.safetensors")
    summary = {"test_accuracy": acc, "seconds": round(time.time() - started, 1), "provenance": provenance()}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
