"""Schedule, FIFO sizing and deadlocks on a hand-built residual; energy anchors; folding; the CLI."""

import json

import pytest
from typer.testing import CliRunner

from hwsim.cli import app
from hwsim.dataflow.cost import CostConfig, _offchip_weights
from hwsim.dataflow.energy import AsicModel, FpgaModel, load_tech
from hwsim.dataflow.folding import design_fits, fold_to_cycles, fold_to_device
from hwsim.dataflow.graph import DataflowGraph
from hwsim.dataflow.mapping import map_integer_graph
from hwsim.dataflow.nodes import make_node
from hwsim.dataflow.resources import Resources, estimate, load_device, total
from hwsim.dataflow.schedule import Fifo, deadlocks, schedule, sustained_ii

runner = CliRunner()
MAP = ([4, 4], 4, "INT8")  # a 4x4 map of 4 channels: 64 elements


def _residual() -> DataflowGraph:
    """x -> fork -> GroupNorm -> add(., skip) -> out: the skip must wait for GroupNorm's whole map."""
    g = DataflowGraph(steps=10)
    common = dict(NumChannels=4, numInputVectors=[4, 4], PE=1)
    g.add(make_node("HostInput", "in", dict(common, outputDataType="INT8"), outputs=["x"]))
    g.add(make_node("DuplicateStreams", "fork", dict(common, NumOutputStreams=2, inputDataType="INT8"), inputs=["x"],
                    outputs=["x0", "x1"]))
    g.add(make_node("GroupNorm", "gn", dict(common, groups=2, ft=12, inputDataType="INT8", outputDataType="INT8",
                                            gammaBits=16, betaBits=26), inputs=["x0"], outputs=["n"]))
    g.add(make_node("ElementwiseAdd", "add", dict(PE=1, lhs_shape=[1, 4, 4, 4], rhs_shape=[1, 4, 4, 4],
                                                 out_shape=[1, 4, 4, 4], lhs_dtype="INT8", rhs_dtype="INT8",
                                                 out_dtype="INT9"), inputs=["n", "x1"], outputs=["y"]))
    g.add(make_node("HostOutput", "out", dict(common, inputDataType="INT9"), inputs=["y"]))
    g.streams = {s: MAP for s in ("x", "x0", "x1", "n")} | {"y": ([4, 4], 4, "INT9")}
    g.check()
    return g


def test_residual_schedule_and_skip_fifo():
    sched = schedule(_residual())
    # GroupNorm's first output comes after the whole map (64), two groups' square roots (103 each, + 4)
    # and its EMIT pipeline (7 stages after the buffer read, hwsim_types.EMIT_STAGES - 1)
    assert sched.first["n"] - sched.first["x0"] == 64 + 2 * 103 + 4 + 7
    # so the skip branch must hold the whole map; GroupNorm's own input (x0) needs no FIFO
    fifos = {f.stream: f for f in sched.fifos}
    assert set(fifos) == {"x1"} and fifos["x1"].depth == 64 and fifos["x1"].bits == 64 * 8
    assert sched.ii == 128 + 2 * 103 + 4 and sched.bottleneck == "gn"  # single-buffered: two passes and the solve
    assert deadlocks(sched, 63) == [fifos["x1"]] and deadlocks(sched, 64) == []


def test_asic_energy_reproduces_horowitz_table():
    asic = AsicModel(load_tech("asic45nm"))
    assert asic.mult(8, 8) == pytest.approx(0.2) and asic.mult(32, 32) == pytest.approx(3.1, rel=0.04)
    assert asic.add(8) == pytest.approx(0.03) and asic.add(32) == pytest.approx(0.1)
    for size, pj in load_tech("asic45nm")["sram_read_64b_pj"].items():
        assert asic.memory(64, size * 8) == pytest.approx(pj, rel=0.15)


def test_every_tech_constant_has_a_source():
    for name in ("asic45nm", "ecp5", "xc7"):
        tech = load_tech(name)
        sources = tech["sources"] | tech.get("activity_sources", {})
        assert set(tech) - {"sources", "activity_sources"} <= set(sources), name


def test_fpga_static_energy():
    fpga = FpgaModel(load_tech("ecp5"), load_device("ecp5-85f"), clock_mhz=100)
    # 100 mW for 1e6 cycles at 100 MHz = 10 ms: 1 mJ
    assert fpga.static_pj(1e6) == pytest.approx(load_tech("ecp5")["static_power_mw"] / 100 * 1e9)


def test_folding_meets_targets_and_the_device(unet_graph):
    graph = map_integer_graph(unet_graph, steps=10)
    for target in (5000, 600):
        result = fold_to_cycles(graph, target)
        assert result.missed == [] and max(n.get_exp_cycles() for n in graph.nodes) <= target
        # a sliding window streams into its MVAU: one width
        for n in graph.nodes:
            if n.op_type == "ConvolutionInputGenerator_rtl":
                mvau = next(m for m in graph.nodes if m.inputs and graph.stream(m.inputs[0]) == n.outputs[0])
                assert n.attrs["SIMD"] == mvau.attrs["SIMD"]
    # the first conv reads one channel: its SIMD is 1, so 8x8 pixels x 9 taps is as fast as it gets
    result = fold_to_cycles(graph, 500)
    assert "conv_in:IntConv:4" in result.missed and graph.node("conv_in:IntConv:4").get_exp_cycles() == 64 * 9
    device = load_device("ecp5-85f")
    result = fold_to_device(graph, device)
    # the calibrated ECP5 model: the fastest folding that fits (to within 2%), FIFOs included; 3% faster
    # does not.
    assert max(n.get_exp_cycles() for n in graph.nodes) <= result.target_cycles and design_fits(graph, device)
    by_type = {t: sum(estimate(n, device).lut for n in graph.nodes if n.op_type == t) for t in {n.op_type for n in graph.nodes}}
    assert set(sorted(by_type, key=by_type.get)[-2:]) == {"MVAU", "GroupNorm"}  # the convolutions and the norms
    fold_to_cycles(graph, int(result.target_cycles / 1.03))
    assert not design_fits(graph, device)


