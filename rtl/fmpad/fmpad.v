// Zero padding of a channels-last image (FINN's FMPadding): H x W pixels of CHANNELS/SIMD words in,
// (H+PT+PB) x (W+PL+PR) pixels out, zeros around. One word per cycle; one register stage.
`default_nettype none

module fmpad #(
    parameter integer H = 4,
    parameter integer W = 4,
    parameter integer CHANNELS = 2,
    parameter integer SIMD = 1,
    parameter integer BITS = 8,
    parameter integer PT = 1,
    parameter integer PL = 1,
    parameter integer PB = 1,
    parameter integer PR = 1
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 in_valid,
    output wire                 in_ready,
    input  wire [SIMD*BITS-1:0] in_data,
    output reg                  out_valid,
    input  wire                 out_ready,
    output reg  [SIMD*BITS-1:0] out_data
);
    localparam integer OH = H + PT + PB;
    localparam integer OW = W + PL + PR;
    localparam integer CF = CHANNELS / SIMD;
    // the position of the next output word, as wide as its range: ``interior`` feeds in_ready,
    // which the ready chain of a stitched design carries through every upstream block in one cycle
    reg [$clog2(OH + 1)-1:0] y;
    reg [$clog2(OW + 1)-1:0] x;
    reg [$clog2(CF + 1)-1:0] c;
    wire interior = (y >= PT) && (y < PT + H) && (x >= PL) && (x < PL + W);
    wire free = !out_valid || out_ready;
    assign in_ready = free && interior;
    wire fire = free && (interior ? in_valid : 1'b1);
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            y <= 0;
            x <= 0;
            c <= 0;
        end else if (free) begin
            out_valid <= fire;
            if (fire) begin
                out_data <= interior ? in_data : {SIMD*BITS{1'b0}};
                if (c == CF - 1) begin
                    c <= 0;
                    if (x == OW - 1) begin
                        x <= 0;
                        y <= (y == OH - 1) ? 0 : y + 1;
                    end else x <= x + 1;
                end else c <= c + 1;
            end
        end
    end
endmodule

`default_nettype wire
