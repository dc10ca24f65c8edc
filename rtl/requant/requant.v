// Stand-alone requantization of a channels-last stream: PE lanes per word, channel of lane p in
// fold f = f*PE + p (folds cycle through CHANNELS/PE); shift right by shift[c] rounding half to
// even (left when negative), saturate to [QMIN, QMAX] (docs/numerics.md). One register stage.
// Per-timestep-group scales (GROUPS > 1, TDQ-style timestep-dependent precision): SHIFT_FILE holds
// GROUPS tables of CHANNELS shifts; every evaluation (VECTORS x CHANNELS values) first takes its
// group index on the g port (rtl/common/group_hold.vh; a stitched design fans its one g port out to
// every grouped block), and the table is selected at run time. With GROUPS = 1 the g port is unused.
// SHIFT_CONST = 1: every channel of every group shifts by SHIFT (per-tensor scales, as exports have
// them) and no table is built. A table of equal entries computes the same, but synthesis folds the
// table into the shift only after the 64-bit saturation compares have become carry chains: about
// 150 LUTs a lane against about 40 (Yosys synth_ecp5, 17-bit input).
// With a table, SHIFT_MIN and SHIFT_MAX bound its entries (the stitcher sets them from the table; a
// simulation stops on an entry outside them): a lane chooses among the constant-shift requantizers
// of that range by its entry, each a module kept apart (rtl/common/shift_table.vh, shift_requantizer.vh).
`default_nettype none
`include "group_hold.vh"
`include "shift_requantizer.vh"

module requant #(
    parameter integer CHANNELS = 4,
    parameter integer PE = 2,
    parameter integer IBITS = 16,
    parameter integer OBITS = 8,
    parameter integer SHBITS = 8,
    parameter signed [63:0] QMIN = -128,  // 64 bits: outputs may be wider than 32
    parameter signed [63:0] QMAX = 127,
    parameter integer GROUPS = 1,
    parameter integer VECTORS = 1,
    parameter integer GBITS = 8,
    parameter SHIFT_FILE = "shift.mem",
    parameter integer SHIFT_CONST = 0,
    parameter integer SHIFT = 0,
    parameter integer SHIFT_MIN = 0,   // the table's entries lie in [SHIFT_MIN, SHIFT_MAX]
    parameter integer SHIFT_MAX = 0
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
    localparam integer FOLDS = CHANNELS / PE;
    localparam integer FB = (FOLDS <= 1) ? 1 : $clog2(FOLDS);
    reg signed [SHBITS-1:0] smem [0:GROUPS*CHANNELS-1];
    initial begin
        $readmemh(SHIFT_FILE, smem);
`ifndef SYNTHESIS
        if (!SHIFT_CONST) check_shift_table(GROUPS * CHANNELS);
`endif
    end
    reg [FB-1:0] fold;
    wire free = !out_valid || out_ready;
    wire have_g;
    wire [GBITS-1:0] group;
    assign in_ready = free && have_g;
    wire take = in_valid && in_ready;
    group_hold #(.GROUPS(GROUPS), .GBITS(GBITS), .USES(VECTORS * FOLDS)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(take), .ok(have_g), .group(group));
    // a table: per lane, the kept-apart requantizers of SHIFT_MIN..SHIFT_MAX and the choice by its entry
    wire [PE*OBITS-1:0] chosen;
    genvar gp, gk;
    generate
        if (!SHIFT_CONST) begin : table_path
            for (gp = 0; gp < PE; gp = gp + 1) begin : lane
                wire [(SHIFT_MAX - SHIFT_MIN + 1)*OBITS-1:0] q;
                for (gk = SHIFT_MIN; gk <= SHIFT_MAX; gk = gk + 1) begin : shift
                    shift_requantizer #(.IBITS(IBITS), .OBITS(OBITS), .QMIN(QMIN), .QMAX(QMAX), .SHIFT(gk))
                        rq (.v(in_data[gp * IBITS +: IBITS]), .q(q[(gk - SHIFT_MIN) * OBITS +: OBITS]));
                end
                assign chosen[gp * OBITS +: OBITS] = choose_shift(q, smem[group * CHANNELS + fold * PE + gp]);
            end
        end else begin : no_table
            assign chosen = {PE*OBITS{1'b0}};
        end
    endgenerate
    integer p;
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            fold <= 0;
        end else begin
            if (free) out_valid <= take;
            if (take) begin
                for (p = 0; p < PE; p = p + 1)
                    out_data[p * OBITS +: OBITS] <= SHIFT_CONST ? requantize($signed(in_data[p * IBITS +: IBITS]), SHIFT)
                        : chosen[p * OBITS +: OBITS];
                fold <= (fold == FOLDS - 1) ? 0 : fold + 1;
            end
        end
    end

    `include "round_shift.vh"
    `include "shift_table.vh"

endmodule

`default_nettype wire
