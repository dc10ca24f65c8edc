"""The shipped model zoo: every model loads from safetensors and denoises at its shape."""

import json
from pathlib import Path

import pytest
import torch

from hwsim.data import load_dataset, to_model_range
from hwsim.modeldir import load_model

MODELS = Path(__file__).resolve().parent.parent / "models"
ZOO = ["unet-fashion", "dit-fashion", "unet-digits", "dit-digits"]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_loads_and_denoises(name):
    model = load_model(MODELS / name)
    shape = model.spec.image_shape
    x0 = torch.from_numpy(to_model_range(load_dataset(model.spec.dataset, "test").images[:2]))
    noise = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
    t = torch.tensor([100, 500])
    with torch.no_grad():
        eps = model.net(model.noise_schedule().add_noise(x0, noise, t), t)
    assert eps.shape == (2, *shape)
    # a trained denoiser predicts the noise far better than predicting zero does
    assert (eps - noise).pow(2).mean() < 0.5 * noise.pow(2).mean()
    summary = json.loads((MODELS / name / "train_summary.json").read_text())
    assert summary["steps"] > 0 and summary["seconds"] > 0


@pytest.mark.slow
def test_card_classifier_fid_reproduces():
    """Rerun the card's classifier-FID of unet-digits: the same number, up to thread-count noise."""
    from hwsim.evaluate import generate, score

    card = json.loads((MODELS / "unet-digits" / "eval.json").read_text())
    images = generate(MODELS / "unet-digits", card["samples"], card["steps"], "ddim", card["seed"], progress=False)
    fid = score(images, "digits", "classifier", n_bootstrap=0, seed=card["seed"])["fid"]["fid"]
    assert fid == pytest.approx(card["classifier"]["fid"]["fid"], rel=0.01)
