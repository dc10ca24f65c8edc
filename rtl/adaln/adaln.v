// DiT's integer adaLN, LayerNorm(x) * (1 + scale) + shift, over each token of CHANNELS integers,
// bit-exact with hwsim.intsim.ops.norm.modulate_ref (docs/numerics.md). Per token q[0..C-1]:
//   S = sum q, Q = sum q^2, D = C*Q - S^2, k = max(0, ceil((bitlen(D) - 32) / 2)), m = D >> 2k,
//   r = isqrt(floor(2^62 / m))  (r = k = 0 when D = 0),
//   z = round_shift((C*q - S) * r, 31 + k - FT),
//   total = (z * (scale[c] + 2^-E_SCALE) << (E_SCALE - FT - E_MIN)) + (shift[c] << (E_SHIFT - E_MIN)),
//   y = clamp(round_shift(total, E_OUT - E_MIN), QMIN, QMAX),  E_MIN = min(E_SCALE - FT, E_SHIFT).
// scale and shift are one row of CHANNELS values per image (the step's table rows), used by the
// image's TOKENS tokens; two row banks per port, so the next image's rows load while this one runs.
// Three overlapped stages per token, like rtl/groupnorm's phases but pipelined over tokens:
//   LOAD  takes the token (C/PE words) into a circular buffer while S and Q accumulate;
//   SOLVE computes r and k serially (1 set-up cycle, the 63-step restoring division of 2^62 by m and
//         the 32-step square root, UNROLL steps per cycle, 1 store cycle);
//   EMIT  reads the token back, one word per cycle, through a 3-stage pipeline (buffer and row read,
//         z, modulation and requantization).
// While token j is emitted, token j+1 is being solved and token j+2 loads; the buffer (2*C/PE words
// if SOLVE > C/PE, else C/PE + SOLVE + 1) is the least that lets none of the three wait for the
// others without back-pressure, so an image takes TOKENS * max(C/PE, SOLVE) cycles, with
// SOLVE = ceil(95 / UNROLL) + 2, and the first output leaves C/PE + SOLVE + 3 cycles after the first
// input (measured, README.md).
// round_shift rounds half to even. The arithmetic is done in 64 bits (the numerics keep every
// intermediate inside int64), the registers are sized to their values.
// Per-timestep-group output exponents (GROUPS > 1): E_OUT_FILE holds GROUPS signed exponents (8 bits)
// used instead of E_OUT; every image takes its group on the g port (rtl/common/group_hold.vh) before
// its first token is emitted. The scale and shift rows are per step already.
`default_nettype none
`include "group_hold.vh"

