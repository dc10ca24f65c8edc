"""Stitched blocks generated from the mapped tiny U-Net and DiT, bit-exact with the integer simulator
under random back-pressure: a U-Net residual block (GroupNorm, SiLU table, padded 3x3 convolutions,
per-timestep bias, requantization, skip add) and a whole DiT block (adaLN, attention, MLP).
experiments/rtl_stitched.py runs 20 inputs on the shipped models."""

import json

import pytest
from typer.testing import CliRunner

from hwsim.cli import app

from hwsim.dataflow.mapping import map_integer_graph
from hwsim.rtlgen.stitch import READY_RUN, StitchError, _slices, binary_forks, block_nodes, generate, verify
from hwsim.dataflow.schedule import schedule
from tests.rtl import STITCHED_SIMS

TIMESTEPS = list(range(0, 1000, 100))


@pytest.mark.parametrize("which", ["unet_graph", "unet_zero_point_graph"])
def test_residual_block_bit_exact(which, request, tmp_path):
    """Also with zero points: the convolutions then read asymmetric INT9 streams (docs/numerics.md, section 7)."""
    graph = map_integer_graph(request.getfixturevalue(which), steps=len(TIMESTEPS))
    names = block_nodes(graph, "mid.blocks.0")
    types = {graph.node(n).op_type for n in names}
    assert {"GroupNorm", "LutActivation", "MVAU", "TimestepTable", "ElementwiseAdd", "Requant"} <= types
    report = verify(graph, names, tmp_path, TIMESTEPS, samples=4, lanes=4)
    assert report["bit_exact"] and report["words"]["out0"] > 0


def test_ready_runs_are_cut_by_register_slices(dit_graph, tmp_path):
    """No run of more than READY_RUN blocks passes a ready in one cycle (a FIFO or a slice cuts it),
    on a whole DiT (forks, attention, residuals), and every cut edge gets its slice in the Verilog."""
    graph = map_integer_graph(dit_graph, steps=len(TIMESTEPS))
    names = [n.name for n in graph.nodes if not n.op_type.startswith("Host")]
    design = generate(graph, names, tmp_path, TIMESTEPS)
    g = binary_forks(graph, names)
    nodes = [n for n in graph.nodes if n.name in set(g)]
    produced = {o: n for n in nodes for o in n.outputs}
    fifos = {(f.stream, f.consumer): f.depth for f in schedule(graph).fifos}
    cut = _slices(graph, nodes, produced, fifos)
    assert cut and design.top.read_text().count(".DEPTH(2), .OUTREG(0), .INREG(0))") == len(cut)

    def run(name):  # the longest chain of blocks from ``name`` down through edges neither cut nor FIFO'd
        node = next(n for n in nodes if n.name == name)
        below = [run(c.name) for c in nodes for i in c.inputs for o in node.outputs
                 if graph.stream(i) == o and (o, c.name) not in cut and not fifos.get((o, c.name))]
        return 1 + max(below, default=0)

    assert max(run(n.name) for n in nodes) == READY_RUN


def test_dit_block_bit_exact(dit_graph, tmp_path):
    """A whole DiT block: adaLN, qkv projection, three-way q/k/v split, QK^T on the dynamic MVAU (q
    held in the FIFO the schedule sizes while k is taken), integer softmax, AV, output projection,
    the per-timestep gate, the residual add, adaLN again and the GELU MLP with its gate."""
    graph = map_integer_graph(dit_graph, steps=len(TIMESTEPS))
    names = block_nodes(graph, "blocks.0.")
    types = [graph.node(n).op_type for n in names]
    assert {"AdaLayerNorm", "StreamingSplit", "IntSoftmax", "ElementwiseMul", "LutActivation"} <= set(types)
    assert sum(graph.node(n).attrs.get("mem_mode") == "dynamic" for n in names) == 2
    report = verify(graph, names, tmp_path, TIMESTEPS, samples=3, lanes=2)
    assert report["bit_exact"] and report["words"]["out0"] > 0
    assert set(report["activity"]) and all(0 <= a <= 1 for a in report["activity"].values())


