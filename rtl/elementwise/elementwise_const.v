// Elementwise add (OP = 0) or multiply (OP = 1) of a stream with a constant tensor (FINN's
// ElementwiseAdd/Mul with a parameter input: the DiT's position embedding): the constant's WORDS
// words of PE lanes are a ROM (CONST_FILE) read in stream order, wrapping after the last, so every
// evaluation of WORDS words meets the whole constant (a constant that broadcasts over the leading
// vectors is stored once and repeats). Same pipeline as elementwise.v: one register stage.
// Per-timestep-group constants (GROUPS > 1): CONST_FILE holds GROUPS ROMs of WORDS words; each
// evaluation (EVAL_WORDS words) takes its group on the g port (rtl/common/group_hold.vh).
`default_nettype none
`include "group_hold.vh"

module elementwise_const #(
    parameter integer PE = 2,
    parameter integer ABITS = 8,
    parameter integer BBITS = 8,
    parameter integer OBITS = 9,
    parameter integer OP = 0,
    parameter integer WORDS = 4,
    parameter integer LUT_MULT = 0,  // 1: products in LUTs (common/multiply.vh)
    parameter integer GROUPS = 1,
    parameter integer EVAL_WORDS = 1,  // words per evaluation (grouped constants only)
    parameter integer GBITS = 8,
    parameter CONST_FILE = "const.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*ABITS-1:0] in_data,
    output reg                 out_valid,
    input  wire                out_ready,
    output reg  [PE*OBITS-1:0] out_data,
    input  wire                g_valid,
    output wire                g_ready,
    input  wire [GBITS-1:0]    g_data
);
    localparam integer AW = (WORDS <= 1) ? 1 : $clog2(WORDS);
    reg [PE*BBITS-1:0] rom [0:GROUPS*WORDS-1];
    initial $readmemh(CONST_FILE, rom);
    reg [AW-1:0] addr;
    wire free = !out_valid || out_ready;
    wire have_g;
    wire [GBITS-1:0] group;
    assign in_ready = free && have_g;
    wire fire = in_ready && in_valid;
    group_hold #(.GROUPS(GROUPS), .GBITS(GBITS), .USES(EVAL_WORDS)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(fire), .ok(have_g), .group(group));
    integer p;
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            addr <= 0;
        end else if (free) begin
            out_valid <= fire;
            if (fire) begin
                for (p = 0; p < PE; p = p + 1)
                    out_data[p * OBITS +: OBITS] <= combine($signed(in_data[p * ABITS +: ABITS]),
                                                            $signed(rom[group * WORDS + addr][p * BBITS +: BBITS]));
                addr <= (addr == WORDS - 1) ? 0 : addr + 1;
            end
        end
    end

    localparam integer MA = ABITS;
    localparam integer MB = BBITS;
    `include "multiply.vh"

    function signed [OBITS-1:0] combine(input signed [ABITS-1:0] a, input signed [BBITS-1:0] b);
        combine = (OP == 0) ? a + b : multiply(a, b);
    endfunction
endmodule

`default_nettype wire
