// Channel concatenation of two channels-last streams (FINN's StreamingConcat): for every pixel,
// C0/SIMD words of in0, then C1/SIMD words of in1. One word per cycle; one register stage.
`default_nettype none

module concat #(
    parameter integer C0 = 2,
    parameter integer C1 = 2,
    parameter integer SIMD = 1,
    parameter integer BITS = 8
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 in0_valid,
    output wire                 in0_ready,
    input  wire [SIMD*BITS-1:0] in0_data,
    input  wire                 in1_valid,
    output wire                 in1_ready,
    input  wire [SIMD*BITS-1:0] in1_data,
    output reg                  out_valid,
    input  wire                 out_ready,
    output reg  [SIMD*BITS-1:0] out_data
);
    localparam integer F0 = C0 / SIMD;
    localparam integer F1 = C1 / SIMD;
    reg [31:0] f;  // word of the pixel: < F0 from in0, else from in1
    wire first = (f < F0);
    wire en = !out_valid || out_ready;
    assign in0_ready = en && first;
    assign in1_ready = en && !first;
    wire fire = first ? (in0_valid && in0_ready) : (in1_valid && in1_ready);
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            f <= 0;
        end else if (en) begin
            out_valid <= fire;
            if (fire) begin
                out_data <= first ? in0_data : in1_data;
                f <= (f == F0 + F1 - 1) ? 0 : f + 1;
            end
        end
    end
endmodule

`default_nettype wire
