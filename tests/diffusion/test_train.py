import json

import pytest
import torch
from safetensors.torch import load_file

from hwsim.config import ConfigError
from hwsim.diffusion.train import TrainConfig, lr_at, train
from hwsim.modeldir import load_model

CFG = TrainConfig(name="t", dataset="digits", kind="unet",
                  net={"base_channels": 8, "channel_mults": (1, 2), "attention_levels": (1,), "groups": 4},
                  epochs=1, batch_size=128, warmup_steps=2, checkpoint_every=2, seed=3)  # 11 steps


def test_resume_follows_the_uninterrupted_trajectory(tmp_path):
    straight = load_model(train(CFG, tmp_path / "a", progress=False))
    train(CFG, tmp_path / "b", progress=False, max_steps=5)  # "killed" after step 5
    assert not (tmp_path / "b" / "weights.safetensors").exists()
    resumed = load_model(train(CFG, tmp_path / "b", progress=False))
    for (name, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name
    summary = json.loads((tmp_path / "b" / "train_summary.json").read_text())
    assert summary["steps"] == 11 and summary["parameters"] > 0 and "git_commit" in summary["provenance"]


def test_training_lowers_the_loss(tmp_path):
    train(CFG, tmp_path / "m", progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    assert losses == [] or losses[-1] < 1.0  # logs every 50 steps; 11 steps leave it empty
    state = load_file(str(tmp_path / "m" / "checkpoints" / "state.safetensors"))
    assert any(k.startswith("opt.") for k in state) and any(k.startswith("ema.") for k in state)


def test_refuses_to_mix_configs_in_one_directory(tmp_path):
    train(CFG, tmp_path / "m", progress=False, max_steps=1)
    with pytest.raises(ConfigError, match="differs from the requested config"):
        train(TrainConfig(**{**CFG.__dict__, "seed": 4}), tmp_path / "m", progress=False)


def test_lr_schedule_warms_up_then_decays_to_zero():
    cfg = TrainConfig(name="t", dataset="digits", kind="unet", lr=1.0, warmup_steps=10)
    assert lr_at(cfg, 0, 100) == pytest.approx(0.1) and lr_at(cfg, 9, 100) == pytest.approx(1.0)
    assert lr_at(cfg, 55, 100) == pytest.approx(0.5) and lr_at(cfg, 100, 100) == pytest.approx(0.0)
