// The timestep group index, one word per evaluation from the host, to every block of a stitched
// design that holds per-group constants (rtl/common/group_hold.vh). Blocks take the index at
// different times (the first block of a pipeline starts the next evaluation while the last still
// works on this one), so each output has its own DEPTH-word queue (rtl/fifo); a word is taken when every
// queue has room and is written to all of them at once. A queue that fills only delays the host.
`default_nettype none

module group_fanout #(
    parameter integer N = 2,      // outputs
    parameter integer GBITS = 8,
    parameter integer DEPTH = 4   // evaluations a block may lag behind the first one
) (
    input  wire               clk,
    input  wire               rst,
    input  wire               in_valid,
    output wire               in_ready,
    input  wire [GBITS-1:0]   in_data,
    output wire [N-1:0]       out_valid,
    input  wire [N-1:0]       out_ready,
    output wire [N*GBITS-1:0] out_data
);
    wire [N-1:0] room;
    assign in_ready = &room;
    genvar k;
    generate
        for (k = 0; k < N; k = k + 1) begin : queue
            fifo #(.WIDTH(GBITS), .DEPTH(DEPTH)) q (
                .clk(clk), .rst(rst), .in_valid(in_valid && in_ready), .in_ready(room[k]), .in_data(in_data),
                .out_valid(out_valid[k]), .out_ready(out_ready[k]), .out_data(out_data[k * GBITS +: GBITS]));
        end
    endgenerate
endmodule

`default_nettype wire
