"""pytest-benchmark of one bootstrap replicate of FID at Inception's 2,048 features and 1,000
samples (``make bench``): torchmetrics' FrechetInceptionDistance against
hwsim.metrics.fid.FrechetToReference, which the bootstraps use. Compare within the group."""

from __future__ import annotations

import pytest
import torch

from hwsim.metrics import fid

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def features():
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(2048, 2048, generator=gen, dtype=torch.float64) / 45
    real = torch.randn(1000, 2048, generator=gen, dtype=torch.float64) @ mix
    fake = (torch.randn(1000, 2048, generator=gen, dtype=torch.float64) * 1.1 + 0.05) @ mix
    return real, fake, fid.FrechetToReference(real)


@pytest.mark.parametrize("method", ["torchmetrics", "to_reference"])
def test_bootstrap_replicate(benchmark, features, method):
    real, fake, to_real = features
    benchmark.group = "FID replicate, 1,000 x 2,048"
    run = {"torchmetrics": lambda: fid.frechet_distance(real, fake), "to_reference": lambda: to_real(fake)}[method]
    value = benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    assert value == pytest.approx(fid.frechet_distance(real, fake) if method == "to_reference" else to_real(fake), rel=1e-4)
