// First-in first-out stream buffer of DEPTH words (the skip and fork FIFOs the cost model sizes).
// OUTREG = 0: first-word fall-through, a word written in one cycle can be read in the next; the
// memory is read at the registered read pointer, so a consumer's logic hangs off the memory's
// output (in block RAM: its clock-to-out and the multiplexer of a cascade of blocks).
// OUTREG = 1 (the stitched designs' edge FIFOs): the memory is read one cycle ahead into its read
// register, and the word leaves from an output register of its own: nothing but a flip-flop drives
// the consumer. A word written in cycle t can be read in t + 3 (two cycles more); the FIFO holds
// DEPTH + 2 words and still passes one word per cycle.
// INREG = 1 (with OUTREG = 1 on the stitched designs' edges): the memory is written a cycle after the
// push, from a write register, so the producer's handshake (often a fork's valid, which waits on
// every consumer's ready) ends at flip-flops instead of at the write enables of a cascade of block
// RAMs spread over the chip. The word in flight is counted (in_ready sees it) but not readable yet:
// one cycle more of latency, no more capacity.
`default_nettype none

module fifo #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 16,
    parameter integer OUTREG = 0,
    parameter integer INREG = 0
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             in_valid,
    output wire             in_ready,
    input  wire [WIDTH-1:0] in_data,
    output wire             out_valid,
    input  wire             out_ready,
    output wire [WIDTH-1:0] out_data
);
    localparam integer AB = (DEPTH <= 1) ? 1 : $clog2(DEPTH);
    // a read never meets a write to the same word (the pointers meet only when the memory is empty,
    // and then nothing is read, or full, and then nothing is written): no collision logic
    (* no_rw_check *) reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [AB-1:0] wptr, rptr;
    reg [AB:0] count;  // words in the memory, and the one in the write register (INREG = 1)
    // the next count is chosen, not added: push and pop (which can end a long ready chain) drive a
    // multiplexer's select instead of entering a carry chain
    wire [AB:0] count_up = count + 1'b1, count_down = count - 1'b1;
    assign in_ready = (count != DEPTH);
    wire push = in_valid && in_ready;
    wire pop;          // a word leaves the memory
    wire wen;          // the memory's write: the push itself, or (INREG = 1) the push a cycle later
    wire [WIDTH-1:0] wdata;
    wire [AB:0] held;  // words counted but not in the memory yet
    wire readable = (count != held);
    generate
        if (INREG == 0) begin : direct_write
            assign wen = push;
            assign wdata = in_data;
            assign held = 0;
        end else begin : registered_write
            reg wen_q;
            reg [WIDTH-1:0] wdata_q;  // no enable: when wen_q is set it holds the pushed word
            always @(posedge clk) begin
                wdata_q <= in_data;
                wen_q <= !rst && push;
            end
            assign wen = wen_q;
            assign wdata = wdata_q;
            assign held = {{AB{1'b0}}, wen_q};
        end
    endgenerate
    always @(posedge clk) begin
        if (rst) begin
            wptr <= 0;
            rptr <= 0;
            count <= 0;
        end else begin
            if (wen) begin
                mem[wptr] <= wdata;
                wptr <= (wptr == DEPTH - 1) ? 0 : wptr + 1;
            end
            if (pop) rptr <= (rptr == DEPTH - 1) ? 0 : rptr + 1;
            if (push != pop) count <= push ? count_up : count_down;
        end
    end
    generate
        if (OUTREG == 0) begin : fall_through
            assign out_valid = readable;
            assign out_data = mem[rptr];
            assign pop = out_valid && out_ready;
        end else begin : registered
            reg [WIDTH-1:0] rdata, odata;
            reg rvalid, ovalid;
            wire move = rvalid && (!ovalid || out_ready);  // read register -> output register
            assign pop = readable && (!rvalid || move);  // the read register is free next cycle
            assign out_valid = ovalid;
            assign out_data = odata;
            always @(posedge clk) begin
                if (pop) rdata <= mem[rptr];
                if (move) odata <= rdata;
                if (rst) begin
                    rvalid <= 1'b0;
                    ovalid <= 1'b0;
                end else begin
                    if (pop) rvalid <= 1'b1;
                    else if (move) rvalid <= 1'b0;
                    if (move) ovalid <= 1'b1;
                    else if (out_ready) ovalid <= 1'b0;
                end
            end
        end
    endgenerate
endmodule

`default_nettype wire
