// First-in first-out stream buffer of DEPTH words (the skip and fork FIFOs the cost model sizes).
// First-word fall-through: a word written in one cycle can be read in the next.
`default_nettype none

module fifo #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 16
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
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [AB-1:0] wptr, rptr;
    reg [AB:0] count;
    assign in_ready = (count != DEPTH);
    assign out_valid = (count != 0);
    assign out_data = mem[rptr];
    wire push = in_valid && in_ready;
    wire pop = out_valid && out_ready;
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
endmodule

`default_nettype wire
