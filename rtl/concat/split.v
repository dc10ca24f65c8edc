// Channel split of a channels-last stream into two (FINN's StreamingSplit; attention's q, k, v
// are splits): of every pixel's (C0 + C1)/SIMD words, the first C0/SIMD go to out0, the rest to
// out1. One register per output.
`default_nettype none

module split #(
    parameter integer C0 = 2,
    parameter integer C1 = 2,
    parameter integer SIMD = 1,
    parameter integer BITS = 8
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 in_valid,
    output wire                 in_ready,
    input  wire [SIMD*BITS-1:0] in_data,
    output reg                  out0_valid,
    input  wire                 out0_ready,
    output reg  [SIMD*BITS-1:0] out0_data,
    output reg                  out1_valid,
    input  wire                 out1_ready,
    output reg  [SIMD*BITS-1:0] out1_data
);
    localparam integer F0 = C0 / SIMD;
    localparam integer F1 = C1 / SIMD;
    reg [$clog2(F0 + F1 + 1)-1:0] f;  // as wide as its range: its compare sits in the ready path
    wire first = (f < F0);
    wire free0 = !out0_valid || out0_ready;
    wire free1 = !out1_valid || out1_ready;
    assign in_ready = first ? free0 : free1;
    wire take = in_valid && in_ready;
    always @(posedge clk) begin
        if (rst) begin
            out0_valid <= 1'b0;
            out1_valid <= 1'b0;
            f <= 0;
        end else begin
            if (free0) out0_valid <= take && first;
            if (free1) out1_valid <= take && !first;
            if (take) begin
                if (first) out0_data <= in_data;
                else out1_data <= in_data;
                f <= (f == F0 + F1 - 1) ? 0 : f + 1;
            end
        end
    end
endmodule

`default_nettype wire
