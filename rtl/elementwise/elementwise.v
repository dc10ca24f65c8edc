// Elementwise add (OP = 0) or multiply (OP = 1) of two streams of PE lanes each, consumed in
// lockstep (FINN's ElementwiseAdd/Mul with two full-shape inputs); signed operands, OBITS result.
// One register stage.
`default_nettype none

module elementwise #(
    parameter integer PE = 2,
    parameter integer ABITS = 8,
    parameter integer BBITS = 8,
    parameter integer OBITS = 9,
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
    wire free = !out_valid || out_ready;
    wire fire = free && in0_valid && in1_valid;
    assign in0_ready = free && in1_valid;
    assign in1_ready = free && in0_valid;
    integer p;
    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (free) begin
            out_valid <= fire;
            if (fire)
                for (p = 0; p < PE; p = p + 1)
                    out_data[p * OBITS +: OBITS] <= (OP == 0)
                        ? $signed(in0_data[p * ABITS +: ABITS]) + $signed(in1_data[p * BBITS +: BBITS])
                        : multiply($signed(in0_data[p * ABITS +: ABITS]), $signed(in1_data[p * BBITS +: BBITS]));
        end
    end
    localparam integer MA = ABITS;
    localparam integer MB = BBITS;
    `include "multiply.vh"
endmodule

`default_nettype wire