def test_group_shifted_dit_block_bit_exact(dit_group_graph, tmp_path):
    """A DiT block at W4A8 with group-wise weights: its projections and MLP store 4-bit integers and a
    shift per group of 8 inputs (rtl/mvau WGROUP) and still compute the integer graph's wider weights."""
    graph = map_integer_graph(dit_group_graph, steps=len(TIMESTEPS))
    names = block_nodes(graph, "blocks.0.")
    grouped = [n for n in names if graph.node(n).op_type == "MVAU" and graph.node(n).group_shift()]
    assert len(grouped) == 4  # qkv, proj, fc1, fc2
    report = verify(graph, names, tmp_path, TIMESTEPS, samples=3, lanes=4)
    assert report["bit_exact"] and report["words"]["out0"] > 0
    top = "".join(p.read_text() for p in tmp_path.glob("*.v"))
    assert top.count(".WGROUP(8)") == len(grouped)


def test_patch_embedding_with_constant_position_embedding(dit_graph, tmp_path):
    """The DiT's front: patchify (a strided 2x2 convolution) plus the constant position embedding (a ROM)."""
    graph = map_integer_graph(dit_graph, steps=len(TIMESTEPS))
    names = [n.name for n in graph.nodes if n.name.startswith(("patchify:IntConv", "add_const"))]
    assert "ElementwiseAdd" in {graph.node(n).op_type for n in names}
    assert verify(graph, names, tmp_path, TIMESTEPS, samples=3, lanes=1)["bit_exact"]


@pytest.mark.parametrize("sim", STITCHED_SIMS)
def test_whole_dit_bit_exact(dit_graph, tmp_path, sim):
    """The whole tiny DiT, every node but the host's: patchify, position embedding, two DiT blocks,
    final adaLN, head and the unpatchify reorder, through the Verilog-only bench under random
    back-pressure (Verilator by default: it builds and runs this faster than Icarus runs it)."""
    graph = map_integer_graph(dit_graph, steps=len(TIMESTEPS))
    names = [n.name for n in graph.nodes if not n.op_type.startswith("Host")]
    assert "StreamReorder" in {graph.node(n).op_type for n in names}
    report = verify(graph, names, tmp_path, TIMESTEPS, samples=2, lanes=1, bench="file", sim=sim)
    assert report["bit_exact"] and report["words"]["out0"] == 2 * 64


def test_unbuilt_node_types_are_refused(unet_graph, tmp_path):
    graph = map_integer_graph(unet_graph, steps=len(TIMESTEPS))
    host = [n.name for n in graph.nodes if n.op_type == "HostInput"]  # the sampler's side
    with pytest.raises(StitchError, match="no RTL"):
        generate(graph, host, tmp_path, TIMESTEPS)
    with pytest.raises(StitchError, match="no dataflow node"):
        block_nodes(graph, "nowhere")


def test_rtl_command(unet_graph, tmp_path):
    """The command's checks (the cocotb bench is verify's default, tested on blocks above; here the file
    bench without back-pressure, which measures latency and II) and its errors."""
    runner = CliRunner()
    timed = runner.invoke(app, ["rtl", str(unet_graph), "--block", "mid.blocks.0", "--lanes", "4", "--steps", "10",
                                "--out", str(tmp_path / "t"), "--verify", "--samples", "3", "--bench", "file",
                                "--no-backpressure"])
    assert timed.exit_code == 0, timed.output
    report = json.loads((tmp_path / "t" / "verify.json").read_text())
    ends = report["evaluation_ends"]
    assert "bit-exact" in timed.output and report["bit_exact"] and 0 < ends[0] < ends[1] < ends[2] < report["cycles"]
    assert report["measured"] == {"latency": ends[0], "ii_sustained": round((ends[2] - ends[0]) / 2)}
    assert f"measured latency {ends[0]:,} cycles, ii_sustained" in timed.output and "modelled" not in timed.output
    bad = runner.invoke(app, ["rtl", str(unet_graph), "--block", "nowhere", "--out", str(tmp_path / "w")])
    assert bad.exit_code == 2 and "no dataflow node is named 'nowhere'" in bad.output
    bad = runner.invoke(app, ["rtl", str(unet_graph), "--block", "mid.blocks.0", "--lanes", "3", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "must divide" in bad.output
    whole = runner.invoke(app, ["rtl", str(unet_graph), "--block", "all", "--steps", "10", "--out", str(tmp_path / "all")])
    assert whole.exit_code == 0, whole.output
    manifest = json.loads((tmp_path / "all" / "design.json").read_text())
    assert manifest["macs"] == manifest["graph_macs"] and manifest["top_file"] in whole.output
    bad = runner.invoke(app, ["rtl", str(unet_graph), "--block", "mid.blocks.0", "--out", str(tmp_path / "y"), "--verify",
                              "--bench", "vcs"])
    assert bad.exit_code == 2 and "unknown bench 'vcs'" in bad.output
