"""Per-timestep-group tables in the RTL (TDQ-style activation scales): stitched blocks of tiny U-Net
and DiT graphs quantized with four timestep groups, bit-exact with the integer simulator while the
group changes from one evaluation to the next (the host sends it on the design's ``g`` port)."""

import dataclasses

import pytest
import torch

from hwsim.dataflow.mapping import map_integer_graph
from hwsim.export.pipeline import export_model
from hwsim.modeldir import ModelSpec, save_model
from hwsim.nets import build_net
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.qmodel import quantize_dir, save_quantized
from hwsim.rtlgen.stitch import block_nodes, generate, varying_nodes, verify
from tests.conftest import TINY_DIT, TINY_UNET
from tests.rtl import STITCHED_SIMS

TIMESTEPS = [0, 300, 600, 900]  # one sampler step in each of the four groups


def _grouped_graph(kind: str, config: dict, root, groups: int = 4):
    """A tiny net quantized W8A6 with four timestep groups (A6: the groups' power-of-two scales differ)."""
    torch.manual_seed(0)
    net = build_net(kind, {"in_channels": 1, **config})
    if kind == "dit":  # adaLN-Zero starts at zero: randomize so every path carries signal
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.2)
    model = save_model(ModelSpec(kind, "digits", (1, 8, 8), dict(net.config.__dict__)), net, root / "model")
    plan = dataclasses.replace(PrecisionPlan.uniform(8, 6, weight_granularity="per_channel"), timestep_groups=groups)
    q = save_quantized(quantize_dir(model, plan, CalibrationConfig(samples=4, steps=8)), root / "q")
    return map_integer_graph(export_model(q, None, q, check_samples=1, check_steps=4), steps=len(TIMESTEPS))


@pytest.fixture(scope="module")
def grouped_unet(tmp_path_factory):
    return _grouped_graph("unet", TINY_UNET, tmp_path_factory.mktemp("gunet"))


@pytest.fixture(scope="module")
def grouped_dit(tmp_path_factory):
    return _grouped_graph("dit", TINY_DIT, tmp_path_factory.mktemp("gdit"))


def _varying_types(graph, names):
    return {graph.node(n).op_type for n in varying_nodes(graph, names)}


@pytest.mark.parametrize("sim", STITCHED_SIMS)
def test_unet_tail_with_per_group_tables_bit_exact(grouped_unet, tmp_path, sim):
    """The U-Net from its last attention to the output: requantizers, QK^T's shift, softmax's table,
    GroupNorm's gamma, the SiLU table and the output convolution's bias differ between groups."""
    start = next(k for k, n in enumerate(grouped_unet.nodes) if n.name.startswith("up.0.attns.0"))
    names = [n.name for n in grouped_unet.nodes[start:] if not n.op_type.startswith("Host")]
    assert {"GroupNorm", "LutActivation", "MVAU", "IntSoftmax"} <= _varying_types(grouped_unet, names)
    report = verify(grouped_unet, names, tmp_path, TIMESTEPS, samples=3, lanes=1, bench="file", seed=4, sim=sim)
    assert len(set(report["groups"])) == 3  # the group changes between evaluations
    assert report["bit_exact"] and report["words"]["out0"] > 0
    top = (tmp_path / "stitched.v").read_text()
    assert "group_fanout" in top and "STEP_GROUPS(4)" in top and ".GROUPS(4)" in top


@pytest.mark.parametrize("sim", STITCHED_SIMS)
def test_dit_block_with_per_group_output_exponents_bit_exact(grouped_dit, tmp_path, sim):
    """A DiT block: adaLN's output exponent, the linear layers' biases and requantizers per group."""
    names = block_nodes(grouped_dit, "blocks.1.")
    assert {"AdaLayerNorm", "MVAU"} <= _varying_types(grouped_dit, names)
    report = verify(grouped_dit, names, tmp_path, TIMESTEPS, samples=3, lanes=2, bench="file", seed=4, sim=sim)
    assert len(set(report["groups"])) == 3
    assert report["bit_exact"] and report["words"]["out0"] > 0


def test_group_selection_costs_no_cycle_per_evaluation(grouped_dit, tmp_path):
    """The same DiT block with one group and with four, four evaluations back to back without
    back-pressure: the group index costs start-up latency (the fan-out's queue, the hold's register,
    the register slices of longer ready runs), never a cycle per evaluation."""
    flat = _grouped_graph("dit", TINY_DIT, tmp_path / "flat", groups=1)
    ends = {name: verify(g, block_nodes(g, "blocks.1."), tmp_path / name, TIMESTEPS, samples=4, lanes=2, bench="file",
                         seed=4, backpressure=False, sim=STITCHED_SIMS[0])["evaluation_ends"]
            for name, g in (("flat", flat), ("grouped", grouped_dit))}
    per_two = {name: e[3] - e[1] for name, e in ends.items()}
    assert per_two["grouped"] == per_two["flat"] > 0
    assert 0 <= ends["grouped"][1] - ends["flat"][1] <= 6
    assert all(a < b for a, b in zip(ends["grouped"], ends["grouped"][1:]))


def test_ungrouped_designs_have_no_group_port(unet_graph, tmp_path):
    graph = map_integer_graph(unet_graph, steps=len(TIMESTEPS))
    design = generate(graph, block_nodes(graph, "mid.blocks.0"), tmp_path, TIMESTEPS)
    assert design.groups == [] and "group_fanout" not in design.top.read_text()
    assert varying_nodes(graph) == []
