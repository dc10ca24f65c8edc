import numpy as np
import pytest
import scipy.linalg
import torch

from hwsim.data import load_dataset
from hwsim.metrics import fid


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Independent closed form: |mu1-mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    b = rng.normal(loc=0.3, scale=1.5, size=(400, 8)) @ rng.normal(size=(8, 8))
    assert fid.frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(_scipy_fid(a, b), rel=1e-6)


@pytest.mark.parametrize("samples", [400, 40])  # more samples than features, and fewer (the low-rank form)
def test_frechet_to_reference_is_torchmetrics_fid(samples):
    """The bootstrap's fast FID against a fixed reference gives torchmetrics' number, also on
    duplicated samples (what bootstrap resampling makes). With fewer samples than features S1 S2 is
    rank-deficient, and torchmetrics' general eigendecomposition adds the square roots of its
    rounding-level eigenvalues: 1.4e-8 relative here, 3.4e-6 on 1,000 Inception features."""
    rng = np.random.default_rng(2)
    real = torch.from_numpy(rng.normal(size=(300, 64)) @ rng.normal(size=(64, 64)))
    fake = torch.from_numpy(rng.normal(loc=0.2, scale=1.3, size=(samples, 64)) @ rng.normal(size=(64, 64)))
    to_real = fid.FrechetToReference(real)
    for f in (fake, fake[torch.from_numpy(rng.integers(0, samples, samples))]):
        assert to_real(f) == pytest.approx(fid.frechet_distance(real, f), rel=1e-7)


def test_precision_recall_extremes():
    rng = np.random.default_rng(1)
    real = torch.from_numpy(rng.normal(size=(300, 4)))
    assert fid.precision_recall(real, real) == (1.0, 1.0)
    far = real + 100.0
    assert fid.precision_recall(real, far) == (0.0, 0.0)
    collapsed = real[:5].repeat(60, 1)  # mode collapse: precise but no recall
    precision, recall = fid.precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.2


def test_self_fid_is_zero_and_grows_with_noise():
    test = load_dataset("digits", "test").images
    results = []
    for sigma in (0, 10, 30, 60):
        noisy = np.clip(test + np.random.default_rng(0).normal(0, sigma, test.shape), 0, 255).astype(np.uint8)
        results.append(fid.evaluate(noisy, "digits", n_bootstrap=20))
    assert results[0].fid == pytest.approx(0.0, abs=1e-6)
    assert results[0].precision == 1.0 and results[0].recall == 1.0
    values = [r.fid for r in results]
    assert values == sorted(values) and values[-1] > 10 * max(values[1], 1.0)


def test_bootstrap_interval_brackets_the_estimate():
    r = fid.data_floor("digits", 297, n_bootstrap=50)
    assert 0.0 <= r.ci_low <= r.fid <= r.ci_high
    assert r.num_samples == 297 and r.num_reference == 297 and r.n_bootstrap == 50


def test_paired_differences_are_tighter_than_the_intervals():
    """Two sets sharing most of their samples (paired by index) differ by little: the paired
    interval of the difference is much narrower than each FID's own, and brackets it."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g, dtype=torch.float64)
    a = torch.randn(300, 8, generator=g, dtype=torch.float64) * 1.2
    b = a + 0.05 * torch.randn(300, 8, generator=g, dtype=torch.float64) + 0.05
    d = fid.paired_differences(real, {"a": a, "b": b}, [("b", "a"), ("a", "a")], n_bootstrap=50)
    own = fid.evaluate_features(real, a, "test", n_bootstrap=50)
    assert d["a - a"]["diff"] == d["a - a"]["ci_low"] == d["a - a"]["ci_high"] == 0.0
    gap = d["b - a"]
    assert gap["ci_low"] <= gap["diff"] <= gap["ci_high"]
    assert gap["ci_high"] - gap["ci_low"] < 0.5 * (own.ci_high - own.ci_low)
    with pytest.raises(ValueError, match="equally many samples"):
        fid.paired_differences(real, {"a": a, "b": b[:10]}, [("a", "b")])


def test_float_and_uint8_inputs_agree():
    test = load_dataset("digits", "test").images[:100]
    x = torch.from_numpy(test.astype(np.float32) / 127.5 - 1.0)[:, None]
    assert fid.evaluate(x, "digits", n_bootstrap=0).fid == pytest.approx(fid.evaluate(test, "digits", n_bootstrap=0).fid)


def test_reference_features_are_cached(tmp_path):
    a = fid.reference_features("digits", "classifier", tmp_path)
    files = list(tmp_path.glob("fid-digits-test-all-classifier-*.safetensors"))
    assert len(files) == 1
    assert torch.equal(a, fid.reference_features("digits", "classifier", tmp_path))


def test_errors():
    with pytest.raises(ValueError, match="unknown feature extractor"):
        fid.make_extractor("clip", "digits")
    with pytest.raises(FileNotFoundError, match="hwsim train-classifier"):
        fid.make_extractor("classifier", "mnist")
    with pytest.raises(ValueError, match="only 1500 train images"):
        fid.data_floor("digits", 5000)


@pytest.mark.slow
def test_inception_features_run_offline():
    test = load_dataset("digits", "test").images[:8]
    feats = fid.extract_features(fid.InceptionFeatures(), test)
    assert feats.shape == (8, 2048) and torch.isfinite(feats).all()
