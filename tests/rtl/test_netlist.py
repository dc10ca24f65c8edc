"""Post-synthesis check (issue 7): blocks and a stitched U-Net residual block synthesized by Yosys for
the ECP5 and simulated as netlists of ECP5 cells, through the same benches, bit-exact with hwsim's
references (the RTL's own tests check the RTL; these check what place and route gets)."""

import pytest

from hwsim.dataflow.mapping import map_integer_graph
from hwsim.rtlgen import benches
from hwsim.rtlgen.benches import MvauConfig
from hwsim.rtlgen.netlist import mult18_model
from hwsim.rtlgen.stitch import block_nodes, verify
from tests.rtl.test_stitched import TIMESTEPS

NETLIST = "ecp5-netlist"


@pytest.mark.parametrize("case", [
    lambda d: benches.bench_mvau(MvauConfig(8, 4, 2, 4), d, NETLIST, seed=1),  # products on MULT18X18D
    lambda d: benches.bench_mvau(MvauConfig(12, 6, 3, 2, WBITS=8, LUT_MULT=True), d, NETLIST, seed=1),
    lambda d: benches.bench_mvau(MvauConfig(64, 32, 2, 2, WBITS=8, NIV=2), d, NETLIST, seed=2),  # block-RAM weights
    lambda d: benches.bench_mvau(MvauConfig(64, 64, 1, 1, WBITS=8, NIV=1, WBANK=2048), d, NETLIST, seed=2),  # 2 banks
    lambda d: benches.bench_requant(8, 2, 5, d, sim=NETLIST, seed=3),
    lambda d: benches.bench_requant(8, 2, 5, d, sim=NETLIST, seed=3, shift=5),  # SHIFT_CONST
    lambda d: benches.bench_thresholding(8, 2, 5, d, sim=NETLIST, seed=3),
    lambda d: benches.bench_fifo(36, 512, 1200, d, sim=NETLIST, seed=3),  # block RAM, 36-bit pseudo dual port
    lambda d: benches.bench_fifo(16, 1024, 2500, d, sim=NETLIST, seed=3),  # 18-bit dual port, read before write
    lambda d: benches.bench_fifo(9, 2048, 3000, d, sim=NETLIST, seed=3),
    lambda d: benches.bench_fifo(21, 3000, 4000, d, sim=NETLIST, seed=3, outreg=1),  # a cascade, registered output
    lambda d: benches.bench_fifo(40, 1500, 2000, d, sim=NETLIST, seed=3, outreg=1, inreg=1),  # as stitched edges are
    lambda d: benches.bench_dwc(2, 3, 12, d, sim=NETLIST, seed=3),  # synthesized with a latch before its fix
    # narrowed registers, the solver's shift k > 0, t's rounding visible at the output
    lambda d: benches.bench_groupnorm(16, 2, 4, 8, 8, d, NETLIST, backpressure=False, extreme=True, visible_t=True),
    lambda d: benches.bench_groupnorm(16, 4, 1, 16, 16, d, NETLIST, seed=1, bank=2048),  # two block-RAM banks
], ids=["mvau-mult18", "mvau-lut", "mvau-bram", "mvau-banked", "requant", "requant-const", "thresholding", "fifo-bram36", "fifo-bram18", "fifo-bram9", "fifo-cascade-outreg", "fifo-cascade-inreg", "dwc",
        "groupnorm", "groupnorm-banked"])
def test_block_netlist_bit_exact(case, tmp_path):
    report = case(tmp_path)
    assert report["sim"] == NETLIST and report["bit_exact"]
    assert (tmp_path / "netlist.v").is_file()


def test_netlist_uses_the_cells_it_claims(tmp_path):
    """The block-RAM case really maps its weights to DP16KD and the MULT18 case to MULT18X18D."""
    benches.bench_mvau(MvauConfig(64, 32, 2, 2, WBITS=8, NIV=2), tmp_path / "bram", NETLIST, seed=2)
    benches.bench_mvau(MvauConfig(8, 4, 2, 4), tmp_path / "mult", NETLIST, seed=1)
    assert " DP16KD " in (tmp_path / "bram" / "netlist.v").read_text()
    assert " MULT18X18D " in (tmp_path / "mult" / "netlist.v").read_text()


def test_mult18_model_has_the_black_box_ports(tmp_path):
    text = mult18_model(tmp_path / "m.v").read_text()
    assert all(f"P{i}" in text for i in range(36)) and "SIGNEDA" in text and "assign" in text


@pytest.mark.slow
def test_line_buffer_netlist_bit_exact(tmp_path):
    """A sliding-window generator whose line buffer Yosys puts in block RAM (9-bit true dual port)."""
    report = benches.bench_swg(16, 16, 64, 2, (3, 3), (1, 1), tmp_path, sim=NETLIST, seed=3)
    assert report["bit_exact"] and " DP16KD " in (tmp_path / "netlist.v").read_text()


@pytest.mark.slow
def test_residual_block_netlist_bit_exact(unet_graph, tmp_path):
    graph = map_integer_graph(unet_graph, steps=len(TIMESTEPS))
    names = block_nodes(graph, "mid.blocks.0")
    report = verify(graph, names, tmp_path, TIMESTEPS, samples=2, lanes=4, sim=NETLIST)
    assert report["bit_exact"] and report["words"]["out0"] > 0
