// Stream reorder (hwsim's StreamReorder, e.g. the DiT's unpatchify): per evaluation N words arrive
// in input order and leave in the order of a fixed sequence, seq[k] = the input position of output
// word k (a permutation of 0..N-1). A buffer of S slots, each with a valid bit: the word with
// absolute input index a (evaluation * N + position) goes to slot a mod S when that slot is free
// (else the input stalls); output k of evaluation e reads slot (e*N + seq[k]) mod S when that slot
// is valid, then frees it. With S >= reorder_slots(seq) (hwsim/rtlgen/bench_reorder.py) a valid
// slot always holds the wanted word; S >= reorder_slots(seq, full_rate=True) also runs a word per
// cycle in the steady state. SEQ_FILE holds seq[k] mod S, one unsigned entry per line (N lines).
// Lanes: a word of PE lanes moves whole (lanes are consecutive positions of one input word).
`default_nettype none

module reorder #(
    parameter integer N = 4,       // words per evaluation
    parameter integer S = 4,       // buffer slots (words)
    parameter integer PE = 1,
    parameter integer BITS = 8,
    parameter SEQ_FILE = "seq.mem"
) (
    input  wire               clk,
    input  wire               rst,
    input  wire               in_valid,
    output wire               in_ready,
    input  wire [PE*BITS-1:0] in_data,
    output reg                out_valid,
    input  wire               out_ready,
    output reg  [PE*BITS-1:0] out_data
);
    localparam integer SB = (S <= 1) ? 1 : $clog2(S);
    localparam integer KB = (N <= 1) ? 1 : $clog2(N);
    localparam integer NMOD = N % S;  // how far the slot of position 0 moves per evaluation
    reg [PE*BITS-1:0] mem [0:S-1];
    reg [SB-1:0] seq_rom [0:N-1];
    initial $readmemh(SEQ_FILE, seq_rom);
    wire full_w, full_r;             // the slots' valid bits at the write pointer and the read address
    reg [SB-1:0] wptr;               // slot of the next input word
    reg [KB-1:0] kn;                 // the next ROM entry to fetch
    reg [SB-1:0] base_f;             // (evaluation of entry kn) * N mod S
    reg [SB-1:0] off, base;          // the fetched entry: seq[k] mod S, its evaluation's base
    reg fetched;
    wire [SB:0] sum = base + off;
    wire [SB-1:0] raddr = (sum >= S) ? sum - S : sum;
    wire en = !out_valid || out_ready;
    wire fire = fetched && en && full_r;
    assign in_ready = !full_w;
    wire push = in_valid && in_ready;
    wire fetch = !fetched || fire;
    wire [SB:0] base_next = base_f + NMOD;
    reorder_flags #(.S(S), .SB(SB)) flags (
        .clk(clk), .rst(rst), .set(push), .wptr(wptr), .clear(fire), .raddr(raddr), .full_w(full_w), .full_r(full_r));
    always @(posedge clk) begin
        if (push) mem[wptr] <= in_data;
        if (fire) out_data <= mem[raddr];
        if (fetch) begin
            off <= seq_rom[kn];
            base <= base_f;
        end
        if (rst) begin
            wptr <= 0;
            kn <= 0;
            base_f <= 0;
            fetched <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            if (push) begin
                wptr <= (wptr == S - 1) ? 0 : wptr + 1;
            end
            if (fetch) begin
                fetched <= 1'b1;
                if (kn == N - 1) begin
                    kn <= 0;
                    base_f <= (base_next >= S) ? base_next - S : base_next;
                end else kn <= kn + 1;
            end
            if (en) out_valid <= fire;
        end
    end
endmodule

// The slots' valid bits: set at the write pointer, cleared at the read address, read at both. A module
// kept apart (keep_hierarchy): flattened, ABC folded the flags' decoders with the sequence's arithmetic
// and mapped them to a cost that depended on the sequence (a 16 x 8 and an 8 x 16 transpose with the
// same 212 slots: 1,437 and 1,902 LUTs); apart, the flags cost what their slot count makes them.
(* keep_hierarchy *)
module reorder_flags #(
    parameter integer S = 4,
    parameter integer SB = 2
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          set,
    input  wire [SB-1:0] wptr,
    input  wire          clear,
    input  wire [SB-1:0] raddr,
    output wire          full_w,
    output wire          full_r
);
    reg [S-1:0] full;
    assign full_w = full[wptr];
    assign full_r = full[raddr];
    always @(posedge clk) begin
        if (rst) full <= 0;
        else begin
            if (set) full[wptr] <= 1'b1;
            if (clear) full[raddr] <= 1'b0;  // never the slot being written (that one is free)
        end
    end
endmodule

`default_nettype wire
