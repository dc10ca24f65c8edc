"""Activation scales per timestep group (TDQ-style): calibration, the grouped hardware-exact net,
its integer graphs (bit-exact, one per group), and what the cost model and RTL make of them."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from hwsim.dataflow.mapping import map_integer_graph
from hwsim.export.finn_handoff import HandoffError, to_finn
from hwsim.export.intgraph import group_files
from hwsim.export.pipeline import export_model
from hwsim.intsim.executor import GraphError, Simulator
from hwsim.modeldir import ModelDirError, load_model
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.diagnose import fixed_inputs, output_mse
from hwsim.quant.plan import PlanError, PrecisionPlan
from hwsim.quant.qmodel import RANGES_FILE, load_quantized, quantize_dir, save_quantized
from hwsim.quant.timestep_groups import TimestepGroupedNet, group_bounds, group_of, split_inputs
from hwsim.rtlgen.stitch import generate
from hwsim.sweep.experiment import load_experiment
from safetensors.torch import load_file, save_file

MODELS = Path(__file__).resolve().parents[2] / "models"


def grouped(w: int, a: int, groups: int) -> PrecisionPlan:
    return dataclasses.replace(PrecisionPlan.uniform(w, a, weight_granularity="per_channel"), timestep_groups=groups)


def test_timesteps_fall_into_equal_groups():
    assert group_of([0, 249, 250, 999], 4, 1000).tolist() == [0, 0, 1, 3]
    assert group_bounds(4, 1000) == [(0, 249), (250, 499), (500, 749), (750, 999)]
    assert group_bounds(3, 10) == [(0, 3), (4, 6), (7, 9)]
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 1000\), got 0..1000"):
        group_of([0, 1000], 4, 1000)


def test_bad_group_counts_and_empty_groups_fail_clearly():
    for bad in (0, 65, True, 2.0):
        with pytest.raises(PlanError, match="timestep_groups must be an integer in 1..64"):
            dataclasses.replace(PrecisionPlan(), timestep_groups=bad)
    inputs = [(torch.zeros(2, 1, 8, 8), torch.tensor([999, 990])), (torch.zeros(2, 1, 8, 8), torch.tensor([10, 400]))]
    parts = split_inputs(inputs, 2, 1000)
    assert [[t.tolist() for _, t in p] for p in parts] == [[[10, 400]], [[999, 990]]]
    with pytest.raises(ValueError, match=r"timestep group 2 \(t 500..749\) has no calibration input"):
        split_inputs(inputs, 4, 1000)


def test_groups_beat_one_range_where_activations_limit():
    """W8A6 on unet-digits: four groups' ranges give lower output MSE than one (TDQ's claim)."""
    model = load_model(MODELS / "unet-digits")
    inputs = fixed_inputs(model, samples=8)
    calib = CalibrationConfig(samples=8, steps=50)
    one = output_mse(quantize_dir(model.path, grouped(8, 6, 1), calib).net(), model.net, inputs)
    q = quantize_dir(model.path, grouped(8, 6, 4), calib)
    four = output_mse(q.net(), model.net, inputs)
    assert isinstance(q.net(), TimestepGroupedNet) and four < 0.85 * one
    # the groups' ranges differ where the trajectory's activations drift
    assert len({round(r["conv_in"]["in0"], 6) for r in q.group_ranges}) > 1


@pytest.fixture(scope="module")
def grouped_dir(tiny_model_dir, tmp_path_factory):
    q = quantize_dir(tiny_model_dir, grouped(8, 8, 4), CalibrationConfig(samples=4, steps=8))
    out = save_quantized(q, tmp_path_factory.mktemp("tdq") / "q")
    export_model(out, None, out, check_samples=2, check_steps=8)  # raises unless bit-exact at every step
    return out


def test_grouped_model_round_trips_and_its_graphs_are_bit_exact(grouped_dir):
    loaded = load_quantized(grouped_dir)
    assert len(loaded.group_ranges) == 4
    files = group_files(grouped_dir / "integer.onnx")
    assert [f.name for f in files] == ["integer.onnx", "integer.g1.onnx", "integer.g2.onnx", "integer.g3.onnx"]
    sim, qnet = Simulator(grouped_dir / "integer.onnx"), loaded.net()
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8))
    t = np.array([0, 300, 600, 999])  # one sample per group, in one batch
    with torch.no_grad():
        expect = qnet(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    assert np.array_equal(sim.run(x, t), expect)
    with pytest.raises(GraphError, match=r"run_integers needs samples of one timestep group.*groups \[0, 1, 2, 3\]"):
        sim.run_integers(x, t)
    sim.enable_stats()
    sim.run(x, t)
    stats = sim.stats()
    values = {name: s["values"] for name, s in stats.items()}
    # every node counted over all four groups: the first conv's input is 4 samples x 64 pixels
    assert values[next(n for n in values if "QuantInput" in n)] == 4 * 64


def test_missing_group_ranges_name_the_file(grouped_dir, tmp_path):
    import shutil

    bad = Path(shutil.copytree(grouped_dir, tmp_path / "bad"))
    tensors = {k: v for k, v in load_file(str(bad / RANGES_FILE)).items() if not k.startswith("g3|")}
    save_file(tensors, str(bad / RANGES_FILE))
    with pytest.raises(ModelDirError, match="calibration.safetensors: the plan has 4 timestep groups"):
        load_quantized(bad)


def test_groups_are_priced_as_tables_and_built_as_tables(grouped_dir, tiny_model_dir, tmp_path):
    one = quantize_dir(tiny_model_dir, grouped(8, 8, 1), CalibrationConfig(samples=4, steps=8))
    flat = export_model(save_quantized(one, tmp_path / "one"), None, tmp_path / "one", check_samples=1, check_steps=2)
    g4, g1 = map_integer_graph(grouped_dir / "integer.onnx", 8), map_integer_graph(flat, 8)
    assert {n.groups() for n in g4.nodes} == {4} and {n.groups() for n in g1.nodes} == {1}
    mvau = next(n for n in g4.nodes if n.op_type == "MVAU" and n.attrs.get("biasBits"))
    weights_only = dataclasses.replace(mvau, attrs={**mvau.attrs, "timestepGroups": 1})
    assert mvau.weight_bits() - weights_only.weight_bits() == 3 * mvau.attrs["biasBits"] * mvau.attrs["MH"]
    assert sum(n.weight_bits() for n in g4.nodes) > sum(n.weight_bits() for n in g1.nodes)
    # the RTL holds the same tables: one bias per group and channel (tests/rtl/test_grouped_rtl.py runs them)
    design = generate(g4, [mvau.name], tmp_path / "rtl", [0])
    assert [p.name for p in design.groups] == ["g"]
    bias = next(tmp_path.glob("rtl/*_bias.mem")).read_text().split()
    assert len(bias) == 4 * mvau.attrs["MH"]
    with pytest.raises(HandoffError, match="per timestep group.*no FINN equivalent"):
        to_finn(g4, tmp_path / "finn")


def test_sweeps_name_groups_in_the_precision(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("models: [unet-digits]\nmethods: [naive]\nprecisions: [W8A6, W8A6T4]\nsamples: 8\n")
    plans = [p.config["plan"] for p in load_experiment(path).points]
    assert "timestep_groups" not in plans[0] and plans[1]["timestep_groups"] == 4  # W8A6 keeps its old key
