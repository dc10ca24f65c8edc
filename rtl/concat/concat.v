// Channel concatenation of two channels-last streams (FINN's StreamingConcat): for every pixel,
// C0/SIMD words of in0, then C1/SIMD words of in1. One word per cycle; one register stage.
// Inputs of different widths (BITS0, BITS1; 0 = BITS) are sign-extended to the output's BITS: under the
// integer path's concat rule both are already at the common scale, only their ranges differ.
`default_nettype none

module concat #(
    parameter integer C0 = 2,
    parameter integer C1 = 2,
    parameter integer SIMD = 1,
    parameter integer BITS = 8,
    parameter integer BITS0 = 0,
    parameter integer BITS1 = 0
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 in0_valid,
    output wire                 in0_ready,
    input  wire [SIMD*B0-1:0]   in0_data,
    input  wire                 in1_valid,
    output wire                 in1_ready,
    input  wire [SIMD*B1-1:0]   in1_data,
    output reg                  out_valid,
    input  wire                 out_ready,
    output reg  [SIMD*BITS-1:0] out_data
);
    localparam integer B0 = (BITS0 > 0) ? BITS0 : BITS;
    localparam integer B1 = (BITS1 > 0) ? BITS1 : BITS;
    localparam integer F0 = C0 / SIMD;
    localparam integer F1 = C1 / SIMD;
    reg [$clog2(F0 + F1 + 1)-1:0] f;  // word of the pixel: < F0 from in0, else from in1 (its compare sits in the ready path)
    wire first = (f < F0);
    wire en = !out_valid || out_ready;
    assign in0_ready = en && first;
    assign in1_ready = en && !first;
    wire fire = first ? (in0_valid && in0_ready) : (in1_valid && in1_ready);
    integer l;
    function [BITS-1:0] widen0(input [B0-1:0] v);
        widen0 = {{(BITS > B0 ? BITS - B0 : 1){v[B0-1]}}, v} ;
    endfunction
    function [BITS-1:0] widen1(input [B1-1:0] v);
        widen1 = {{(BITS > B1 ? BITS - B1 : 1){v[B1-1]}}, v};
    endfunction
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            f <= 0;
        end else if (en) begin
            out_valid <= fire;
            if (fire) begin
                for (l = 0; l < SIMD; l = l + 1)
                    out_data[l * BITS +: BITS] <= first ? widen0(in0_data[l * B0 +: B0]) : widen1(in1_data[l * B1 +: B1]);
                f <= (f == F0 + F1 - 1) ? 0 : f + 1;
            end
        end
    end
endmodule

`default_nettype wire
