// Matrix-vector-activation unit: y[c] = requant(sum_k W[c][k] * x[k] + b[c]) for every input vector,
// folded FINN-style: SIMD inputs and PE output channels per cycle, MH/PE x MW/SIMD cycles per vector.
// Requantization (ACTIVATION = 1) is hwsim's: shift right by shift[c] rounding half to even (or shift
// left when shift[c] < 0), then saturate to [QMIN, QMAX] (docs/numerics.md). With ACTIVATION = 0 the
// exact accumulator (with bias) is the output and OBITS must equal ACCBITS. One shift for every channel
// (SHIFT_CONST) builds no table; a table's entries lie in [SHIFT_MIN, SHIFT_MAX], a lane choosing among
// the constant-shift requantizers of that range, each a module kept apart (rtl/common/shift_table.vh
// and shift_requantizer.vh, as rtl/requant).
//
// Stream protocol: valid/ready on both sides; a beat moves when valid and ready are both high.
// Input beat: SIMD lanes of ABITS, lane i in in_data[i*ABITS +: ABITS]. Output beat: PE lanes of OBITS.
// Order: for each vector, output channel groups nf = 0..MH/PE-1, each after MW/SIMD input words;
// the vector is read from the stream during nf = 0 and replayed from an input buffer afterwards.
// Memories: WEIGHT_FILE (hex, MH/PE x MW/SIMD words of PE*SIMD*WBITS bits, word nf*SF+sf, lane
// pe*SIMD+s = W[nf*PE+pe][sf*SIMD+s]), BIAS_FILE (MH words of BBITS), SHIFT_FILE (MH words of SHBITS).
// Pipeline: weight/input read, operand register, half products, products, ceil(log2(SIMD)) adder-tree levels,
// accumulate and bias, requantize (the output register). Memory reads and multiplies, and the
// accumulator and the requantizer, sit in stages of their own: each stage holds one of them.
// N:M sparse weights (M > 1): every group of M consecutive inputs has at most N non-zero weights per
// output channel; only those are stored (WEIGHT_FILE words of MW*N/M/SIMD per channel group) with
// their positions in the group (INDEX_FILE, clog2(M) bits each), and only they are multiplied: the
// vector is first taken whole into a buffer (MW/SIMD cycles), then each group of PE channels takes
// MW*N/(M*SIMD) cycles instead of MW/SIMD.
// Dynamic operand (DYNAMIC = 1, attention's QK^T and AV; FINN's mem_mode "dynamic"): the weights are
// a second stream (op_*), HEADS matrices of MH x MW taken whole into a RAM before the first vector is
// computed and kept for VECTORS input vectors (one evaluation), whose head is the vector index mod
// HEADS; then the next evaluation's operand is taken. The operand stream's element order is three
// nested loops (O_N0 outer .. O_N2 inner, OLANES elements per beat along the inner one) with strides
// O_S0..O_S2 into the RAM, element W_h[m][k] at h*MH*MW + m*MW + k; so K^T streamed token by token
// and V streamed token by token are both taken as they come, without a reorder buffer. No bias.
// Per-timestep-group constants (GROUPS > 1): BIAS_FILE and SHIFT_FILE hold GROUPS tables of MH words,
// table g at g*MH; every evaluation (VECTORS vectors, VECTORS*MH/PE output words) takes its group on
// the g port (rtl/common/group_hold.vh) when its first output is requantized.
// Banked weights (WBANK > 0, dense static weights deeper than WBANK words): rtl/common/banked_memory.vh
// with WBANK set to the block RAM's depth at this word width, each bank its own memory
// (WEIGHT_FILE.bNN, NN = 00, 01, ...): one cycle more of latency, two registered words per bank.
// Group-shifted weights (WGROUP > 0, static dense weights; Q-DiT's group-wise scales): the weight of
// row c, input k is q << s, q the WBITS-bit WEIGHT_FILE lane and s the shift of its group of WGROUP
// consecutive inputs (a convolution's input channels at one kernel tap). WGROUP is a power of two and
// SIMD divides it or it divides SIMD; each group's products are summed in the adder tree, then shifted
// left by s (GSBITS unsigned bits) at the tree level where the group's sum is complete. GSHIFT_FILE
// holds MH/PE x MW/max(SIMD, WGROUP) words of PE x max(1, SIMD/WGROUP) shifts (shift (pe, j) at
// (pe * max(1, SIMD/WGROUP) + j) * GSBITS): the multipliers stay WBITS wide, the memory adds GSBITS
// bits per WGROUP weights.
// Vendor-neutral: multipliers and memories are inferred by synthesis.
`default_nettype none
`include "group_hold.vh"
`include "banked_memory.vh"
`include "shift_requantizer.vh"

