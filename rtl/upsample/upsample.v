// Nearest-neighbour upsampling by FACTOR of a channels-last image (FINN's UpsampleNearestNeighbour):
// HI x WI pixels in, (HI*FACTOR) x (WI*FACTOR) out. An input word is taken exactly when its first
// copy goes out and kept in a one-row buffer for the other copies, so one word leaves per cycle.
`default_nettype none

module upsample #(
    parameter integer HI = 2,
    parameter integer WI = 2,
    parameter integer FACTOR = 2,
    parameter integer CHANNELS = 2,
    parameter integer SIMD = 1,
    parameter integer BITS = 8
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
    localparam integer CF = CHANNELS / SIMD;
    localparam integer HO = HI * FACTOR;
    localparam integer WO = WI * FACTOR;
    reg [SIMD*BITS-1:0] row [0:WI*CF-1];
    // the next output word, counters as wide as their ranges (their compares sit in the ready
    // chain, and the row slot's multiply by CF is sized by x's width)
    reg [$clog2(HO + 1)-1:0] y;
    reg [$clog2(WO + 1)-1:0] x;
    reg [$clog2(CF + 1)-1:0] c;
    wire fresh = (y % FACTOR == 0) && (x % FACTOR == 0);
    wire [31:0] slot = (x / FACTOR) * CF + c;
    wire en = !out_valid || out_ready;
    assign in_ready = en && fresh;
    wire fire = en && (fresh ? in_valid : 1'b1);
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            {y, x, c} <= 0;
        end else if (en) begin
            out_valid <= fire;
            if (fire) begin
                out_data <= fresh ? in_data : row[slot];
                if (fresh) row[slot] <= in_data;
                if (c == CF - 1) begin
                    c <= 0;
                    if (x == WO - 1) begin
                        x <= 0;
                        y <= (y == HO - 1) ? 0 : y + 1;
                    end else x <= x + 1;
                end else c <= c + 1;
            end
        end
    end
endmodule

`default_nettype wire
