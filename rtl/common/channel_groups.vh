// The channel fold of a channels-last stream (PE channels a word, FOLDS = CHANNELS / PE words a
// pixel) and the group (CHANNELS / GROUPS = CPG consecutive channels each) of each of its PE lanes:
// lane p of fold f carries channel f * PE + p, in group (f * PE + p) / CPG.
// When CPG is a power of two that division is a bit slice and is computed from the fold. Otherwise it
// would be a divider in logic on the path from a counter to a table select (rtl/groupnorm's LOAD and
// EMIT ran at 64.7 MHz on it with CPG = 12), so each lane counts its group and its offset in the
// group instead: a step adds PE = A * CPG + B channels, so the offset gains B and the group A, plus
// one where the offset passes CPG. The counters restart with the fold.
// Used by rtl/groupnorm; the guard keeps one definition per compilation.
`ifndef HWSIM_CHANNEL_GROUPS_VH
`define HWSIM_CHANNEL_GROUPS_VH

module channel_groups #(
    parameter integer CHANNELS = 4,
    parameter integer GROUPS = 2,
    parameter integer PE = 2
) (
    input  wire                                   clk,
    input  wire                                   clear,  // back to fold 0 (over step)
    input  wire                                   step,   // the next word
    output wire [$clog2(CHANNELS / PE + 1)-1:0]   fold,
    output wire [PE*$clog2(GROUPS + 1)-1:0]       group   // lane p at [p * GW +: GW]
);
    localparam integer FOLDS = CHANNELS / PE;
    localparam integer CPG = CHANNELS / GROUPS;
    localparam integer GW = $clog2(GROUPS + 1);
    localparam integer CW = $clog2(CHANNELS + 1);
    localparam integer COUNTED = (CPG & (CPG - 1)) != 0;
    localparam integer STEP_G = PE / CPG;
    localparam integer STEP_O = PE % CPG;
    localparam integer OW = $clog2(CPG + 1);

    localparam integer FW = $clog2(FOLDS + 1);
    reg [FW-1:0] count;
    assign fold = (FOLDS == 1) ? {FW{1'b0}} : count;  // a constant with one fold (for synthesis)
    wire restart = clear || (step && fold == FOLDS - 1);
    always @(posedge clk)
        if (restart) count <= 0;
        else if (step) count <= count + 1;

    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : lane
            if (COUNTED) begin : counted
                reg [GW-1:0] g;
                reg [OW-1:0] o;     // (f * PE + p) % CPG
                wire [OW:0] next_o = o + STEP_O;
                always @(posedge clk)
                    if (restart) begin
                        g <= p / CPG;
                        o <= p % CPG;
                    end else if (step) begin
                        if (next_o >= CPG) begin
                            g <= g + STEP_G + 1;
                            o <= next_o - CPG;
                        end else begin
                            g <= g + STEP_G;
                            o <= next_o;
                        end
                    end
                assign group[p * GW +: GW] = g;
            end else begin : sliced
                wire [CW-1:0] c = {{CW{1'b0}}, fold} * PE + p;
                assign group[p * GW +: GW] = c / CPG;
            end
        end
    endgenerate
endmodule
`endif
