"""Per-layer sensitivity and the mixed plan derived from it (hwsim.sweep.sensitivity), on a tiny
untrained one-level U-Net (13 quantized layers) with two input batches: ~15 s."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hwsim.dataflow.cost import CostConfig
from hwsim.diffusion.schedule import NoiseSchedule
from hwsim.modeldir import ModelSpec, load_model, save_model
from hwsim.nets import build_net
from hwsim.quant.calibrate import CalibrationConfig, calibration_inputs
from hwsim.quant.plan import PlanError, PrecisionPlan, load_plan, resolve_for_net
from hwsim.sweep import sensitivity as sens
from hwsim.sweep.sensitivity import SensitivityError, fit_mixed_plan, layer_sensitivity, mixed_plan

CALIB = CalibrationConfig(samples=2, steps=3, seed=1234)
BASE = PrecisionPlan.uniform(8, 8, weight_granularity="per_channel")
LOWER = {"weight_bits": 2}  # far enough below 8 bits that every layer's error shows
KW = dict(calib=CALIB, cost=CostConfig(), steps=2)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    net = build_net("unet", {"in_channels": 1, "image_size": 8, "base_channels": 4, "channel_mults": [1],
                             "attention_levels": [], "groups": 2})
    spec = ModelSpec("unet", "digits", (1, 8, 8), dict(net.config.__dict__))
    return load_model(save_model(spec, net, tmp_path_factory.mktemp("models") / "tiny-one-level"))


@pytest.fixture(scope="module")
def inputs(model):
    return calibration_inputs(model.net, NoiseSchedule(), (1, 8, 8), num_samples=2, steps=4, seed=0)[::2]


@pytest.fixture(scope="module")
def table(model, inputs, tmp_path_factory):
    path = tmp_path_factory.mktemp("sens") / "rows.json"
    rows = layer_sensitivity(model, BASE, LOWER, inputs, out=path, **KW)
    return path, rows


def test_rows_for_every_quantized_layer(model, table):
    path, rows = table
    data = json.loads(path.read_text())
    layers = data["base"]["quantized_layers"]
    assert [r["layer"] for r in rows] == layers and len(layers) == 13
    assert "time_embed.linear1" not in layers  # tables, not quantized layers
    for r in rows:
        assert r["status"] == "measured" and r["change"] == "W8->W2" and r["override"] == LOWER
        assert math.isfinite(r["mse"]) and math.isfinite(r["sqnr_db"]) and r["energy_uj_per_image"]["asic45nm"] > 0
        assert 0 < r["macs_share"] <= 1 and r["cycles_per_image"] > 0
        assert r["delta_mse"] == pytest.approx(r["mse"] - data["base"]["mse"])
    assert sum(r["macs_share"] for r in rows) <= 1 + 1e-9
    assert data["setup"]["changes"] == [LOWER] and data["provenance"]["git_commit"]


def test_lowered_layer_is_worse_than_base(table):
    _, rows = table
    assert all(r["delta_mse"] > 0 and r["delta_sqnr_db"] < 0 for r in rows), \
        [(r["layer"], r["delta_mse"]) for r in rows if r["delta_mse"] <= 0]
    assert all(r["energy_saved_uj"]["asic45nm"] > 0 for r in rows if r["macs_share"] > 0.01)


def test_resume_skips_finished_layers(model, inputs, table, monkeypatch, tmp_path):
    path, rows = table
    calls = []
    real = sens.measure_plan

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(sens, "measure_plan", counting)
    again = layer_sensitivity(model, BASE, LOWER, inputs, out=path, **KW)
    assert calls == [] and again == rows  # everything was done: nothing measured

    data = json.loads(path.read_text())  # as if killed after the first 11 rows
    data["rows"] = data["rows"][:11]
    partial = tmp_path / "rows.json"
    partial.write_text(json.dumps(data))
    resumed = layer_sensitivity(model, BASE, LOWER, inputs, out=partial, **KW)
    assert len(calls) == 2 and [r["layer"] for r in resumed] == [r["layer"] for r in rows]
    assert [r["mse"] for r in resumed] == [r["mse"] for r in rows]  # deterministic


def test_rows_file_of_another_setup_is_refused(model, inputs, table):
    path, _ = table
    with pytest.raises(SensitivityError, match="another setup.*changes"):
        layer_sensitivity(model, BASE, {"weight_bits": 4}, inputs, out=path, **KW)


def test_bad_arguments(model, inputs):
    with pytest.raises(SensitivityError, match="unknown layer.*nope"):
        layer_sensitivity(model, BASE, LOWER, inputs, layers=["conv_in", "nope"], **KW)
    with pytest.raises(SensitivityError, match="unknown field"):
        layer_sensitivity(model, BASE, {"weights": 4}, inputs, **KW)
    with pytest.raises(SensitivityError, match="weight_bits must be"):
        layer_sensitivity(model, BASE, {"weight_bits": 1}, inputs, **KW)


def test_mixed_plan_respects_budget_and_lowers_only_chosen(model, table, tmp_path):
    _, rows = table
    total = sum(r["delta_mse"] for r in rows)
    mixed = mixed_plan(rows, BASE, total / 3, out=tmp_path / "mixed.yaml", model=model)
    assert 0 < len(mixed.chosen) < len(rows)
    assert mixed.predicted_delta_mse <= total / 3
    assert mixed.predicted_delta_mse == pytest.approx(sum(r["delta_mse"] for r in mixed.chosen))
    # greedy: the chosen ones are the cheapest per microjoule, up to what the budget allows
    ratio = {r["layer"]: r["delta_mse"] / r["energy_saved_uj"]["asic45nm"] for r in rows}
    assert max(ratio[r["layer"]] for r in mixed.chosen) <= min(ratio[s["layer"]] for s in mixed.skipped) or \
        all(s["reason"] == "over budget" for s in mixed.skipped)
    plan = load_plan(tmp_path / "mixed.yaml")
    assert plan == mixed.plan
    base, lowered = resolve_for_net(BASE, model.net), resolve_for_net(plan, model.net)
    changed = {name for name in base if base[name] != lowered[name]}
    assert changed == set(mixed.overrides) == {r["layer"] for r in mixed.chosen}
    assert all(lowered[name].weight_bits == 2 and lowered[name].act_bits == 8 for name in changed)
    # budget 0 lowers nothing; a budget over the sum lowers every layer that saves energy
    assert mixed_plan(rows, BASE, 0.0).chosen == []
    assert len(mixed_plan(rows, BASE, 10 * total).chosen) == sum(r["energy_saved_uj"]["asic45nm"] > 0 for r in rows)


def _row(layer, override, delta, saved):
    return {"layer": layer, "change": "x", "override": override, "status": "measured", "delta_mse": delta,
            "energy_saved_uj": {"asic45nm": saved, "fpga": saved}}


def test_mixed_plan_combines_fields_and_counts_negative_deltas_as_free():
    rows = [_row("conv_in", {"weight_bits": 4}, 1.0, 1.0), _row("conv_in", {"act_bits": 4}, 0.5, 1.0),
            _row("conv_out", {"weight_bits": 4}, 0.3, 1.0), _row("conv_out", {"weight_bits": 2}, 0.1, 5.0),
            _row("up.0.blocks.0.shortcut", {"weight_bits": 4}, -0.5, 1.0),  # measured better: free
            _row("mid.attns.0.qkv", {"weight_bits": 4}, 0.1, 0.0)]  # saves nothing: never lowered
    mixed = mixed_plan(rows, BASE, 1.6)
    assert [r["layer"] for r in mixed.chosen] == ["up.0.blocks.0.shortcut", "conv_out", "conv_in", "conv_in"]
    assert mixed.overrides == {"conv_in": {"act_bits": 4, "weight_bits": 4}, "conv_out": {"weight_bits": 2},
                               "up.0.blocks.0.shortcut": {"weight_bits": 4}}
    assert mixed.predicted_delta_mse == pytest.approx(1.6) and mixed.predicted_energy_saved_uj == pytest.approx(8.0)
    assert mixed.skipped == [{"layer": "conv_out", "change": "x", "reason": "layer already lowered in that field"}]
    assert [r.match for r in mixed.plan.rules] == ["conv_in", "conv_out", "up.0.blocks.0.shortcut"]  # row order (the net's, for real rows)
    tighter = mixed_plan(rows, BASE, 1.0)  # conv_in's act_bits (0.5) fits, its weight_bits (1.0) no longer
    assert tighter.overrides["conv_in"] == {"act_bits": 4}
    assert {"layer": "conv_in", "change": "x", "reason": "over budget"} in tighter.skipped


@pytest.mark.parametrize("budget", [-1e-3, math.nan, math.inf, "0.1", True, None])
def test_bad_budget(table, budget):
    with pytest.raises(SensitivityError, match="budget"):
        mixed_plan(table[1], BASE, budget)


def test_unknown_layer_in_rows(model, table):
    rows = [*table[1], _row("down.7.conv", {"weight_bits": 4}, 0.0, 1.0)]
    with pytest.raises(SensitivityError, match=r"unknown layer.*down\.7\.conv"):
        mixed_plan(rows, BASE, 1.0, model=model)
    with pytest.raises(PlanError, match="matches no layer"):  # without the model, resolving the plan says so
        resolve_for_net(mixed_plan(rows, BASE, 1.0).plan, model.net)
    with pytest.raises(SensitivityError, match="not a sensitivity row"):
        mixed_plan([{"layer": "conv_in"}], BASE, 1.0)


def test_fit_mixed_plan_shrinks_until_measured_within_budget(table):
    _, rows = table
    budget = sum(r["delta_mse"] for r in rows) / 2
    # a fake measurement: errors compound, 1.5x what the rows predict
    measure = lambda plan: {"mse": 1.0 + 1.5 * sum(r["delta_mse"] for r in rows  # noqa: E731
                                                 if any(rule.match == r["layer"] for rule in plan.rules))}
    mixed, measured, rounds = fit_mixed_plan(rows, BASE, budget, measure, base_mse=1.0)
    assert rounds[0]["actual_delta_mse"] > budget and rounds[-1]["within_budget"] and len(rounds) > 1
    assert measured["mse"] - 1.0 <= budget and len(mixed.chosen) < rounds[0]["lowered"]
