// Elementwise add (OP = 0) or multiply (OP = 1) of a stream with a constant tensor (FINN's
// ElementwiseAdd/Mul with a parameter input: the DiT's position embedding): the constant's WORDS
// words of PE lanes are a ROM (CONST_FILE) read in stream order, wrapping after the last, so every
// evaluation of WORDS words meets the whole constant (a constant that broadcasts over the leading
// vectors is stored once and repeats). Same pipeline as elementwise.v: one register stage.
`default_nettype none

module elementwise_const #(
    parameter integer PE = 2,
    parameter integer ABITS = 8,
    parameter integer BBITS = 8,
    parameter integer OBITS = 9,
    parameter integer OP = 0,
    parameter integer WORDS = 4,
    parameter integer LUT_MULT = 0,  // 1: products in LUTs (common/multiply.vh)
    parameter CONST_FILE = "const.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*ABITS-1:0] in_data,
    output reg                 out_valid,
    input  wire                out_ready,
    output reg  [PE*OBITS-1:0] out_data
);
    localparam integer AW = (WORDS <= 1) ? 1 : $clog2(WORDS);
    reg [PE*BBITS-1:0] rom [0:WORDS-1];
    initial $readmemh(CONST_FILE, rom);
    reg [AW-1:0] addr;
    assign in_ready = !out_valid || out_ready;
    wire fire = in_ready && in_valid;
    integer p;
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            addr <= 0;
        end else if (in_ready) begin
            out_valid <= in_valid;
            if (fire) begin
                for (p = 0; p < PE; p = p + 1)
                    out_data[p * OBITS +: OBITS] <= combine($signed(in_data[p * ABITS +: ABITS]),
                                                            $signed(rom[addr][p * BBITS +: BBITS]));
                addr <= (addr == WORDS - 1) ? 0 : addr + 1;
            end
        end
    end

    localparam integer MA = ABITS;
    localparam integer MB = BBITS;
    `include "multiply.vh"

    function signed [OBITS-1:0] combine(input signed [ABITS-1:0] a, input signed [BBITS-1:0] b);
        combine = (OP == 0) ? a + b : multiply(a, b);
    endfunction
endmodule

`default_nettype wire