module mvau #(
    parameter integer MW = 8,
    parameter integer MH = 4,
    parameter integer PE = 2,
    parameter integer SIMD = 4,
    parameter integer ABITS = 8,
    parameter integer WBITS = 4,
    parameter integer BBITS = 16,
    parameter integer ACCBITS = 24,
    parameter integer OBITS = 8,
    parameter integer SHBITS = 8,
    parameter integer SIGNED_IN = 1,
    parameter integer ACTIVATION = 1,
    parameter signed [63:0] QMIN = -128,  // 64 bits: outputs may be wider than 32
    parameter signed [63:0] QMAX = 127,
    parameter integer N = 1,
    parameter integer M = 1,
    parameter integer SIGNED_W = 1,
    parameter integer LUT_MULT = 0,        // 1: products in LUTs, 0: inferred multiplier blocks (common/multiply.vh)
    parameter integer DYNAMIC = 0,
    parameter integer HEADS = 1,
    parameter integer VECTORS = 1,
    parameter integer OLANES = 1,
    parameter integer O_N0 = 1,
    parameter integer O_N1 = 1,
    parameter integer O_N2 = 1,
    parameter integer O_S0 = 0,
    parameter integer O_S1 = 0,
    parameter integer O_S2 = 1,
    parameter integer GROUPS = 1,
    parameter integer GBITS = 8,
    parameter WEIGHT_FILE = "weights.mem",
    parameter INDEX_FILE = "index.mem",
    parameter BIAS_FILE = "bias.mem",
    parameter SHIFT_FILE = "shift.mem",
    parameter integer SHIFT_CONST = 0,  // 1: every output channel requantizes by SHIFT, no shift table (rtl/requant)
    parameter integer SHIFT = 0,
    parameter integer SHIFT_MIN = 0,   // a shift table's entries lie in [SHIFT_MIN, SHIFT_MAX] (rtl/common/shift_table.vh)
    parameter integer SHIFT_MAX = 0,
    parameter integer WBANK = 0,  // > 0 (a power of two): weights in banks of WBANK words, read registered twice
    parameter integer WGROUP = 0,  // > 0: group-shifted weights, WGROUP inputs per shift (GSHIFT_FILE)
    parameter integer GSBITS = 1,
    parameter GSHIFT_FILE = "gshift.mem"
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  in_valid,
    output wire                  in_ready,
    input  wire [SIMD*ABITS-1:0] in_data,
    output reg                   out_valid,
    input  wire                  out_ready,
    output reg  [PE*OBITS-1:0]   out_data,
    input  wire                  op_valid,
    output wire                  op_ready,
    input  wire [OLANES*WBITS-1:0] op_data,
    input  wire                  g_valid,
    output wire                  g_ready,
    input  wire [GBITS-1:0]      g_data
);
    localparam integer SPARSE = (M > 1);
    localparam integer SF = SPARSE ? MW * N / (M * SIMD) : MW / SIMD;  // weight words per channel group
    localparam integer SFI = MW / SIMD;                                 // input words per vector
    localparam integer NF = MH / PE;
    localparam integer IB = (M <= 1) ? 1 : $clog2(M);
    localparam integer LEVELS = (SIMD <= 1) ? 0 : $clog2(SIMD);
    localparam integer NP = 1 << LEVELS;  // adder-tree leaves per PE (SIMD padded to a power of two)
    localparam integer SFB = (SF <= 1) ? 1 : $clog2(SF);
    localparam integer NFB = (NF <= 1) ? 1 : $clog2(NF);
    // the weight (and sparse index) address nf * SF + sf is wiring when SF is a power of two; else it
    // is counted (a multiplier into the weight memory's address was the unet-fashion share's path)
    localparam integer WCOUNT = (NF > 1) && ((SF & (SF - 1)) != 0);
    localparam integer WAB = $clog2(NF * SF + 1);
    localparam integer BANKED = (WBANK > 0) && !DYNAMIC && !SPARSE && (NF * SF > WBANK);
    localparam integer WW = PE * SIMD * WBITS;                         // weight word
    // group-shifted weights: NGW groups per PE in a word, or a group over GR words; the groups' sums
    // are complete at tree level GL (the word's whole sum when a group spans words)
    localparam integer GSH = (WGROUP > 0) && !DYNAMIC && !SPARSE;
    localparam integer NGW = (GSH && WGROUP < SIMD) ? SIMD / WGROUP : 1;
    localparam integer GR = (GSH && WGROUP > SIMD) ? WGROUP / SIMD : 1;
    localparam integer GL = (GSH && WGROUP < SIMD) ? $clog2(WGROUP) : LEVELS;
    localparam integer GWORDS = GSH ? NF * SF / GR : 1;
    localparam integer GSW = PE * NGW * GSBITS;

    // --- memories -------------------------------------------------------------------------------
    reg [PE*SIMD*WBITS-1:0] wmem [0:NF*SF-1];
    reg signed [BBITS-1:0]  bmem [0:GROUPS*MH-1];
    (* mem2reg *) reg signed [SHBITS-1:0] smem [0:GROUPS*MH-1];  // constants, never a memory (below)
    reg [SIMD*ABITS-1:0]    ibuf [0:SF-1];
    reg [PE*SIMD*IB-1:0]    imem [0:NF*SF-1];
    reg [ABITS-1:0]         xbuf [0:MW-1];  // the whole vector (sparse mode)
    reg [WBITS-1:0]         omem [0:(DYNAMIC ? HEADS * MH * MW : 1)-1];  // the dynamic operand
    reg [GSW-1:0]           gmem [0:GWORDS-1];  // group shifts
    initial begin
        if (GSH) $readmemh(GSHIFT_FILE, gmem);
        if (!DYNAMIC && !BANKED) $readmemh(WEIGHT_FILE, wmem);
        if (SPARSE) $readmemh(INDEX_FILE, imem);
        if (!DYNAMIC) $readmemh(BIAS_FILE, bmem);
        $readmemh(SHIFT_FILE, smem);
