import pytest

from hwsim.nets import build_net
from hwsim.quant.plan import LayerPrecision, PlanError, PrecisionPlan, Rule, compute_layers, load_plan, resolve_for_net


@pytest.fixture(scope="module")
def unet():
    return build_net("unet", {})


def test_uniform_plan_covers_every_compute_layer(unet):
    resolved = resolve_for_net(PrecisionPlan.uniform(4, 8), unet)
    assert list(resolved) == compute_layers(unet) and len(resolved) > 20
    assert set(resolved.values()) == {LayerPrecision(4, 8)}


def test_first_last_and_rules_in_order(tmp_path, unet):
    (tmp_path / "p.yaml").write_text(
        "default: {weight_bits: 4, act_bits: 8}\n"
        "first: {weight_bits: 8}\n"
        "last: {weight_bits: 8, act_bits: 6}\n"
        "rules:\n"
        "  - {match: 'mid.*', weight_bits: 6}\n"
        "  - {match: 'mid.blocks.0.conv1', weight_bits: 3, weight_granularity: per_channel}\n"
    )
    resolved = resolve_for_net(load_plan(tmp_path / "p.yaml"), unet)
    assert resolved["conv_in"] == LayerPrecision(8, 8)
    assert resolved["conv_out"] == LayerPrecision(8, 6)
    assert resolved["mid.blocks.0.conv2"] == LayerPrecision(6, 8)
    assert resolved["mid.blocks.0.conv1"] == LayerPrecision(3, 8, "per_channel")
    assert resolved["down.0.blocks.0.conv1"] == LayerPrecision(4, 8)


def test_dit_first_last():
    resolved = resolve_for_net(PrecisionPlan(first=Rule(weight_bits=8)), build_net("dit", {}))
    assert resolved["patchify"].weight_bits == 8 and "head" in resolved


@pytest.mark.parametrize("bits", [0, 1, 17, 33, 4.5, True])
def test_invalid_bit_widths(tmp_path, bits):
    (tmp_path / "p.yaml").write_text(f"default: {{weight_bits: {str(bits).lower()}}}\n")
    with pytest.raises(PlanError, match=r"p.yaml: weight_bits must be an integer in 2..16"):
        load_plan(tmp_path / "p.yaml")


def test_invalid_bits_in_a_rule_name_the_problem(unet):
    with pytest.raises(PlanError, match=r"rules\[0\] \('conv_in'\): act_bits must be an integer in 2..16, got 0"):
        resolve_for_net(PrecisionPlan(rules=(Rule(match="conv_in", act_bits=0),)), unet)


def test_pattern_matching_nothing_is_an_error(unet):
    with pytest.raises(PlanError, match=r"rules\[0\] pattern 'middle.\*' matches no layer"):
        resolve_for_net(PrecisionPlan(rules=(Rule(match="middle.*", weight_bits=8),)), unet)


def test_unknown_keys_and_values(tmp_path):
    (tmp_path / "a.yaml").write_text("default: {weight_bit: 4}\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['weight_bit'\]"):
        load_plan(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("default: {scale: log}\n")
    with pytest.raises(PlanError, match="scale must be one of"):
        load_plan(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("rules: [{weight_bits: 4}]\n")
    with pytest.raises(PlanError, match="no 'match' pattern"):
        resolve_for_net(load_plan(tmp_path / "c.yaml"), build_net("unet", {}))
