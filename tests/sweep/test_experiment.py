"""Bad experiment files fail before any work starts, with one error naming the file and the key."""

from __future__ import annotations

import textwrap

import pytest

from hwsim.sweep import ExperimentError, load_experiment, main, run_sweep
from hwsim.sweep.store import OutputLock, SweepError
from tests.sweep.conftest import SMOKE

GOOD = """
models: [unet-digits]
methods: [naive]
precisions: [W8A8]
samples: 16
steps: 3
"""

BAD = {  # name: (extra or replaced YAML, the key the error must name, a phrase of the message)
    "unknown-top-key": ("precision: [W8A8]\n", "precision", "unknown key"),
    "empty-precisions": ("precisions: []\n", "precisions", "empty"),
    "empty-methods-mapping": ("methods: {}\n", "methods", "empty"),
    "empty-models": ("models: []\n", "models", "empty"),
    "unknown-model": ("models: [unet-nope]\n", "models[0]", "unknown model"),
    "not-a-denoiser": ("models: [classifier-digits]\n", "models[0]", "unknown model"),
    "unknown-method": ("methods: [naive, adaround+nope]\n", "methods.adaround+nope", "unknown PTQ method"),
    "unknown-recipe-key": ("methods: {full: {methods: [adaround], observr: mse}}\n", "methods.full", "observr"),
    "bad-observer": ("methods: {full: {observer: best}}\n", "methods.full", "observer"),
    "bad-precision": ("precisions: [W8A8, W8X8]\n", "precisions[1]", "neither WxAy"),
    "bits-out-of-range": ("precisions: [W1A8]\n", "precisions[0]", "weight_bits"),
    "unknown-sparsity": ("sparsity: [none, 'half']\n", "sparsity[1]", "unknown"),
    "unquoted-n-m-sparsity": ("sparsity: [2:4]\n", "sparsity[0]", "quote it"),
    "bad-target": ("targets: [device, fast]\n", "targets[1]", "cycles per step"),
    "unknown-device": ("devices: [virtex-99]\n", "devices[0]", "unknown device"),
    "too-many-samples": ("samples: 5000\n", "samples", "training images"),
    "bad-steps": ("steps: 0\n", "steps[0]", "positive integer"),
    "bad-seed": ("seeds: [-1]\n", "seeds[0]", "non-negative"),
    "unknown-fid-key": ("fid: {extractor: classifier, samples: 3}\n", "fid", "unknown key"),
    "unknown-extractor": ("fid: {extractor: clip}\n", "fid.extractor", "unknown"),
    "unknown-cost-key": ("cost: {device: xc7z020}\n", "cost", "unknown key"),
    "unknown-calibration-key": ("calibration: {sample: 4}\n", "calibration", "unknown key"),
    "random-too-many": ("sampling: {random: 5, seed: 0}\n", "sampling.random", "grid of 1"),
    "bad-sampling": ("sampling: sobol\n", "sampling", "grid"),
    "missing-required": (None, "samples", "required"),
}


def _write(tmp_path, name: str, extra: str | None):
    text = GOOD if extra is not None else GOOD.replace("samples: 16\n", "")
    if extra:
        key = extra.split(":")[0]
        text = "\n".join(line for line in text.splitlines() if not line.startswith(key + ":")) + "\n" + extra
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_file_expands_to_points(tmp_path):
    exp = load_experiment(_write(tmp_path, "good", ""))
    assert len(exp.points) == 1 and exp.points[0].config["plan"]["default"]["weight_bits"] == 8
    smoke = load_experiment(SMOKE)
    assert len(smoke.points) == smoke.grid_size == 4 and len({p.key for p in smoke.points}) == 4


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_fails_before_work(tmp_path, case):
    extra, key, phrase = BAD[case]
    path = _write(tmp_path, case, extra)
    out = tmp_path / "out"
    with pytest.raises(ExperimentError) as info:
        run_sweep(path, out, workers=0, progress=False)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and key in msg and phrase in msg, msg
    assert not out.exists(), "work started before the file was checked"


def test_plan_file_rule_matching_no_layer(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("default: {weight_bits: 4, act_bits: 8}\nrules:\n  - {match: 'nope.*', weight_bits: 8}\n")
    path = _write(tmp_path, "exp", f"precisions: [W8A8, {plan.name}]\n")
    with pytest.raises(ExperimentError, match=r"precisions\[1\].*unet-digits.*matches no layer"):
        load_experiment(path)
    missing = _write(tmp_path, "missing", "precisions: [plans/none.yaml]\n")
    with pytest.raises(ExperimentError, match=r"precisions\[0\]"):
        load_experiment(missing)


def test_cli_exit_code_and_one_line(tmp_path, capsys):
    path = _write(tmp_path, "bad", "models: [unet-nope]\n")
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: models[0]: unknown model 'unet-nope'")


def test_random_sampling_is_seeded(tmp_path):
    path = _write(tmp_path, "rand", "precisions: [W8A8, W4A8, W6A8, W4A6]\nsampling: {random: 2, seed: 3}\n")
    a, b = load_experiment(path), load_experiment(path)
    assert a.grid_size == 4 and [p.key for p in a.points] == [p.key for p in b.points] and len(a.points) == 2


def test_dry_run_and_lock(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_sweep(SMOKE, out, dry_run=True, progress=False) == []
    printed = capsys.readouterr().out
    assert "4 points" in printed and "~40 s of compute" in printed and printed.count(" todo ") == 4
    with OutputLock(out), pytest.raises(SweepError, match="another sweep is running"):
        run_sweep(SMOKE, out, dry_run=True, progress=False)
