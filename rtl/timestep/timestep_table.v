// Per-timestep constants as a ROM (the time embedding's projection, adaLN rows): for each step
// index taken on `in` (the host sends the sampler step, 0 .. STEPS-1), the row's DIM values are
// emitted as DIM/PE words. One row per sampler step, not per training timestep. One register stage.
`default_nettype none

module timestep_table #(
    parameter integer STEPS = 50,
    parameter integer DIM = 16,
    parameter integer PE = 4,
    parameter integer BITS = 12,
    parameter integer IBITS = 16,
    parameter TABLE_FILE = "table.mem"
) (
    input  wire               clk,
    input  wire               rst,
    input  wire               in_valid,
    output wire               in_ready,
    input  wire [IBITS-1:0]   in_data,
    output reg                out_valid,
    input  wire               out_ready,
    output reg  [PE*BITS-1:0] out_data
);
    localparam integer FOLDS = DIM / PE;
    reg [PE*BITS-1:0] rom [0:STEPS*FOLDS-1];
    initial $readmemh(TABLE_FILE, rom);
    reg busy;
    reg [31:0] base;
    reg [$clog2(FOLDS + 1)-1:0] f;  // as wide as its range: its compare sits in the ready path
    wire en = !out_valid || out_ready;
    wire rfire = en && busy;
    assign in_ready = !busy || (rfire && f == FOLDS - 1);  // the next index may arrive with the last word
    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            out_valid <= 1'b0;
            f <= 0;
        end else begin
            if (in_valid && in_ready) begin
                busy <= 1'b1;
                base <= in_data * FOLDS;
                f <= 0;
            end else if (rfire) begin
                f <= f + 1;
                if (f == FOLDS - 1) busy <= 1'b0;
            end
            if (en) begin
                out_valid <= rfire;
                if (rfire) out_data <= rom[base + f];
            end
        end
    end
endmodule

`default_nettype wire