def test_cost_and_map_commands(unet_graph, tmp_path):
    result = runner.invoke(app, ["cost", str(unet_graph), "--json", str(tmp_path / "c.json"), "--steps", "10"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "c.json").read_text())
    for key in ("cycles_per_step", "cycles_per_image", "energy_per_image_uj", "onchip_bits", "fits", "resources",
                "nodes", "provenance", "config"):
        assert key in report
    assert report["cycles_per_image"] > 10 * report["cycles_per_step"]["latency"] - 1
    assert (tmp_path / "c.png").is_file()
    mvaus = [n for n in report["nodes"] if n["sparsity"]]
    assert mvaus and all(0 < n["sparsity"]["break_even_density"]["storage"] < 1 for n in mvaus)
    result = runner.invoke(app, ["map", str(unet_graph), "--out", str(tmp_path / "df.onnx"), "--steps", "10"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, ["cost", str(tmp_path / "df.onnx"), "--json", str(tmp_path / "d.json"), "--steps", "10"])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "d.json").read_text())["macs_per_step"] == report["macs_per_step"]


def test_cost_command_errors(unet_graph, tmp_path):
    bad = runner.invoke(app, ["cost", str(unet_graph), "--json", str(tmp_path / "c.json"), "--device", "ice9"])
    assert bad.exit_code == 2 and "unknown device 'ice9'" in bad.output
    bad = runner.invoke(app, ["cost", str(unet_graph), "--json", str(tmp_path / "c.json"), "--target", "fast"])
    assert bad.exit_code == 2 and "target 'fast'" in bad.output
    stuck = runner.invoke(app, ["cost", str(unet_graph), "--json", str(tmp_path / "c.json"), "--max-fifo-depth", "4"])
    assert stuck.exit_code == 2 and "deadlock" in stuck.output and "->" in stuck.output


def test_offchip_weight_streaming(unet_graph):
    graph = map_integer_graph(unet_graph, steps=10)
    fold_to_cycles(graph, 2000)
    device = load_device("ecp5-85f")
    on_chip = total(graph.nodes, device)
    fpga = FpgaModel(load_tech("ecp5"), device, 100)
    result = _offchip_weights(graph, device, AsicModel(load_tech("asic45nm")), fpga, Resources(), schedule(graph).latency,
                              CostConfig())
    mvaus = [n for n in graph.nodes if n.op_type == "MVAU" and n.attrs.get("mem_mode") != "dynamic"]
    # every weight word is fetched once per cycle of its MVAU
    expect = sum(n.get_exp_cycles() * n.attrs["PE"] * n.attrs["SIMD"] * n.dt("weightDataType") for n in mvaus)
    assert result["dram_bits_per_step"] == expect
    assert result["resources"]["bram"] + result["resources"]["lut"] < on_chip.bram + on_chip.lut
    assert result["extra_energy_per_image_uj"]["asic45nm"] > 0
    assert all(n.attrs["mem_mode"] == "internal_decoupled" for n in mvaus)  # the graph is left as it was


def test_rtl_activity_drives_the_fpga_energy(unet_graph, tmp_path):
    """Toggle rates measured on the stitched RTL (verify.json's ``activity``) replace the default."""
    from hwsim.dataflow.cost import cost_report, load_activity

    name = next(n.name for n in map_integer_graph(unet_graph, steps=10).nodes if n.op_type == "MVAU")
    (tmp_path / "verify.json").write_text(json.dumps({"activity": {name: 0.5, "elsewhere": 0.1}}))
    graph = map_integer_graph(unet_graph, steps=10)
    activity = load_activity(graph, tmp_path / "verify.json")
    assert activity == {name: 0.5}
    busy = {n["name"]: n for n in cost_report(graph, CostConfig(), activity)["nodes"]}[name]
    quiet = {n["name"]: n for n in cost_report(map_integer_graph(unet_graph, steps=10), CostConfig(),
                                               {name: 0.05})["nodes"]}[name]
    assert busy["activity"] == 0.5 and busy["energy_pj"]["fpga"] > quiet["energy_pj"]["fpga"]
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="neither simulator statistics"):
        load_activity(graph, tmp_path / "other.json")


def test_sustained_ii_of_a_skip_fifo_sized_for_one_evaluation():
    """100 elements made in cycles 0-100, read in 1000-1100: with room for one evaluation the next may
    enter only when the reader has drained this one (period 1000); with room for ten it keeps the
    node II (100: a steady lag of 1,000 cycles at one element per cycle)."""
    one = Fifo("s", "fork", "join", 100, 800, (0.0, 100.0, 1000.0, 1100.0), 100)
    assert sustained_ii(100, [one]) == 1000
    ten = Fifo("s", "fork", "join", 1000, 8000, (0.0, 100.0, 1000.0, 1100.0), 100)
    assert sustained_ii(100, [ten]) == 100
    assert sustained_ii(100, []) == 100


def test_attention_operand_serializes_back_to_back_evaluations(dit_graph):
    """rtl/mvau holds one dynamic operand: taking k^T and computing QK^T cannot overlap the next
    evaluation's k^T, so the sustained II covers both (measured on the whole DiT's RTL)."""
    graph = map_integer_graph(dit_graph, steps=10)
    sched = schedule(graph)
    assert sched.single_buffered > sched.ii
    assert sched.ii_sustained >= sched.single_buffered
