// Activation (SiLU, GELU) as a table indexed by the integer input: out = table[x - IN_MIN], one
// table copy per lane so PE lanes read in parallel (docs/numerics.md, Lut). One register stage.
// Per-timestep-group tables (GROUPS > 1): TABLE_FILE holds GROUPS tables of 2^IBITS entries, table g
// at g * 2^IBITS; every evaluation (WORDS words) first takes its group on the g port
// (rtl/common/group_hold.vh).
`default_nettype none
`include "group_hold.vh"

module lut_activation #(
    parameter integer PE = 2,
    parameter integer IBITS = 8,
    parameter integer OBITS = 8,
    parameter integer IN_MIN = -128,
    parameter integer GROUPS = 1,
    parameter integer WORDS = 1,   // words per evaluation (grouped tables only)
    parameter integer GBITS = 8,
    parameter TABLE_FILE = "table.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*IBITS-1:0] in_data,
    output reg                 out_valid,
    input  wire                out_ready,
    output reg  [PE*OBITS-1:0] out_data,
    input  wire                g_valid,
    output wire                g_ready,
    input  wire [GBITS-1:0]    g_data
);
    localparam integer ENTRIES = 1 << IBITS;
    reg [OBITS-1:0] table_mem [0:GROUPS*ENTRIES-1];
    initial $readmemh(TABLE_FILE, table_mem);
    wire free = !out_valid || out_ready;
    wire have_g;
    wire [GBITS-1:0] group;
    assign in_ready = free && have_g;
    group_hold #(.GROUPS(GROUPS), .GBITS(GBITS), .USES(WORDS)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(in_valid && in_ready), .ok(have_g), .group(group));
    integer p;
    reg signed [IBITS:0] x;
    reg [IBITS-1:0] index;  // x - IN_MIN, in 0 .. 2^IBITS - 1
    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (free) begin
            out_valid <= in_valid && have_g;
            for (p = 0; p < PE; p = p + 1) begin
                x = (IN_MIN < 0) ? $signed({in_data[p * IBITS + IBITS - 1], in_data[p * IBITS +: IBITS]})
                                 : $signed({1'b0, in_data[p * IBITS +: IBITS]});
                index = x - IN_MIN;
                out_data[p * OBITS +: OBITS] <= table_mem[group * ENTRIES + index];
            end
        end
    end
endmodule

`default_nettype wire
