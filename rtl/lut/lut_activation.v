// Activation (SiLU, GELU) as a table indexed by the integer input: out = table[x - IN_MIN], one
// table copy per pair of lanes (a two-read-port ROM) so PE lanes read in parallel (docs/numerics.md,
// Lut). One register stage. Each pair's ROM is a module kept apart (keep_hierarchy): flattened, ABC
// mapped the same table to 55 to 83 LUTs a lane depending on the lane count; apart, every pair maps
// alike, so a block's LUTs grow with its lanes as the resource model assumes. Pairs, not single
// lanes, so that a table large enough for block RAM takes one DP16KD per two lanes (its two ports).
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
    output wire [PE*OBITS-1:0] out_data,
    input  wire                g_valid,
    output wire                g_ready,
    input  wire [GBITS-1:0]    g_data
);
    wire free = !out_valid || out_ready;
    wire have_g;
    wire [GBITS-1:0] group;
    assign in_ready = free && have_g;
    group_hold #(.GROUPS(GROUPS), .GBITS(GBITS), .USES(WORDS)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(in_valid && in_ready), .ok(have_g), .group(group));
    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (free) out_valid <= in_valid && have_g;
    end
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 2) begin : pair
            localparam integer LANES = (PE - p < 2) ? 1 : 2;
            lut_table #(.LANES(LANES), .IBITS(IBITS), .OBITS(OBITS), .IN_MIN(IN_MIN), .GROUPS(GROUPS),
                        .GBITS(GBITS), .TABLE_FILE(TABLE_FILE)) rom (
                .clk(clk), .en(free), .group(group), .x(in_data[p * IBITS +: LANES * IBITS]),
                .y(out_data[p * OBITS +: LANES * OBITS]));
        end
    endgenerate
endmodule

// The table of one or two lanes: y <= table[group * 2^IBITS + x - IN_MIN] per lane when en. The
// lanes' index arithmetic sits inside (the sign bit's flip for IN_MIN = -2^(IBITS-1)), where ABC maps
// it into the ROM as it did flattened.
(* keep_hierarchy *)
module lut_table #(
    parameter integer LANES = 2,
    parameter integer IBITS = 8,
    parameter integer OBITS = 8,
    parameter integer IN_MIN = -128,
    parameter integer GROUPS = 1,
    parameter integer GBITS = 8,
    parameter TABLE_FILE = "table.mem"
) (
    input  wire                   clk,
    input  wire                   en,
    input  wire [GBITS-1:0]       group,
    input  wire [LANES*IBITS-1:0] x,
    output reg  [LANES*OBITS-1:0] y
);
    localparam integer ENTRIES = 1 << IBITS;
    reg [OBITS-1:0] table_mem [0:GROUPS*ENTRIES-1];
    initial $readmemh(TABLE_FILE, table_mem);
    integer l;
    reg signed [IBITS:0] v;
    reg [IBITS-1:0] index;  // v - IN_MIN, in 0 .. 2^IBITS - 1
    always @(posedge clk) begin
        if (en) begin
            for (l = 0; l < LANES; l = l + 1) begin
                v = (IN_MIN < 0) ? $signed({x[l * IBITS + IBITS - 1], x[l * IBITS +: IBITS]})
                                 : $signed({1'b0, x[l * IBITS +: IBITS]});
                index = v - IN_MIN;
                y[l * OBITS +: OBITS] <= table_mem[group * ENTRIES + index];
            end
        end
    end
endmodule

`default_nettype wire