`ifndef SYNTHESIS
        if (ACTIVATION && !SHIFT_CONST) check_shift_table(GROUPS * MH);
        if (WGROUP > 0 && (DYNAMIC || SPARSE || (WGROUP & (WGROUP - 1)) != 0 || MW % WGROUP != 0
                           || (SIMD % WGROUP != 0 && WGROUP % SIMD != 0))) begin
            $display("%m: WGROUP=%0d needs static dense weights, a power of two dividing MW=%0d, and SIMD=%0d dividing it or a multiple of it",
                     WGROUP, MW, SIMD);
            $finish;
        end
`endif
    end

    // --- dynamic operand: taken whole, held for VECTORS vectors ------------------------------------
    // counters as wide as their ranges: the operand's write address multiplies them by constant
    // strides, and synthesis sizes those multipliers (MULT18X18D, when a stride is no power of two)
    // by the counters' widths
    reg have_op;
    reg [$clog2(O_N0 + 1)-1:0] o0;
    reg [$clog2(O_N1 + 1)-1:0] o1;
    reg [$clog2(O_N2 + OLANES + 1)-1:0] o2;
    reg [$clog2(VECTORS + 1)-1:0] vec;
    reg [$clog2(HEADS + 1)-1:0] head;
    // the read address of lane (q, r), (head * MH + nf * PE + q) * MW + sf * SIMD + r: wiring when
    // MW, MH, PE and SIMD are powers of two (each lane then reaches its own part of the RAM);
    // otherwise a multiplier and adders in the read cycle (a share's critical path), so the base
    // (head * MH + nf * PE) * MW + sf * SIMD is counted with head, nf and sf (OCOUNT)
    localparam integer OCOUNT = DYNAMIC && (((MW & (MW - 1)) != 0) || ((MH & (MH - 1)) != 0)
                                            || ((PE & (PE - 1)) != 0) || ((SIMD & (SIMD - 1)) != 0));
    localparam integer OAW = $clog2(HEADS * MH * MW + 1);
    localparam integer OROW = PE * MW - (SF - 1) * SIMD;  // the base's step to the next row group
    reg [OAW-1:0] obase;
    wire release_op;
    integer ol;
    assign op_ready = DYNAMIC && !have_op;
    always @(posedge clk) begin
        if (rst || !DYNAMIC) begin
            have_op <= 1'b0;
            o0 <= 0;
            o1 <= 0;
            o2 <= 0;
        end else if (op_valid && op_ready) begin
            for (ol = 0; ol < OLANES; ol = ol + 1)
                omem[o0 * O_S0 + o1 * O_S1 + (o2 + ol) * O_S2] <= op_data[ol * WBITS +: WBITS];
            if (o2 + OLANES < O_N2) o2 <= o2 + OLANES;
            else begin
                o2 <= 0;
                if (o1 < O_N1 - 1) o1 <= o1 + 1;
                else begin
                    o1 <= 0;
                    if (o0 < O_N0 - 1) o0 <= o0 + 1;
                    else begin
                        o0 <= 0;
                        have_op <= 1'b1;
                    end
                end
            end
        end else if (release_op) have_op <= 1'b0;
    end

    // --- control: the pipeline moves when the output register is free or being read, and, with
    // per-group constants, the last stage has its evaluation's group when it requantizes ---------
    wire requantizing;    // the last stage completes an output word this cycle (if enabled)
    wire have_g;
    wire [GBITS-1:0] group;
    wire en = (!out_valid || out_ready) && (have_g || !requantizing);
    group_hold #(.GROUPS(GROUPS), .GBITS(GBITS), .USES(VECTORS * NF)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(en && requantizing), .ok(have_g), .group(group));
    reg [SFB-1:0] sf;
    reg [NFB-1:0] nf;
    reg [WAB-1:0] waddr;  // nf * SF + sf, when WCOUNT
    reg [$clog2(GWORDS + 1)-1:0] gaddr;  // (nf * SF + sf) / GR: the group shifts' word
    reg loading;          // sparse mode: taking the next vector into xbuf
    reg [$clog2(SFI + 1)-1:0] lcount;
    reg v1;
    wire reading = !SPARSE && (nf == 0);
    wire go = !DYNAMIC || have_op;  // a dynamic operand must be complete
    reg vr;
    // sparse: the next vector may overwrite xbuf once the last word's products are taken (vr moving)
    assign in_ready = SPARSE ? (loading && !v1 && (!vr || en)) : (en && reading && go);
    wire fire = SPARSE ? (en && !loading) : (en && go && (reading ? in_valid : 1'b1));
    wire vector_done = fire && (sf == SF - 1) && (nf == NF - 1);
    assign release_op = vector_done && (vec == VECTORS - 1);
    integer ls;

    always @(posedge clk) begin
        if (rst) begin
            sf <= 0;
            nf <= 0;
            loading <= 1'b1;
            lcount <= 0;
            vec <= 0;
            head <= 0;
            obase <= 0;
            waddr <= 0;
            gaddr <= 0;
        end else begin
            if (vector_done) begin
                vec <= (vec == VECTORS - 1) ? 0 : vec + 1;
                head <= (head == HEADS - 1) ? 0 : head + 1;
            end
            if (SPARSE && in_valid && in_ready) begin
                for (ls = 0; ls < SIMD; ls = ls + 1)
                    xbuf[lcount * SIMD + ls] <= in_data[ls * ABITS +: ABITS];
                lcount <= (lcount == SFI - 1) ? 0 : lcount + 1;
                if (lcount == SFI - 1) loading <= 1'b0;
            end
            if (fire && WCOUNT) waddr <= vector_done ? 0 : waddr + 1;
            if (GSH && fire && (GR == 1 || (sf + 1) % GR == 0)) gaddr <= vector_done ? 0 : gaddr + 1;
            if (fire && OCOUNT)
                obase <= (sf != SF - 1) ? obase + SIMD : (vector_done && head == HEADS - 1) ? 0 : obase + OROW;
            if (fire) begin
                if (reading) ibuf[sf] <= in_data;
                if (sf == SF - 1) begin
                    sf <= 0;
                    nf <= (nf == NF - 1) ? 0 : nf + 1;
                    if (SPARSE && nf == NF - 1) loading <= 1'b1;
                end else begin
                    sf <= sf + 1;
                end
            end
        end
    end

    // --- stage 1: operands ------------------------------------------------------------------------
    reg                     first1, last1;
    reg [NFB-1:0]           nf1;
    reg [SFB-1:0]           sf1;
    reg [SIMD*ABITS-1:0]    x1;
    reg [PE*SIMD*WBITS-1:0] w1;
    reg [PE*SIMD*IB-1:0]    i1;
    reg [GSW-1:0]           g1;
    always @(posedge clk) begin
        if (rst) v1 <= 1'b0;
        else if (en) begin
            v1 <= fire;
            first1 <= (sf == 0);
            last1 <= (sf == SF - 1);
            nf1 <= nf;
            sf1 <= sf;
            x1 <= reading ? in_data : ibuf[sf];
            if (!BANKED) w1 <= !DYNAMIC ? wmem[WCOUNT ? waddr : nf * SF + sf] : OCOUNT ? operand_at(obase) : operand_word(head, nf, sf);
            i1 <= imem[WCOUNT ? waddr : nf * SF + sf];
            if (GSH) g1 <= gmem[gaddr];
        end
    end

    // --- banked weights: every bank's word registered again, then chosen (the rest waits a cycle) ----
    wire                     v1o, first1o, last1o;  // stage 1 as the operand register takes it
    wire [NFB-1:0]           nf1o;
    wire [SFB-1:0]           sf1o;
    wire [SIMD*ABITS-1:0]    x1o;
    wire [WW-1:0]            w1o;
    wire [PE*SIMD*IB-1:0]    i1o;
    wire [GSW-1:0]           g1o;
    generate
        if (BANKED) begin : banked
            reg v1b, first1b, last1b;
            reg [NFB-1:0] nf1b;
            reg [SFB-1:0] sf1b;
            reg [SIMD*ABITS-1:0] x1b;
            reg [GSW-1:0] g1b;
            banked_memory #(.WIDTH(WW), .WORDS(NF * SF), .BANK(WBANK), .ABITS(WAB), .INIT_FILE(WEIGHT_FILE)) weights (
                .clk(clk), .en(en), .raddr(WCOUNT ? waddr : nf * SF + sf), .we(1'b0), .waddr({WAB{1'b0}}),
                .wdata({WW{1'b0}}), .rdata(w1o));
            always @(posedge clk) begin
                if (rst) v1b <= 1'b0;
                else if (en) v1b <= v1;
                if (en) begin
                    first1b <= first1;
                    last1b <= last1;
                    nf1b <= nf1;
                    sf1b <= sf1;
                    x1b <= x1;
                    g1b <= g1;
                end
            end
            assign {v1o, first1o, last1o, nf1o, sf1o, x1o, i1o, g1o} = {v1b, first1b, last1b, nf1b, sf1b, x1b, {PE*SIMD*IB{1'b0}}, g1b};
        end else begin : direct
            assign {v1o, first1o, last1o, nf1o, sf1o, x1o, w1o, i1o, g1o} = {v1, first1, last1, nf1, sf1, x1, w1, i1, g1};
        end
    endgenerate

    // --- operand register: the memories' outputs registered before the multipliers ----------------
    reg                     firstr, lastr;
    reg [NFB-1:0]           nfr;
    reg [SFB-1:0]           sfr;
    reg [SIMD*ABITS-1:0]    xr;
    reg [PE*SIMD*WBITS-1:0] wr;
    reg [PE*SIMD*IB-1:0]    ir;
    reg [GSW-1:0]           gr;
    always @(posedge clk) begin
        if (rst) vr <= 1'b0;
        else if (en) begin
            vr <= v1o;
            firstr <= first1o;
            lastr <= last1o;
            nfr <= nf1o;
            sfr <= sf1o;
            xr <= x1o;
            wr <= w1o;
            ir <= i1o;
            if (GSH) gr <= g1o;
        end
    end

    // PE x SIMD elements of the dynamic operand, packed like a WEIGHT_FILE word
    function [PE*SIMD*WBITS-1:0] operand_word(input [$clog2(HEADS + 1)-1:0] h, input [NFB-1:0] n, input [SFB-1:0] f);
        integer q, r;
        begin
            for (q = 0; q < PE; q = q + 1)
                for (r = 0; r < SIMD; r = r + 1)
                    operand_word[(q * SIMD + r) * WBITS +: WBITS] = omem[(h * MH + n * PE + q) * MW + f * SIMD + r];
        end
    endfunction

    // the same word from the counted base (OCOUNT)
    function [PE*SIMD*WBITS-1:0] operand_at(input [OAW-1:0] base);
        integer q, r;
        begin
            for (q = 0; q < PE; q = q + 1)
                for (r = 0; r < SIMD; r = r + 1)
                    operand_at[(q * SIMD + r) * WBITS +: WBITS] = omem[base + q * MW + r];
        end
    endfunction

    // the input a weight lane multiplies: its lane of the word (dense), or its position in its group
    function [ABITS-1:0] operand(input integer p, input integer s);
        begin
            if (SPARSE) operand = xbuf[((sfr * SIMD + s) / N) * M + ir[(p * SIMD + s) * IB +: IB]];
            else operand = xr[s * ABITS +: ABITS];
        end
    endfunction

    // --- the multipliers in two stages: the partial products of the weight's low and high bits
    // (LUT_MULT = 1; the whole product with a multiplier block), then their sum in tree level 0 ---
    localparam integer LW = PE * NP;  // one tree level: PE x NP values, levels stored one after another
    localparam integer HALF = (WBITS + 2) / 2;  // rows 0 .. HALF-1 of the sign-extended weight, then the rest
    reg signed [ACCBITS-1:0] plo [0:LW-1];
    reg signed [ACCBITS-1:0] phi [0:LW-1];
    reg              vm, firstm, lastm;
    reg [NFB-1:0]    nfm;
    reg [GSW-1:0]    gm;                 // the group shifts, beside the products and the tree levels
    reg [(LEVELS+1)*GSW-1:0] gst;       // level l's at [l*GSW +: GSW]: registers (an array here was a memory,
                                         // which synthesis kept, read by nothing, in every block without groups)
    reg signed [ACCBITS-1:0] tree [0:(LEVELS+1)*LW-1];
    reg [LEVELS:0]   vt, firstt, lastt;
    reg [NFB-1:0]    nft [0:LEVELS];
    integer p, s, l, j;
    always @(posedge clk) begin
        if (rst) begin
            vm <= 1'b0;
            vt <= 0;
        end else if (en) begin
            vm <= vr;
            firstm <= firstr;
            lastm <= lastr;
            nfm <= nfr;
            if (GSH) gm <= gr;
            for (p = 0; p < PE; p = p + 1)
                for (s = 0; s < NP; s = s + 1) begin
                    plo[p * NP + s] <= (s < SIMD) ? product(operand(p, s), wr[(p * SIMD + s) * WBITS +: WBITS], 0, HALF) : 0;
                    phi[p * NP + s] <= (s < SIMD) ? product(operand(p, s), wr[(p * SIMD + s) * WBITS +: WBITS], HALF, MB) : 0;
                end
            vt[0] <= vm;
            firstt[0] <= firstm;
            lastt[0] <= lastm;
            nft[0] <= nfm;
            if (GSH) gst[0 +: GSW] <= gm;
            for (p = 0; p < PE; p = p + 1)
                for (s = 0; s < NP; s = s + 1)
                    tree[p * NP + s] <= (plo[p * NP + s] + phi[p * NP + s]) <<< group_shift(gm, p, s, 0);
            for (l = 0; l < LEVELS; l = l + 1) begin
                vt[l + 1] <= vt[l];
                firstt[l + 1] <= firstt[l];
                lastt[l + 1] <= lastt[l];
                nft[l + 1] <= nft[l];
                if (GSH) gst[(l + 1) * GSW +: GSW] <= gst[l * GSW +: GSW];
                for (p = 0; p < PE; p = p + 1)
                    for (j = 0; j < (NP >> (l + 1)); j = j + 1)
                        tree[(l + 1) * LW + p * NP + j] <= (tree[l * LW + p * NP + 2 * j] + tree[l * LW + p * NP + 2 * j + 1])
                                                           <<< group_shift(gst[l * GSW +: GSW], p, j, l + 1);
            end
        end
    end

    // --- accumulate and add the bias (stage A); requantize into the output register (stage B) ------
    reg signed [ACCBITS-1:0] acc [0:PE-1];
    reg signed [ACCBITS-1:0] total;
    reg                      va;                 // stage A holds a finished output word
    reg [PE*ACCBITS-1:0]     biased;             // its accumulators plus bias
    localparam integer SRW = (GROUPS * MH > 2) ? $clog2(GROUPS * MH) : 1;  // the rows, no wider
    reg [SRW-1:0]            srow_a;             // and their shift table row (lane p's entry at srow_a + p)
    localparam integer TABLE = ACTIVATION && !SHIFT_CONST;
    wire [PE*OBITS-1:0]      chosen;             // with a shift table: the lanes' requantized outputs
    assign requantizing = vt[LEVELS] && lastt[LEVELS];
    always @(posedge clk) begin
        if (rst) begin
            va <= 1'b0;
            out_valid <= 1'b0;
        end else if (en) begin
            va <= requantizing;
            for (p = 0; p < PE; p = p + 1) begin
                total = (firstt[LEVELS] ? 0 : acc[p]) + tree[LEVELS * LW + p * NP];
                if (vt[LEVELS]) acc[p] <= total;
                if (requantizing) begin
                    biased[p * ACCBITS +: ACCBITS] <= total + (DYNAMIC ? 0 : bmem[group * MH + nft[LEVELS] * PE + p]);
                end
            end
            if (requantizing) srow_a <= group * MH + nft[LEVELS] * PE;
            out_valid <= va;
            if (va)
                for (p = 0; p < PE; p = p + 1)
                    out_data[p * OBITS +: OBITS] <= TABLE ? chosen[p * OBITS +: OBITS]
                                                  : activate($signed(biased[p * ACCBITS +: ACCBITS]));
        end
    end

    // a shift table: per lane, the kept-apart requantizers of SHIFT_MIN..SHIFT_MAX (rtl/common/
    // shift_requantizer.vh, as rtl/requant) and the choice among them by the lane's entry, looked up at
    // the registered row in the table's constants (mem2reg: Yosys made it a memory and moved the row
    // register into its read port). Synthesis then sees which shifts a lane's entries take and removes
    // the other requantizers, as the model prices them (a registered shift, or a memory, hid that: 8 x 4,
    // PE = 1, entries {1, 5, 6} built all six of 1..6, 562 LUTs; now 353)
    genvar gp, gk;
    generate
        if (TABLE) begin : table_path
            for (gp = 0; gp < PE; gp = gp + 1) begin : lane
                wire [(SHIFT_MAX - SHIFT_MIN + 1)*OBITS-1:0] q;
                for (gk = SHIFT_MIN; gk <= SHIFT_MAX; gk = gk + 1) begin : shift
                    shift_requantizer #(.IBITS(ACCBITS), .OBITS(OBITS), .QMIN(QMIN), .QMAX(QMAX), .SHIFT(gk))
                        rq (.v(biased[gp * ACCBITS +: ACCBITS]), .q(q[(gk - SHIFT_MIN) * OBITS +: OBITS]));
                end
                assign chosen[gp * OBITS +: OBITS] = choose_shift(q, smem[srow_a + gp]);
            end
        end else begin : no_table
            assign chosen = {PE*OBITS{1'b0}};
        end
    endgenerate

    localparam integer MA = ABITS + 1;  // operands extended by a sign bit
    localparam integer MB = WBITS + 1;
    // rows first .. last-1 of x * w, both extended by a sign bit
    function signed [ACCBITS-1:0] product(input [ABITS-1:0] x, input [WBITS-1:0] w, input integer first,
                                          input integer last);
        reg signed [ABITS:0] xs;
        reg signed [WBITS:0] ws;
        begin
            xs = SIGNED_IN ? {x[ABITS-1], x} : {1'b0, x};
            ws = SIGNED_W ? {w[WBITS-1], w} : {1'b0, w};
            product = multiply_rows(xs, ws, first, last);
        end
    endfunction

    `include "multiply.vh"

    // the left shift of PE p's group j of a word into tree level ``level``: its group shift at level GL,
    // where the groups' sums are complete, none elsewhere, nor for the padding lanes' groups (j >= NGW)
    function [GSBITS-1:0] group_shift(input [GSW-1:0] word, input integer p, input integer j, input integer level);
        group_shift = (GSH && level == GL && j < NGW) ? word[(p * NGW + j) * GSBITS +: GSBITS] : {GSBITS{1'b0}};
    endfunction

    `include "round_shift.vh"
    `include "shift_table.vh"

    // requantize by the one shift (SHIFT_CONST) or pass the accumulator through (a table: ``chosen``)
    function [OBITS-1:0] activate(input signed [ACCBITS-1:0] x);
        activate = (ACTIVATION == 0) ? x[OBITS-1:0] : requantize(x, SHIFT);
    endfunction
endmodule

`default_nettype wire
