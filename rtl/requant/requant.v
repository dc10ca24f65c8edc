// Stand-alone requantization of a channels-last stream: PE lanes per word, channel of lane p in
// fold f = f*PE + p (folds cycle through CHANNELS/PE); shift right by shift[c] rounding half to
// even (left when negative), saturate to [QMIN, QMAX] (docs/numerics.md). One register stage.
`default_nettype none

module requant #(
    parameter integer CHANNELS = 4,
    parameter integer PE = 2,
    parameter integer IBITS = 16,
    parameter integer OBITS = 8,
    parameter integer SHBITS = 8,
    parameter integer QMIN = -128,
    parameter integer QMAX = 127,
    parameter SHIFT_FILE = "shift.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*IBITS-1:0] in_data,
    output reg                 out_valid,
    input  wire                out_ready,
    output reg  [PE*OBITS-1:0] out_data
);
    localparam integer FOLDS = CHANNELS / PE;
    localparam integer FB = (FOLDS <= 1) ? 1 : $clog2(FOLDS);
    reg signed [SHBITS-1:0] smem [0:CHANNELS-1];
    initial $readmemh(SHIFT_FILE, smem);
    reg [FB-1:0] fold;
    assign in_ready = !out_valid || out_ready;
    integer p;
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            fold <= 0;
        end else if (in_ready) begin
            out_valid <= in_valid;
            if (in_valid) begin
                for (p = 0; p < PE; p = p + 1)
                    out_data[p * OBITS +: OBITS] <= requantize($signed(in_data[p * IBITS +: IBITS]), smem[fold * PE + p]);
                fold <= (fold == FOLDS - 1) ? 0 : fold + 1;
            end
        end
    end

    `include "round_shift.vh"

endmodule

`default_nettype wire
