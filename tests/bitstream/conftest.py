"""Hand-written design directories (design.json + Verilog) for the flow's failure and unit tests:
they need no integer graph and make Yosys and nextpnr fail (or pass) within seconds."""

import json

import pytest


def write_design(root, name: str, verilog: str, ports: list[dict], macs: int = 0, graph_macs: int = 0):
    """A design directory as hwsim.rtlgen.stitch writes it: ``top`` in ``top.v``, no block sources."""
    d = root / name
    d.mkdir(parents=True)
    (d / f"{name}.v").write_text(verilog)
    manifest = {"top": name, "top_file": f"{name}.v", "sources": [], "include_dirs": [], "memory_files": [],
                "ports": ports, "macs": macs, "graph_macs": graph_macs}
    (d / "design.json").write_text(json.dumps(manifest))
    return d


def port(name: str, direction: str, bits: int, lanes: int = 1) -> dict:
    return {"name": name, "stream": name, "lanes": lanes, "bits": bits, "signed": True, "direction": direction}


ADDER = """module adder (input wire clk, input wire rst,
    input wire in0_valid, output wire in0_ready, input wire [15:0] in0_data,
    output reg out0_valid, input wire out0_ready, output reg [8:0] out0_data);
    assign in0_ready = !out0_valid || out0_ready;
    always @(posedge clk)
        if (rst) out0_valid <= 1'b0;
        else if (in0_ready) begin
            out0_valid <= in0_valid;
            out0_data <= in0_data[7:0] + in0_data[15:8];
        end
endmodule
"""

# 16k x 16 bits of RAM: 64 iCE40 RAM4K blocks, twice what the HX8K has
BIG_RAM = """module bigram (input wire clk, input wire rst,
    input wire in0_valid, output wire in0_ready, input wire [29:0] in0_data,
    output reg out0_valid, input wire out0_ready, output reg [15:0] out0_data);
    reg [15:0] mem [0:16383];
    assign in0_ready = 1'b1;
    always @(posedge clk) begin
        if (in0_valid && in0_data[29]) mem[in0_data[13:0]] <= in0_data[28:14];
        out0_data <= mem[in0_data[13:0]];
        out0_valid <= in0_valid;
    end
endmodule
"""


@pytest.fixture
def adder_design(tmp_path):
    return write_design(tmp_path, "adder", ADDER, [port("in0", "in", 8, 2), port("out0", "out", 9)], 1, 4)
