// A fork: every input word goes to both outputs (FINN's DuplicateStreams with two streams; a
// three-way fork is two of these). Each output has its own register, so one reader may lag the
// other by a word; a longer lag needs a FIFO after the fork (sized by hwsim's schedule).
`default_nettype none

module duplicate #(
    parameter integer WIDTH = 8
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             in_valid,
    output wire             in_ready,
    input  wire [WIDTH-1:0] in_data,
    output reg              out0_valid,
    input  wire             out0_ready,
    output reg  [WIDTH-1:0] out0_data,
    output reg              out1_valid,
    input  wire             out1_ready,
    output reg  [WIDTH-1:0] out1_data
);
    wire free0 = !out0_valid || out0_ready;
    wire free1 = !out1_valid || out1_ready;
    assign in_ready = free0 && free1;
    wire fire = in_valid && in_ready;
    always @(posedge clk) begin
        if (rst) begin
            out0_valid <= 1'b0;
            out1_valid <= 1'b0;
        end else begin
            if (fire) begin
                out0_valid <= 1'b1;
                out1_valid <= 1'b1;
                out0_data <= in_data;
                out1_data <= in_data;
            end else begin
                if (out0_ready) out0_valid <= 1'b0;
                if (out1_ready) out1_valid <= 1'b0;
            end
        end
    end
endmodule

`default_nettype wire
