// Integer softmax over rows of LENGTH scores (docs/numerics.md), bit-exact with
// hwsim.intsim.ops.softmax.softmax_ref:
//   m = max(row),  e = TABLE[min(m - q, TABLE_ENTRIES - 1)],  total = sum e,
//   out = floor((2*e*2^FO + total) / (2*total))      (0 <= out <= 2^FO, FO + 1 bits).
// Three engines work on consecutive rows at once, each row in one slot of a row buffer (SLOTS slots
// of LENGTH/PE words, slots used in turn):
//   LOAD  takes a row from the stream into its slot and tracks its maximum m;
//   SUM   reads a loaded slot, looks e up per lane and accumulates total (free running);
//   EMIT  reads a summed slot, looks e up again and divides: a restoring divider with one stage
//         per quotient bit (FO + 1 stages), one word per cycle, every stage moved by the pipeline
//         enable en = !out_valid || out_ready, so back-pressure holds the whole emit pipeline.
// LOAD may refill the slot EMIT is reading, word by word behind EMIT's read pointer, so at full
// rate a row moves every LENGTH/PE cycles; SLOTS = 2 + ceil(3 / (LENGTH/PE)) slots cover the few
// cycles between a row's last input and its first read by EMIT when rows are very short.
// The table is read twice per lane and cycle (SUM and EMIT): synthesis duplicates the ROM.
// Per-timestep-group tables (GROUPS > 1): TABLE_FILE holds GROUPS tables of TABLE_ENTRIES, table g at
// g*TABLE_ENTRIES; every evaluation (ROWS rows) takes its group on the g port (rtl/common/group_hold.vh)
// as its first word loads, and each slot keeps the group of its row for SUM and EMIT.
// Vendor-neutral Verilog-2005: memories and adders are inferred.
`default_nettype none
`include "group_hold.vh"

