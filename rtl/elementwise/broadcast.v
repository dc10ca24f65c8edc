// Elementwise add (OP = 0) or multiply (OP = 1) of a stream (in0: VECTORS x FOLDS words of PE lanes)
// with one row (in1: FOLDS words) broadcast over its vectors: the per-timestep bias of a U-Net block,
// the adaLN gate. Two row banks: the next evaluation's row loads while this one runs, so one
// evaluation takes VECTORS x FOLDS cycles (FINN's elementwise formula). One register stage.
`default_nettype none

module broadcast #(
    parameter integer PE = 2,
    parameter integer FOLDS = 2,
    parameter integer VECTORS = 4,
    parameter integer ABITS = 8,
    parameter integer BBITS = 12,
    parameter integer OBITS = 13,
    parameter integer OP = 0,
    parameter integer LUT_MULT = 0  // 1: products in LUTs (common/multiply.vh)
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in0_valid,
    output wire                in0_ready,
    input  wire [PE*ABITS-1:0] in0_data,
    input  wire                in1_valid,
    output wire                in1_ready,
    input  wire [PE*BBITS-1:0] in1_data,
    output reg                 out_valid,
    input  wire                out_ready,
    output reg  [PE*OBITS-1:0] out_data
);
    reg [PE*BBITS-1:0] row [0:2*FOLDS-1];
    reg [1:0] full;
    reg wbank, rbank;
    reg [$clog2(FOLDS + 1)-1:0] wf, f;  // counters as wide as their ranges
    reg [$clog2(VECTORS + 1)-1:0] v;
    wire en = !out_valid || out_ready;
    assign in1_ready = !full[wbank];
    assign in0_ready = en && full[rbank];
    wire load = in1_valid && in1_ready;
    wire fire = in0_valid && in0_ready;
    wire [PE*BBITS-1:0] rhs = row[rbank * FOLDS + f];
    wire row_done = fire && (f == FOLDS - 1) && (v == VECTORS - 1);
    integer p;
    always @(posedge clk) begin
        if (rst) begin
            full <= 2'b00;
            wbank <= 1'b0;
            rbank <= 1'b0;
            wf <= 0;
            f <= 0;
            v <= 0;
            out_valid <= 1'b0;
        end else begin
            if (load) begin
                row[wbank * FOLDS + wf] <= in1_data;
                if (wf == FOLDS - 1) begin
                    wf <= 0;
                    full[wbank] <= 1'b1;
                    wbank <= ~wbank;
                end else wf <= wf + 1;
            end
            if (fire) begin
                if (f == FOLDS - 1) begin
                    f <= 0;
                    v <= (v == VECTORS - 1) ? 0 : v + 1;
                end else f <= f + 1;
                if (row_done) begin
                    full[rbank] <= 1'b0;
                    rbank <= ~rbank;
                end
            end
            if (en) begin
                out_valid <= fire;
                if (fire)
                    for (p = 0; p < PE; p = p + 1)
                        out_data[p * OBITS +: OBITS] <= (OP == 0)
                            ? $signed(in0_data[p * ABITS +: ABITS]) + $signed(rhs[p * BBITS +: BBITS])
                            : multiply($signed(in0_data[p * ABITS +: ABITS]), $signed(rhs[p * BBITS +: BBITS]));
            end
        end
    end
    localparam integer MA = ABITS;
    localparam integer MB = BBITS;
    `include "multiply.vh"
endmodule

`default_nettype wire
