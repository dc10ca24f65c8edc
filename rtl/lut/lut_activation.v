// Activation (SiLU, GELU) as a table indexed by the integer input: out = table[x - IN_MIN], one
// table copy per lane so PE lanes read in parallel (docs/numerics.md, Lut). One register stage.
`default_nettype none

module lut_activation #(
    parameter integer PE = 2,
    parameter integer IBITS = 8,
    parameter integer OBITS = 8,
    parameter integer IN_MIN = -128,
    parameter TABLE_FILE = "table.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*IBITS-1:0] in_data,
    output reg                 out_valid,
    input  wire                out_ready,
    output reg  [PE*OBITS-1:0] out_data
);
    localparam integer ENTRIES = 1 << IBITS;
    reg [OBITS-1:0] table_mem [0:ENTRIES-1];
    initial $readmemh(TABLE_FILE, table_mem);
    assign in_ready = !out_valid || out_ready;
    integer p;
    reg signed [IBITS:0] x;
    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (in_ready) begin
            out_valid <= in_valid;
            for (p = 0; p < PE; p = p + 1) begin
                x = (IN_MIN < 0) ? $signed({in_data[p * IBITS + IBITS - 1], in_data[p * IBITS +: IBITS]})
                                 : $signed({1'b0, in_data[p * IBITS +: IBITS]});
                out_data[p * OBITS +: OBITS] <= table_mem[x - IN_MIN];
            end
        end
    end
endmodule

`default_nettype wire
