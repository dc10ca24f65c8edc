import json
from dataclasses import dataclass

import pytest

from hwsim import config as cfgio
from hwsim.diffusion.schedule import ScheduleConfig
from hwsim.diffusion.train import TrainConfig


@dataclass(frozen=True)
class Inner:
    a: int = 1
    b: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = Inner()
    rate: float = 0.5


def test_round_trip_json(tmp_path):
    cfg = Outer("x", Inner(3, (4, 5)), 2.0)
    path = cfgio.save(cfg, tmp_path / "c.json")
    assert cfgio.load(Outer, path) == cfg


def test_yaml_and_int_to_float(tmp_path):
    (tmp_path / "c.yaml").write_text("name: y\nrate: 1\ninner: {b: [7]}\n")
    cfg = cfgio.load(Outer, tmp_path / "c.yaml")
    assert cfg == Outer("y", Inner(1, (7,)), 1.0) and isinstance(cfg.rate, float)


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(cfgio.ConfigError, match=r"unknown key\(s\) \['typo'\]"):
        cfgio.from_dict(Outer, {"name": "x", "typo": 1})


def test_unknown_nested_key_names_the_path():
    with pytest.raises(cfgio.ConfigError, match=r"inner.*\['c'\]"):
        cfgio.from_dict(Outer, {"name": "x", "inner": {"c": 2}})


def test_missing_required_field():
    with pytest.raises(cfgio.ConfigError, match="name"):
        cfgio.from_dict(Outer, {})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(cfgio.ConfigError, match="no such file"):
        cfgio.load(Outer, tmp_path / "none.yaml")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(cfgio.ConfigError, match="bad.json: not valid json"):
        cfgio.load(Outer, tmp_path / "bad.json")


def test_train_config_rejects_bad_schedule():
    with pytest.raises(ValueError, match="beta_schedule"):
        cfgio.from_dict(TrainConfig, {"name": "n", "dataset": "digits", "kind": "unet", "schedule": {"beta_schedule": "x"}})
    cfg = cfgio.from_dict(TrainConfig, {"name": "n", "dataset": "digits", "kind": "unet", "schedule": {"beta_schedule": "cosine"}})
    assert cfg.schedule == ScheduleConfig(beta_schedule="cosine")
    assert json.loads(json.dumps(cfgio.to_dict(cfg)))["schedule"]["beta_schedule"] == "cosine"
