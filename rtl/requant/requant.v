// Stand-alone requantization of a channels-last stream: PE lanes per word, channel of lane p in
// fold f = f*PE + p (folds cycle through CHANNELS/PE); shift right by shift[c] rounding half to
// even (left when negative), saturate to [QMIN, QMAX] (docs/numerics.md). One register stage.
// Per-timestep-group scales (GROUPS > 1, TDQ-style timestep-dependent precision): SHIFT_FILE holds
// GROUPS tables of CHANNELS shifts; every evaluation (VECTORS x CHANNELS values) first takes its
// group index on the g port (the host sends it with the step, or a timestep_table maps the step to
// its group), and the table is selected at run time. With GROUPS = 1 the g port is unused.
`default_nettype none

module requant #(
    parameter integer CHANNELS = 4,
    parameter integer PE = 2,
    parameter integer IBITS = 16,
    parameter integer OBITS = 8,
    parameter integer SHBITS = 8,
    parameter signed [63:0] QMIN = -128,  // 64 bits: outputs may be wider than 32
    parameter signed [63:0] QMAX = 127,
    parameter integer GROUPS = 1,
    parameter integer VECTORS = 1,
    parameter integer GBITS = 8,
    parameter SHIFT_FILE = "shift.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*IBITS-1:0] in_data,
    output reg                 out_valid,
    input  wire                out_ready,
    output reg  [PE*OBITS-1:0] out_data,
    input  wire                g_valid,
    output wire                g_ready,
    input  wire [GBITS-1:0]    g_data
);
    localparam integer FOLDS = CHANNELS / PE;
    localparam integer FB = (FOLDS <= 1) ? 1 : $clog2(FOLDS);
    localparam integer GROUPED = (GROUPS > 1);
    reg signed [SHBITS-1:0] smem [0:GROUPS*CHANNELS-1];
    initial $readmemh(SHIFT_FILE, smem);
    reg [FB-1:0] fold;
    reg have_g;
    reg [GBITS-1:0] group;
    reg [31:0] words;  // words of this evaluation so far (grouped mode)
    assign g_ready = GROUPED && !have_g;
    wire free = !out_valid || out_ready;
    assign in_ready = free && (!GROUPED || have_g);
    wire take = in_valid && in_ready;
    integer p;
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            fold <= 0;
            have_g <= 1'b0;
            words <= 0;
        end else begin
            if (g_valid && g_ready) begin
                group <= g_data;
                have_g <= 1'b1;
            end
            if (free) out_valid <= take;
            if (take) begin
                for (p = 0; p < PE; p = p + 1)
                    out_data[p * OBITS +: OBITS] <= requantize($signed(in_data[p * IBITS +: IBITS]),
                                                               smem[(GROUPED ? group * CHANNELS : 0) + fold * PE + p]);
                fold <= (fold == FOLDS - 1) ? 0 : fold + 1;
                if (GROUPED) begin
                    words <= (words == VECTORS * FOLDS - 1) ? 0 : words + 1;
                    if (words == VECTORS * FOLDS - 1) have_g <= 1'b0;
                end
            end
        end
    end

    `include "round_shift.vh"

endmodule

`default_nettype wire
