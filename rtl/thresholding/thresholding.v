// Multi-threshold activation (FINN's Thresholding, qonnx's MultiThreshold): for each value x of
// channel c, y = OUT_BIAS + #{i : x >= T[c][i]}, the thresholds of a row sorted ascending. This is
// requantization by thresholds: any monotone map from an accumulator to OBITS levels (float scales,
// non-uniform levels, a fused activation) becomes one table row per channel.
// Binary search, one stage per result bit (STAGES = log2(NT + 1), NT = 2^STAGES - 1 thresholds per
// row; hwsim.rtlgen.memfiles.threshold_table pads shorter rows with a value above every input):
// stage k decides bit STAGES-1-k by comparing x with the threshold at the midpoint of the range
// the earlier stages left, so a value takes STAGES comparisons instead of NT.
// Rows: ROWS = 1 (one row for every channel) or CHANNELS (lane p of fold f is channel f*PE + p).
// Per-timestep-group tables (GROUPS > 1): THRESH_FILE holds GROUPS tables of ROWS rows; every
// evaluation (VECTORS x CHANNELS values) first takes its group index on the g port (rtl/common/group_hold.vh), as requant does.
// Pipeline: STAGES register stages, all advancing together while the output is free (first output
// STAGES cycles after the first input, one word per cycle).
`default_nettype none
`include "group_hold.vh"

module thresholding #(
    parameter integer CHANNELS = 4,
    parameter integer PE = 2,
    parameter integer IBITS = 8,
    parameter integer SIGNED_IN = 1,
    parameter integer TBITS = 9,           // threshold width (signed), holds [in_min, in_max + 1]
    parameter integer STAGES = 4,          // log2(NT + 1)
    parameter integer OBITS = 4,
    parameter signed [63:0] OUT_BIAS = 0,  // FINN's out_bias: -2^(OBITS-1) for a signed output
    parameter integer ROWS = CHANNELS,
    parameter integer GROUPS = 1,
    parameter integer VECTORS = 1,
    parameter integer GBITS = 8,
    parameter THRESH_FILE = "thresholds.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*IBITS-1:0] in_data,
    output wire                out_valid,
    input  wire                out_ready,
    output wire [PE*OBITS-1:0] out_data,
    input  wire                g_valid,
    output wire                g_ready,
    input  wire [GBITS-1:0]    g_data
);
    localparam integer NT = (1 << STAGES) - 1;
    localparam integer FOLDS = CHANNELS / PE;
    localparam integer FB = (FOLDS <= 1) ? 1 : $clog2(FOLDS);
    localparam integer GROUPED = (GROUPS > 1);
    localparam integer XB = IBITS + 1;     // the input, sign- or zero-extended
    localparam integer GB = (GROUPS <= 1) ? 1 : $clog2(GROUPS);

    reg signed [TBITS-1:0] tmem [0:GROUPS*ROWS*NT-1];
    initial $readmemh(THRESH_FILE, tmem);

    // stage registers, stage k at [k]; lane p of a stage at p*XB (values) and p*STAGES (prefixes)
    reg [STAGES-1:0]    v;
    reg [PE*XB-1:0]     xs  [0:STAGES-1];
    reg [PE*STAGES-1:0] pre [0:STAGES-1];
    reg [FB-1:0]        fs  [0:STAGES-1];
    reg [GB-1:0]        gs  [0:STAGES-1];

    reg [FB-1:0] fold;
    wire have_g;
    wire [GBITS-1:0] g_held;
    wire [GB-1:0] group = g_held[GB-1:0];
    wire adv = !v[STAGES-1] || out_ready;
    assign in_ready = adv && have_g;
    wire take = in_valid && in_ready;
    group_hold #(.GROUPS(GROUPS), .GBITS(GBITS), .USES(VECTORS * FOLDS)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(take), .ok(have_g), .group(g_held));
    assign out_valid = v[STAGES-1];

    function [XB-1:0] extend(input [IBITS-1:0] x);
        extend = SIGNED_IN ? {x[IBITS-1], x} : {1'b0, x};
    endfunction

    // one search step: the prefix with bit b set if x reaches the threshold at that midpoint
    function [STAGES-1:0] step(input [XB-1:0] x, input [STAGES-1:0] prefix, input integer b,
                               input [FB-1:0] f, input integer p, input [GB-1:0] g);
        reg [STAGES-1:0] idx;
        integer row;
        begin
            idx = prefix | ({{(STAGES-1){1'b0}}, 1'b1} << b);
            row = (ROWS == 1) ? 0 : f * PE + p;
            step = ($signed(x) >= tmem[((GROUPED ? g : 0) * ROWS + row) * NT + idx - 1]) ? idx : prefix;
        end
    endfunction

    integer k, p;
    always @(posedge clk) begin
        if (rst) begin
            v <= 0;
            fold <= 0;
        end else begin
            if (adv) begin
                v <= (v << 1) | {{(STAGES-1){1'b0}}, take};
                for (p = 0; p < PE; p = p + 1) begin
                    xs[0][p * XB +: XB] <= extend(in_data[p * IBITS +: IBITS]);
                    pre[0][p * STAGES +: STAGES] <= step(extend(in_data[p * IBITS +: IBITS]), 0, STAGES - 1,
                                                         fold, p, group);
                end
                fs[0] <= fold;
                gs[0] <= group;
                for (k = 1; k < STAGES; k = k + 1) begin
                    xs[k] <= xs[k - 1];
                    fs[k] <= fs[k - 1];
                    gs[k] <= gs[k - 1];
                    for (p = 0; p < PE; p = p + 1)
                        pre[k][p * STAGES +: STAGES] <= step(xs[k - 1][p * XB +: XB], pre[k - 1][p * STAGES +: STAGES],
                                                             STAGES - 1 - k, fs[k - 1], p, gs[k - 1]);
                end
            end
            if (take) fold <= (fold == FOLDS - 1) ? 0 : fold + 1;
        end
    end

    genvar q;
    generate
        for (q = 0; q < PE; q = q + 1) begin : lanes
            wire signed [63:0] level = $signed({1'b0, pre[STAGES-1][q * STAGES +: STAGES]}) + OUT_BIAS;
            assign out_data[q * OBITS +: OBITS] = level[OBITS-1:0];
        end
    endgenerate
endmodule

`default_nettype wire