module softmax #(
    parameter integer LENGTH = 8,           // row length (NumChannels)
    parameter integer PE = 2,               // lanes per stream word; divides LENGTH
    parameter integer IBITS = 8,            // signed input scores
    parameter integer OBITS = 10,           // output lane width, >= FO + 1 (FO + 2 read as signed)
    parameter integer FO = 8,               // output fraction bits: out is the probability * 2^FO
    parameter integer TBITS = 17,           // unsigned table entries
    parameter integer TABLE_ENTRIES = 256,  // TABLE[k], k = m - q saturated at TABLE_ENTRIES - 1
    parameter integer GROUPS = 1,
    parameter integer ROWS = 1,             // rows per evaluation (grouped tables only)
    parameter integer GBITS = 8,
    parameter TABLE_FILE = "table.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*IBITS-1:0] in_data,
    output wire                out_valid,
    input  wire                out_ready,
    output wire [PE*OBITS-1:0] out_data,
    input  wire                g_valid,
    output wire                g_ready,
    input  wire [GBITS-1:0]    g_data
);
    localparam integer FOLDS = LENGTH / PE;                // words per row
    localparam integer SLOTS = 2 + (FOLDS + 2) / FOLDS;    // 2 + ceil(3 / FOLDS): 3, 4 or 5
    localparam integer WORDS = SLOTS * FOLDS;
    localparam integer AB = $clog2(WORDS);                 // WORDS >= 3
    localparam integer CB = $clog2(FOLDS + 1);
    localparam integer SBITS = TBITS + ((LENGTH > 1) ? $clog2(LENGTH) : 0);  // total < 2^SBITS
    localparam integer TW = (SBITS > FO + 1) ? SBITS : FO + 1;  // total, wide enough for bit FO
    localparam integer RW = SBITS + 2;                     // divider: remainder < 2*total, shifted
    localparam integer QW = FO + 1;                        // quotient bits
    localparam integer KB = IBITS + 1;                     // m - q in [0, 2^IBITS - 1]
    localparam integer LAST = TABLE_ENTRIES - 1;
    localparam integer TB = (TABLE_ENTRIES > 1) ? $clog2(TABLE_ENTRIES) : 1;  // table address
    localparam integer ST = FO + 1;                        // divider stages
    localparam [1:0] FREE = 2'd0, LOADED = 2'd1, SUMMED = 2'd2;

    // --- memories and per-slot state ---------------------------------------------------------
    reg [PE*IBITS-1:0] buffer [0:WORDS-1];
    reg [TBITS-1:0] table_mem [0:GROUPS*TABLE_ENTRIES-1];
    initial $readmemh(TABLE_FILE, table_mem);
    reg [2*SLOTS-1:0]     state;     // per slot: FREE, LOADED (max known), SUMMED (total known)
    reg [SLOTS*IBITS-1:0] max_of;    // per slot: the row's maximum
    reg [SLOTS*TW-1:0]    total_of;  // per slot: the row's sum of e
    reg [SLOTS*GBITS-1:0] group_of;  // per slot: the row's timestep group

    reg [2:0] ls, ss, es;            // the slot LOAD, SUM and EMIT work on
    reg [CB-1:0] lw, sr, er;         // words written / read so far in that slot

    function [2:0] next(input [2:0] s);
        next = (s == SLOTS - 1) ? 3'd0 : s + 3'd1;
    endfunction

    // word i of slot s is at s * FOLDS + i: wiring when FOLDS is a power of two; otherwise a
    // multiplier in the read cycle (a share's critical path), so each engine counts its address
    // (la, sa, ea: the words it took or read, modulo WORDS, since its slots are used in turn)
    localparam integer COUNTED = (FOLDS & (FOLDS - 1)) != 0;
    reg [AB-1:0] la, sa, ea;
    function [AB-1:0] addr(input [2:0] s, input [CB-1:0] i, input [AB-1:0] counted);
        addr = COUNTED ? counted : s * FOLDS + i;
    endfunction
    function [AB-1:0] advance(input [AB-1:0] a);
        advance = (a == WORDS - 1) ? 0 : a + 1;
    endfunction

    // table index of score q in a row of maximum m: min(m - q, LAST)
    function [TB-1:0] tindex(input [IBITS-1:0] m, input [IBITS-1:0] q);
        reg [KB-1:0] d;
        begin
            d = {m[IBITS-1], m} - {q[IBITS-1], q};
            tindex = (d > LAST) ? LAST : d;
        end
    endfunction

    // --- LOAD: the stream into the slot, running maximum --------------------------------------
    // The slot is free, or EMIT is reading it and has already read the word written next.
    wire [1:0] lstate = state[2 * ls +: 2];
    wire have_g;
    wire [GBITS-1:0] group;
    assign in_ready = have_g && ((lstate == FREE) || ((lstate == SUMMED) && (es == ls) && (er > lw)));
    wire take = in_valid && in_ready;
    group_hold #(.GROUPS(GROUPS), .GBITS(GBITS), .USES(ROWS * FOLDS)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(take), .ok(have_g), .group(group));
    wire lend = take && (lw == FOLDS - 1);
    reg signed [IBITS-1:0] runmax, wmax;
    integer lp;
    always @* begin
        wmax = (lw == 0) ? $signed(in_data[IBITS-1:0]) : runmax;
        for (lp = 0; lp < PE; lp = lp + 1)
            if ($signed(in_data[lp * IBITS +: IBITS]) > wmax) wmax = $signed(in_data[lp * IBITS +: IBITS]);
    end
    always @(posedge clk) begin
        if (take) begin
            buffer[addr(ls, lw, la)] <= in_data;
            runmax <= wmax;
            if (lend) begin  // when the slot is free: EMIT has read all of its previous row
                max_of[ls * IBITS +: IBITS] <= wmax;
                group_of[ls * GBITS +: GBITS] <= group;
            end
        end
    end
    always @(posedge clk) begin
        if (rst) begin
            ls <= 0;
            lw <= 0;
            la <= 0;
        end else if (take) begin
            lw <= lend ? 0 : lw + 1;
            la <= advance(la);
            if (lend) ls <= next(ls);
        end
    end

    // --- SUM: read back, e per lane, total (free running) -------------------------------------
    wire sfire = (state[2 * ss +: 2] == LOADED);
    reg sv1, sv2, sfirst1, sfirst2, slast1, slast2;
    reg [2:0] sslot1, sslot2;
    reg [PE*IBITS-1:0] sw1;
    reg [IBITS-1:0] smax1;
    reg [GBITS-1:0] sg1;
    reg [PE*TBITS-1:0] se2;
    reg [SBITS-1:0] sacc, ssum;
    wire sdone = sv2 && slast2;  // total of slot sslot2 is known (written this cycle)
    integer sp;
    always @(posedge clk) begin
        if (rst) begin
            ss <= 0;
            sr <= 0;
            sa <= 0;
            sv1 <= 1'b0;
            sv2 <= 1'b0;
        end else begin
            if (sfire) begin
                sr <= (sr == FOLDS - 1) ? 0 : sr + 1;
                sa <= advance(sa);
                if (sr == FOLDS - 1) ss <= next(ss);
            end
            sv1 <= sfire;
            sv2 <= sv1;
        end
    end
    always @(posedge clk) begin
        // stage 1: buffer read
        sw1 <= buffer[addr(ss, sr, sa)];
        smax1 <= max_of[ss * IBITS +: IBITS];
        sg1 <= group_of[ss * GBITS +: GBITS];
        sfirst1 <= (sr == 0);
        slast1 <= (sr == FOLDS - 1);
        sslot1 <= ss;
        // stage 2: table read
        for (sp = 0; sp < PE; sp = sp + 1)
            se2[sp * TBITS +: TBITS] <= table_mem[sg1 * TABLE_ENTRIES + tindex(smax1, sw1[sp * IBITS +: IBITS])];
        sfirst2 <= sfirst1;
        slast2 <= slast1;
        sslot2 <= sslot1;
        // stage 3: accumulate
        if (sv2) begin
            ssum = sfirst2 ? 0 : sacc;
            for (sp = 0; sp < PE; sp = sp + 1)
                ssum = ssum + se2[sp * TBITS +: TBITS];
            sacc <= ssum;
            if (slast2) total_of[sslot2 * TW +: TW] <= ssum;
        end
    end

    // --- EMIT: read back, e per lane, divide; the pipeline moves when the output is free ------
    wire en = !out_valid || out_ready;
    wire efire = en && (state[2 * es +: 2] == SUMMED);
    wire eend = efire && (er == FOLDS - 1);
    reg ev1, ev2, ev3;
    reg [PE*IBITS-1:0] ew1;
    reg [IBITS-1:0] emax1;
    reg [GBITS-1:0] eg1;
    reg [TW-1:0] etot1, etot2, etot3;
    reg [PE*TBITS-1:0] ee2, ee3;  // the table's output (a block RAM's), then registered in the fabric
    reg [ST-1:0] dv;              // divider stage j: valid, total, remainders, quotients
    reg [ST*TW-1:0] dtot;
    reg [ST*PE*RW-1:0] drem;
    reg [ST*PE*QW-1:0] dquo;
    always @(posedge clk) begin
        if (rst) begin
            es <= 0;
            er <= 0;
            ea <= 0;
            ev1 <= 1'b0;
            ev2 <= 1'b0;
            ev3 <= 1'b0;
            dv <= 0;
        end else begin
            if (efire) begin
                er <= eend ? 0 : er + 1;
                ea <= advance(ea);
                if (eend) es <= next(es);
            end
            if (en) begin
                ev1 <= efire;
                ev2 <= ev1;
                ev3 <= ev2;
                dv <= {dv[ST-2:0], ev3};
            end
        end
    end

    // one restoring step: shift bit b into remainder r, subtract 2*total if it fits -> {q, r'}
    function [RW:0] dstep(input [RW-1:0] r, input [TW-1:0] tot, input b);
        reg [RW-1:0] t, d;
        begin
            t = {r[RW-2:0], b};
            d = {tot[SBITS-1:0], 1'b0};
            dstep = (t >= d) ? {1'b1, t - d} : {1'b0, t};
        end
    endfunction

    integer ep, j;
    reg [RW-1:0] r0;
    reg [RW:0] step;
    always @(posedge clk) begin
        if (en) begin
            // stage 1: buffer read, the slot's maximum and total
            ew1 <= buffer[addr(es, er, ea)];
            emax1 <= max_of[es * IBITS +: IBITS];
            eg1 <= group_of[es * GBITS +: GBITS];
            etot1 <= total_of[es * TW +: TW];
            // stage 2: table read
            for (ep = 0; ep < PE; ep = ep + 1)
                ee2[ep * TBITS +: TBITS] <= table_mem[eg1 * TABLE_ENTRIES + tindex(emax1, ew1[ep * IBITS +: IBITS])];
            etot2 <= etot1;
            // stage 3: the table's word into fabric registers (a block RAM's output into the divider's
            // first adder and compare was the longest path of a whole-denoiser share)
            ee3 <= ee2;
            etot3 <= etot2;
            // divider: N = e*2^(FO+1) + total, D = 2*total, N < D*2^(FO+1); the remainder starts
            // at N >> (FO+1) = e + (total >> (FO+1)) < D, and stage j shifts in bit FO-j of N,
            // which is bit FO-j of total
            dtot[0 +: TW] <= etot3;
            for (ep = 0; ep < PE; ep = ep + 1) begin
                r0 = ee3[ep * TBITS +: TBITS] + (etot3 >> (FO + 1));
                step = dstep(r0, etot3, etot3[FO]);
                drem[ep * RW +: RW] <= step[RW-1:0];
                dquo[ep * QW +: QW] <= step[RW];
            end
            for (j = 1; j < ST; j = j + 1) begin
                dtot[j * TW +: TW] <= dtot[(j - 1) * TW +: TW];
                for (ep = 0; ep < PE; ep = ep + 1) begin
                    step = dstep(drem[((j - 1) * PE + ep) * RW +: RW], dtot[(j - 1) * TW +: TW],
                                 dtot[(j - 1) * TW + FO - j]);
                    drem[(j * PE + ep) * RW +: RW] <= step[RW-1:0];
                    dquo[(j * PE + ep) * QW +: QW] <= {dquo[((j - 1) * PE + ep) * QW +: QW - 1], step[RW]};
                end
            end
        end
    end

    assign out_valid = dv[ST-1];
    genvar g;
    generate
        for (g = 0; g < PE; g = g + 1) begin : lane
            assign out_data[g * OBITS +: OBITS] = dquo[((ST - 1) * PE + g) * QW +: QW];
        end
    endgenerate

    // --- slot states: LOAD fills a FREE slot, SUM sums a LOADED one, EMIT frees a SUMMED one --
    always @(posedge clk) begin
        if (rst) state <= 0;
        else begin
            if (lend) state[2 * ls +: 2] <= LOADED;
            if (sdone) state[2 * sslot2 +: 2] <= SUMMED;
            if (eend) state[2 * es +: 2] <= FREE;
        end
    end

endmodule

`default_nettype wire
