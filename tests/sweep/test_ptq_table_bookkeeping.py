"""experiments/ptq_table.py's bookkeeping: resumed rows report their whole cost, and a config
change that would make finished rows incomparable is refused (adding a recipe is allowed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ptq_table(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ptq_table", ROOT / "experiments/ptq_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "WORK", tmp_path)
    return module


def test_seconds_add_up_over_interrupted_runs(ptq_table, monkeypatch):
    clock = iter([100.0, 130.0, 500.0, 545.0, 545.0])
    monkeypatch.setattr(ptq_table.time, "time", lambda: next(clock))
    with pytest.raises(KeyboardInterrupt):
        with ptq_table.counted_seconds("row"):
            raise KeyboardInterrupt  # the first run is stopped after 30 s
    with ptq_table.counted_seconds("row") as seconds:
        assert seconds() == 75.0  # 30 s before + 45 s now
    assert (ptq_table.WORK / "seconds/row.json").read_text().strip() == '{"seconds": 75.0}'


def test_config_check(ptq_table):
    settings = {"samples": 2000, "recipes": {"naive": {"methods": []}, "ptqd": {"methods": ["ptqd"]}}}
    results = {"config": settings, "rows": [{"method": "naive"}]}
    path = Path("results.json")
    added = {**settings, "recipes": {**settings["recipes"], "new": {"methods": ["adaround"]}}}
    ptq_table.check_config(results, added, path)  # a new recipe: fine
    unused = {**settings, "recipes": {**settings["recipes"], "ptqd": {"methods": []}}}
    ptq_table.check_config(results, unused, path)  # a recipe no finished row used: fine
    used = {**settings, "recipes": {**settings["recipes"], "naive": {"methods": ["split-shortcut"]}}}
    with pytest.raises(SystemExit, match=r"recipes\.naive"):
        ptq_table.check_config(results, used, path)
    with pytest.raises(SystemExit, match="samples"):
        ptq_table.check_config(results, {**settings, "samples": 100}, path)
