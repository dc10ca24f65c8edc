// The timestep group index, one word per evaluation from the host, to every block of a stitched
// design that holds per-group constants (rtl/common/group_hold.vh). Blocks take the index at
// different times (the first block of a pipeline starts the next evaluation while the last still
// works on this one), so each output has its own DEPTH-word queue; a word is taken when every
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
    localparam integer AB = (DEPTH <= 1) ? 1 : $clog2(DEPTH);
    wire [N-1:0] room;
    assign in_ready = &room;
    wire push = in_valid && in_ready;
    genvar k;
    generate
        for (k = 0; k < N; k = k + 1) begin : queue
            reg [GBITS-1:0] mem [0:DEPTH-1];
            reg [AB-1:0] wptr, rptr;
            reg [AB:0] count;
            wire pop = out_valid[k] && out_ready[k];
            assign room[k] = (count != DEPTH);
            assign out_valid[k] = (count != 0);
            assign out_data[k * GBITS +: GBITS] = mem[rptr];
            always @(posedge clk) begin
                if (rst) begin
                    wptr <= 0;
                    rptr <= 0;
                    count <= 0;
                end else begin
                    if (push) begin
                        mem[wptr] <= in_data;
                        wptr <= (wptr == DEPTH - 1) ? 0 : wptr + 1;
                    end
                    if (pop) rptr <= (rptr == DEPTH - 1) ? 0 : rptr + 1;
                    count <= count + push - pop;
                end
            end
        end
    endgenerate
endmodule

`default_nettype wire
