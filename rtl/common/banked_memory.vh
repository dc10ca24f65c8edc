// A memory deeper than one block-RAM chunk, split in banks of BANK words, each bank's read word
// registered once more before the bank multiplexer: a cascade's multiplexer after the block RAMs'
// clock-to-out was a stitched design's critical path (docs/bitstreams.md). rdata is the word at
// raddr two enabled cycles after raddr was presented (one cycle more than a plain registered read).
// Read-only with the banks loaded from INIT_FILE.b00, INIT_FILE.b01, ... (rtl/mvau's weights), or
// written through waddr/wdata when WRITABLE (rtl/groupnorm's map buffer). The bank depth comes from
// hwsim.dataflow.ecp5.bank_words (the fewest block RAMs). Shared by rtl/mvau and rtl/groupnorm: each
// includes this file before its module (the guard keeps one definition per compilation).
`ifndef HWSIM_BANKED_MEMORY_VH
`define HWSIM_BANKED_MEMORY_VH

module banked_memory #(
    parameter integer WIDTH = 8,
    parameter integer WORDS = 2,      // words in all
    parameter integer BANK = 1,       // words per bank, a power of two
    parameter integer ABITS = 1,      // address width (holds WORDS - 1)
    parameter integer WRITABLE = 0,
    parameter INIT_FILE = ""          // read-only banks: INIT_FILE.bNN, NN the bank's two-digit index
) (
    input  wire             clk,
    input  wire             en,       // advances the read pipeline
    input  wire [ABITS-1:0] raddr,
    input  wire             we,       // WRITABLE only
    input  wire [ABITS-1:0] waddr,
    input  wire [WIDTH-1:0] wdata,
    output wire [WIDTH-1:0] rdata
);
    localparam integer NB = (WORDS + BANK - 1) / BANK;
    localparam integer LB = (BANK <= 1) ? 1 : $clog2(BANK);
    localparam integer SB = (NB <= 1) ? 1 : $clog2(NB);
    wire [NB*WIDTH-1:0] held;  // every bank's word, registered twice
    reg [SB-1:0] sel1, selb;
    genvar k;
    generate
        for (k = 0; k < NB; k = k + 1) begin : bank
            localparam [7:0] D1 = 8'd48 + k / 10, D0 = 8'd48 + k % 10;
            reg [WIDTH-1:0] mem [0:BANK-1];
            reg [WIDTH-1:0] q, r;
            if (WRITABLE) begin : writes
                always @(posedge clk)
                    if (we && (waddr >> LB) == k) mem[waddr[LB-1:0]] <= wdata;
            end else begin : rom
                initial $readmemh({INIT_FILE, ".b", D1, D0}, mem);
            end
            always @(posedge clk)
                if (en) begin
                    q <= mem[raddr[LB-1:0]];
                    r <= q;
                end
            assign held[k * WIDTH +: WIDTH] = r;
        end
    endgenerate
    always @(posedge clk)
        if (en) begin
            sel1 <= raddr >> LB;
            selb <= sel1;
        end
    assign rdata = held[selb * WIDTH +: WIDTH];
endmodule

`endif