module adaln #(
    parameter integer CHANNELS = 8,
    parameter integer PE = 2,
    parameter integer TOKENS = 4,     // tokens per image (per scale/shift row)
    parameter integer IBITS = 8,
    parameter integer OBITS = 8,
    parameter integer SBITS = 16,     // scale row values
    parameter integer HBITS = 16,     // shift row values
    parameter integer FT = 12,        // fraction bits of z
    parameter integer E_SCALE = -15,  // exponent of scale (<= 0: 1 + scale is 2^-E_SCALE + scale)
    parameter integer E_SHIFT = -15,  // exponent of shift
    parameter integer E_OUT = -4,     // exponent of the output
    parameter signed [63:0] QMIN = -128,  // 64 bits: outputs may be wider than 32
    parameter signed [63:0] QMAX = 127,
    parameter integer UNROLL = 1,     // square-root solver steps per cycle (1..95)
    parameter integer BUFFER = 0,     // token buffer words (>= C/PE); 0: the least that never stalls
    parameter integer GROUPS = 1,
    parameter integer GBITS = 8,
    parameter E_OUT_FILE = "e_out.mem"
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [PE*IBITS-1:0] in_data,
    input  wire                scale_valid,
    output wire                scale_ready,
    input  wire [PE*SBITS-1:0] scale_data,
    input  wire                shift_valid,
    output wire                shift_ready,
    input  wire [PE*HBITS-1:0] shift_data,
    output reg                 out_valid,
    input  wire                out_ready,
    output reg  [PE*OBITS-1:0] out_data,
    input  wire                g_valid,
    output wire                g_ready,
    input  wire [GBITS-1:0]    g_data
);
    localparam integer FOLDS = CHANNELS / PE;
    localparam integer ITERS = 95;  // 63 division steps, then 32 square-root steps
    localparam integer SOLVE = (ITERS + UNROLL - 1) / UNROLL + 2;
    localparam integer DEPTH = (BUFFER > 0) ? BUFFER : (SOLVE > FOLDS) ? 2 * FOLDS : FOLDS + SOLVE + 1;
    localparam integer CB = (CHANNELS <= 1) ? 1 : $clog2(CHANNELS);
    localparam integer SB = IBITS + CB + 1;       // S
    localparam integer QB = 2 * IBITS + CB;       // Q (unsigned)
    localparam integer ZB = FT + CB + 2;          // z: |z| <= sqrt(C - 1) * 2^FT + 1
    localparam integer FB = (FOLDS <= 1) ? 1 : $clog2(FOLDS);
    localparam integer TB = (TOKENS <= 1) ? 1 : $clog2(TOKENS);
    localparam integer PB = (DEPTH <= 1) ? 1 : $clog2(DEPTH);
    localparam integer UB = $clog2(DEPTH + 1);
    localparam integer E_PROD = E_SCALE - FT;
    localparam integer E_MIN = (E_PROD < E_SHIFT) ? E_PROD : E_SHIFT;
    localparam signed [63:0] ONE = 64'sd1 <<< (-E_SCALE);

    // --- LOAD: the token buffer, S and Q ----------------------------------------------------------
    reg [PE*IBITS-1:0] buffer [0:DEPTH-1];
    reg [PB-1:0] wptr, rptr;
    reg [UB-1:0] used;                 // words in the buffer
    reg [FB-1:0] lf;                   // fold of the next word taken
    reg signed [SB-1:0] s_acc, st_s;   // running sums; the last token's, for the solver
    reg [QB-1:0] q_acc, st_q;
    reg st_valid;                      // st_s, st_q wait for the solver
    reg sv_busy;
    wire sv_take = st_valid && !sv_busy;
    assign in_ready = (used < DEPTH) && ((lf != FOLDS - 1) || !st_valid || sv_take);
    wire take = in_valid && in_ready;
    wire rfire;                        // EMIT reads a word (below)

    always @(posedge clk)
        if (take) buffer[wptr] <= in_data;

    integer p;
    reg signed [63:0] x, s_new, q_new;
    always @(posedge clk) begin
        if (rst) begin
            wptr <= 0;
            lf <= 0;
            s_acc <= 0;
            q_acc <= 0;
        end else if (take) begin
            wptr <= (wptr == DEPTH - 1) ? 0 : wptr + 1;
            s_new = s_acc;
            q_new = q_acc;
            for (p = 0; p < PE; p = p + 1) begin
                x = $signed(in_data[p * IBITS +: IBITS]);
                s_new = s_new + x;
                q_new = q_new + x * x;
            end
            if (lf == FOLDS - 1) begin
                lf <= 0;
                s_acc <= 0;
                q_acc <= 0;
                st_s <= s_new[SB-1:0];
                st_q <= q_new[QB-1:0];
            end else begin
                lf <= lf + 1;
                s_acc <= s_new[SB-1:0];
                q_acc <= q_new[QB-1:0];
            end
        end
    end

    always @(posedge clk) begin
        if (rst) used <= 0;
        else used <= used + take - rfire;
    end

    // --- SOLVE: r = isqrt(2^62 / m) and k, one token at a time -----------------------------------
    reg sv_store;                      // the last step done: r waits for the sol_* registers
    reg [7:0] sv_it;                   // steps done
    reg [63:0] m, rem, quo, num, res, bitv;
    reg [5:0] sv_k;
    reg signed [SB-1:0] sv_s;
    reg sol_valid;                     // a solved token waits for EMIT
    reg signed [SB-1:0] sol_s;
    reg [31:0] sol_r;
    reg [5:0] sol_k;
    wire start;                        // EMIT takes the solved token (below)

    reg signed [63:0] d, sq, ss;
    reg [63:0] t_rem, t_quo, t_num, t_res, t_bitv;
    reg [7:0] kk;
    integer b, len, u, i;
    always @(posedge clk) begin
        if (rst) begin
            st_valid <= 1'b0;
            sv_busy <= 1'b0;
            sv_store <= 1'b0;
            sv_it <= 0;
            sol_valid <= 1'b0;
        end else begin
            if (sv_take) st_valid <= 1'b0;
            if (take && (lf == FOLDS - 1)) st_valid <= 1'b1;
            if (start) sol_valid <= 1'b0;
            if (sv_take) begin  // set-up: D, k, m
                sq = st_q;
                ss = st_s;
                d = CHANNELS * sq - ss * ss;
                len = 0;
                for (b = 0; b < 64; b = b + 1)
                    if (d[b]) len = b + 1;
                kk = (len > 32) ? (len - 31) / 2 : 0;
                m <= d >> (2 * kk);
                sv_k <= kk;
                sv_s <= st_s;
                rem <= 0;
                quo <= 0;
                sv_it <= 0;
                sv_busy <= 1'b1;
                sv_store <= 1'b0;
            end else if (sv_busy && !sv_store) begin
                t_rem = rem;
                t_quo = quo;
                t_num = num;
                t_res = res;
                t_bitv = bitv;
                for (u = 0; u < UNROLL; u = u + 1) begin
                    i = sv_it + u;
                    if (i < 63) begin  // restoring division of 2^62 by m, MSB first
                        t_rem = (t_rem << 1) | (i == 0);
                        if (t_rem >= m) begin
                            t_rem = t_rem - m;
                            t_quo = (t_quo << 1) | 1;
                        end else t_quo = t_quo << 1;
                    end else if (i < ITERS) begin  // bit-serial integer square root of the quotient
                        if (i == 63) begin
                            t_num = t_quo;
                            t_res = 0;
                            t_bitv = 64'd1 << 62;
                        end
                        if (t_num >= t_res + t_bitv) begin
                            t_num = t_num - (t_res + t_bitv);
                            t_res = (t_res >> 1) + t_bitv;
                        end else t_res = t_res >> 1;
                        t_bitv = t_bitv >> 2;
                    end
                end
                rem <= t_rem;
                quo <= t_quo;
                num <= t_num;
                res <= t_res;
                bitv <= t_bitv;
                sv_it <= sv_it + UNROLL;
                if (sv_it + UNROLL >= ITERS) sv_store <= 1'b1;
            end else if (sv_busy && (!sol_valid || start)) begin  // store
                sol_s <= sv_s;
                sol_r <= (m == 0) ? 32'd0 : res[31:0];
                sol_k <= sv_k;
                sol_valid <= 1'b1;
                sv_busy <= 1'b0;
                sv_store <= 1'b0;
            end
        end
    end

    // --- scale and shift rows: two banks per port, one image each --------------------------------
    reg [PE*SBITS-1:0] srow [0:2*FOLDS-1];
    reg [PE*HBITS-1:0] hrow [0:2*FOLDS-1];
    reg [1:0] sfull, hfull;
    reg swb, hwb, rbank;
    reg [FB-1:0] swf, hwf;
    assign scale_ready = !sfull[swb];
    assign shift_ready = !hfull[hwb];
    wire sload = scale_valid && scale_ready;
    wire hload = shift_valid && shift_ready;
    wire image_done;                   // EMIT read the image's last word (below)

    always @(posedge clk) begin
        if (sload) srow[swb * FOLDS + swf] <= scale_data;
        if (hload) hrow[hwb * FOLDS + hwf] <= shift_data;
    end

    always @(posedge clk) begin
        if (rst) begin
            sfull <= 2'b00;
            hfull <= 2'b00;
            swb <= 1'b0;
            hwb <= 1'b0;
            rbank <= 1'b0;
            swf <= 0;
            hwf <= 0;
        end else begin
            if (sload) begin
                if (swf == FOLDS - 1) begin
                    swf <= 0;
                    sfull[swb] <= 1'b1;
                    swb <= ~swb;
                end else swf <= swf + 1;
            end
            if (hload) begin
                if (hwf == FOLDS - 1) begin
                    hwf <= 0;
                    hfull[hwb] <= 1'b1;
                    hwb <= ~hwb;
                end else hwf <= hwf + 1;
            end
            if (image_done) begin
                sfull[rbank] <= 1'b0;
                hfull[rbank] <= 1'b0;
                rbank <= ~rbank;
            end
        end
    end

    // --- EMIT: read back, normalize, modulate; out_valid/out_ready back-pressure every stage ------
    wire en = !out_valid || out_ready;
    reg act;                           // a token is being read (after its first word)
    reg [FB-1:0] ef;                   // its next fold
    reg [TB-1:0] et;                   // tokens of the image read
    reg signed [SB-1:0] a_s;
    reg [31:0] a_r;
    reg [5:0] a_k;
    wire have_g;
    wire [GBITS-1:0] group;
    reg [GBITS-1:0] g1, g2;                       // the image's timestep group in stages 1 and 2
    reg signed [7:0] e_out_of [0:GROUPS-1];
    initial if (GROUPS > 1) $readmemh(E_OUT_FILE, e_out_of);
    assign start = en && !act && sol_valid && sfull[rbank] && hfull[rbank] && have_g;
    assign rfire = (en && act) || start;
    group_hold #(.GROUPS(GROUPS), .GBITS(GBITS), .USES(TOKENS * FOLDS)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(rfire), .ok(have_g), .group(group));
    wire [FB-1:0] rf = act ? ef : {FB{1'b0}};
    assign image_done = rfire && (rf == FOLDS - 1) && (et == TOKENS - 1);

    reg v1, v2;                                   // stage 1: the word, its rows and token
    reg [PE*IBITS-1:0] w1;
    reg [PE*SBITS-1:0] sc1, sc2;
    reg [PE*HBITS-1:0] sh1, sh2;
    reg signed [SB-1:0] s1;
    reg [31:0] r1;
    reg [5:0] k1;
    reg [PE*ZB-1:0] z2;                           // stage 2: z per lane
    reg signed [63:0] cen, xr, z, zz, sc, prod, total;
    integer lane, sh;
    always @(posedge clk) begin
        if (rst) begin
            act <= 1'b0;
            ef <= 0;
            et <= 0;
            rptr <= 0;
            v1 <= 1'b0;
            v2 <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            if (start) begin
                a_s <= sol_s;
                a_r <= sol_r;
                a_k <= sol_k;
            end
            if (rfire) begin
                rptr <= (rptr == DEPTH - 1) ? 0 : rptr + 1;
                if (rf == FOLDS - 1) begin
                    act <= 1'b0;
                    ef <= 0;
                    et <= (et == TOKENS - 1) ? 0 : et + 1;
                end else begin
                    act <= 1'b1;
                    ef <= rf + 1;
                end
            end
            if (en) begin
                v1 <= rfire;
                g1 <= group;
                g2 <= g1;
                w1 <= buffer[rptr];
                sc1 <= srow[rbank * FOLDS + rf];
                sh1 <= hrow[rbank * FOLDS + rf];
                s1 <= act ? a_s : sol_s;
                r1 <= act ? a_r : sol_r;
                k1 <= act ? a_k : sol_k;

                v2 <= v1;
                sc2 <= sc1;
                sh2 <= sh1;
                sh = k1;
                sh = sh + 31 - FT;
                for (lane = 0; lane < PE; lane = lane + 1) begin
                    cen = CHANNELS * $signed(w1[lane * IBITS +: IBITS]) - s1;
                    xr = cen * $signed({1'b0, r1});
                    z = round_shift(xr, sh);
                    z2[lane * ZB +: ZB] <= z[ZB-1:0];
                end

                out_valid <= v2;
                for (lane = 0; lane < PE; lane = lane + 1) begin
                    zz = $signed(z2[lane * ZB +: ZB]);
                    sc = $signed(sc2[lane * SBITS +: SBITS]);
                    prod = zz * (sc + ONE);
                    total = $signed(sh2[lane * HBITS +: HBITS]);
                    total = (prod <<< (E_PROD - E_MIN)) + (total <<< (E_SHIFT - E_MIN));
                    out_data[lane * OBITS +: OBITS] <= requantize(total, (GROUPS > 1 ? e_out_of[g2] : E_OUT) - E_MIN);
                end
            end
        end
    end

    `include "round_shift.vh"

endmodule

`default_nettype wire
