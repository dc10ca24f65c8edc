// Integer GroupNorm (docs/numerics.md) of one channels-last map per evaluation, bit-exact with
// hwsim.intsim.ops.norm.groupnorm_ref. Per group of n = PIXELS*CHANNELS/GROUPS integers q:
//   S = sum q, Q = sum q^2, D = n*Q - S^2, k = max(0, ceil((bitlen(D) - 32) / 2)), m = D >> 2k,
//   r = isqrt(floor(2^62 / m))  (r = k = 0 when D = 0),
//   t = round_shift((n*q - S) * r, 31 + k - FT),  y = clamp(round_shift(t*G[c] + B[c], FT + FG)).
// Banked buffer (BBANK > 0, a map deeper than BBANK words): rtl/common/banked_memory.vh, as rtl/mvau's
// WBANK; EMIT one stage longer.
// Three phases, single-buffered: LOAD takes the map (PIXELS x CHANNELS/PE words) into a buffer while
// S and Q accumulate per group; SOLVE computes r and k group by group (a seven-cycle set-up: S
// and Q, the partial products of N*Q and S*S, their sums, D, D's bit length, k, m) with a restoring divider (63 cycles) and a bit-serial square root (32 cycles); EMIT reads the buffer back, one word per
// cycle, normalized in eight pipeline stages (the word and its group's statistics registered, then a subtraction, a multiply, an add or a rounding shift each). round_shift
// rounds half to even. Every register is as wide as the numerics
// bound it (below), so synthesis infers narrow multipliers: per lane x*x (IBITS x IBITS),
// (n*q - S) * r (CB x 33) and t * G (TB x GBITS), and S*S once (SB x SB); D has DB bits, m and the
// divider's remainder 32 and 33; the quotient and the square root's registers stay 64 bits. Channel
// folds and groups are counted, not divided (rtl/common/channel_groups.vh), and t's variable
// rounding shift works at t's product width (one shifter; the shifted-out bits decide the rounding). k is at most KMAX (from DB): when
// D < 2^32 always (groups of up to about 2^8 INT8 values), k is the constant 0, and neither the
// solver's normalizing shift nor t's variable shift is built. The divider and the square root each
// decide and subtract with one subtractor (its borrow is the compare), and the word counters are
// as wide as a map's word count.
// Per-timestep-group gamma and beta (STEP_GROUPS > 1; GROUPS is GroupNorm's own channel groups):
// GAMMA_FILE and BETA_FILE hold STEP_GROUPS tables of CHANNELS values, table g at g*CHANNELS; each
// map's EMIT takes its timestep group on the g port (rtl/common/group_hold.vh) before its first word.
`default_nettype none
`include "group_hold.vh"
`include "channel_groups.vh"
`include "banked_memory.vh"

module groupnorm #(
    parameter integer CHANNELS = 4,
    parameter integer GROUPS = 2,
    parameter integer PE = 2,
    parameter integer PIXELS = 4,
    parameter integer IBITS = 8,
    parameter integer OBITS = 8,
    parameter integer FT = 12,
    parameter integer FG = 10,
    parameter integer GBITS = 16,
    parameter integer BBITS = 26,
    parameter signed [63:0] QMIN = -128,  // 64 bits: outputs may be wider than 32
    parameter signed [63:0] QMAX = 127,
    parameter integer STEP_GROUPS = 1,  // timestep groups (tables of gamma and beta)
    parameter integer STEP_GBITS = 8,   // g stream width
    parameter GAMMA_FILE = "gamma.mem",
    parameter BETA_FILE = "beta.mem",
    parameter integer BBANK = 0  // > 0 (a power of two): the buffer in banks of BBANK words, read registered twice
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
    input  wire [STEP_GBITS-1:0] g_data
);
    localparam integer FOLDS = CHANNELS / PE;
    localparam integer WORDS = PIXELS * FOLDS;
    localparam integer BANKED = (BBANK > 0) && (WORDS > BBANK);
    localparam integer CPG = CHANNELS / GROUPS;
    localparam integer N = PIXELS * CPG;
    // widths from the numerics: |q| <= 2^(IBITS-1), |S| <= N 2^(IBITS-1), Q <= N 2^(2 IBITS-2),
    // |n q - S| <= N 2^IBITS, r <= 2^31, |t| <= 2^FT sqrt(N) + 1 (|z| <= sqrt(n - 1) for a z-score)
    localparam integer LOGN = $clog2(N + 1);
    localparam integer SB = IBITS + LOGN + 1;
    localparam integer QB = 2 * IBITS + LOGN + 1;
    localparam integer CB = IBITS + LOGN + 2;
    localparam integer PB = CB + 33;
    localparam integer TB = FT + (LOGN + 1) / 2 + 3;
    localparam integer AB = (TB + GBITS > BBITS ? TB + GBITS : BBITS) + 2;
    // the solver: 0 <= D = n Q - S^2 <= n Q < 2^DB; m = D >> 2k < 2^32 (k brings bitlen(D) to 31 or 32)
    localparam integer DB = 2 * LOGN + 2 * IBITS;
    localparam integer FW = $clog2(FOLDS + 1);  // channel fold counters
    localparam integer CW = $clog2(CHANNELS + 1);
    localparam integer GW = $clog2(GROUPS + 1);
    localparam integer S0 = 31 - FT;            // t's shift is S0 + k, k >= 0
    localparam [1:0] LOAD = 2'd0, SOLVE = 2'd1, EMIT = 2'd2;

    reg [PE*IBITS-1:0] buffer [0:WORDS-1];
    reg signed [GBITS-1:0] gamma [0:STEP_GROUPS*CHANNELS-1];
    reg signed [BBITS-1:0] beta [0:STEP_GROUPS*CHANNELS-1];
    initial begin
        $readmemh(GAMMA_FILE, gamma);
        $readmemh(BETA_FILE, beta);
    end
    // k = ceil((bitlen(D) - 32) / 2) is at most KMAX: zero (and t's shift a constant) when D < 2^32
    localparam integer KMAX = (DB > 32) ? (DB - 31) / 2 : 0;
    localparam integer KB = (KMAX < 2) ? 1 : $clog2(KMAX + 1);

    reg [1:0] phase;
    localparam integer WW = $clog2(WORDS + 1);
    reg [WW-1:0] widx, ridx;  // words taken / words read back
    reg v1;                 // a word read back, not yet normalized
    wire v1o;               // stage 1 as EMIT's second stage takes it (a cycle later with banks)
    wire drained = (phase == EMIT) && (ridx == WORDS) && !v1 && !v1o;  // the last word has left the buffer stages
    assign in_ready = (phase == LOAD);
    wire take = in_valid && in_ready;

    // --- LOAD: buffer the map, accumulate S and Q per group ---------------------------------------
    integer p;
    wire [FW-1:0] fold;        // widx % FOLDS
    wire [PE*GW-1:0] lgroups;  // the lanes' groups, counted (no divider)
    channel_groups #(.CHANNELS(CHANNELS), .GROUPS(GROUPS), .PE(PE)) load_groups (
        .clk(clk), .clear(rst || drained), .step(take), .fold(fold), .group(lgroups));
    reg signed [IBITS-1:0] x;
    // a word is squared the cycle after it is taken, from registers (the input, a slice's or a FIFO's
    // memory output, does not reach the multiplier), and accumulated the cycle after that (a
    // multiplier block and the sum's carry chain in one cycle were the unet-fashion share's path)
    reg [PE*IBITS-1:0] x_r, x_s;
    reg [PE*GW-1:0] lg_r, lg_s;
    reg [PE*2*IBITS-1:0] sq_s;  // the lanes' squares
    reg pend, pend2;        // x_r holds a word not yet squared, x_s one not yet accumulated
    always @(posedge clk) begin
        if (take) begin
            if (!BANKED) buffer[widx] <= in_data;
            x_r <= in_data;
            lg_r <= lgroups;
        end
        pend <= take && !rst;
        pend2 <= pend && !rst;
        if (pend) begin
            x_s <= x_r;
            lg_s <= lg_r;
            for (p = 0; p < PE; p = p + 1) begin
                x = $signed(x_r[p * IBITS +: IBITS]);
                sq_s[p * 2 * IBITS +: 2 * IBITS] <= x * x;
            end
        end
    end
    // --- SOLVE: r = isqrt(2^62 / m), k, per group -------------------------------------------------
    reg [7:0]  step;        // 0: set up (seven cycles, setup 0..6); 1..63: divide; 64..95: square root; 96: store
    reg [2:0]  setup;       // set-up: the group's S and Q, then the partial products of N*Q and S*S (over
                            // 17-bit halves, a multiplier block each), then their sums, then D, then its bit length, then k, then
                            // m = D >> 2k: one wide operation a cycle (the products apart from their
                            // difference: 12 ns in the share; a wide product's blocks and the adders that
                            // join them in one cycle: 11.9 ns, 83.8 MHz)
    reg signed [SB-1:0] s_r;
    reg signed [QB-1:0] q_r;
    wire signed [SB+17:0] s_x = s_r;  // sign-extended past bit 17, then split s = s_hi 2^17 + s_lo
    wire signed [QB+17:0] q_x = q_r;
    wire signed [17:0] s_lo = {1'b0, s_x[16:0]}, q_lo = {1'b0, q_x[16:0]};
    wire signed [SB:0] s_hi = s_x >>> 17;
    wire signed [QB:0] q_hi = q_x >>> 17;
    reg [31:0] m;
    reg [32:0] rem;         // < m, and (rem << 1) | bit < 2m
    reg [63:0] quo, num, res, bitv;
    reg [DB-1:0] d_r, nq_r, ss_r;  // D = N*Q - S*S >= 0 fits DB bits: the products are kept modulo 2^DB
    reg [DB-1:0] ss_ll, ss_lh, ss_hh, nq_lo, nq_hi;  // their partial products (modulo 2^DB too)
    reg [7:0]  kk_r, len_r;  // D's bit length, then k: a cycle each (the leading-one search over DB bits and
                             // k's arithmetic in one cycle was the unet-fashion share's path at 95.4 MHz)
    integer b, len;
    wire [33:0] div_shifted = {rem, step == 8'd1};            // (rem << 1) | the dividend's next bit
    wire [34:0] div_trial = {1'b0, div_shifted} - {3'b0, m};
    wire div_ge = !div_trial[34] && (m != 0);
    wire [64:0] sq_trial = {1'b0, num} - {1'b0, res | bitv};
    // the groups' S, Q, r and k: a register file apart (groupnorm_stats, below); SOLVE writes a group's
    // k and r (k_we, r_we: the cycles it computes them), EMIT's first stage reads each lane's group
    reg [GW-1:0] sg;        // group being solved
    wire [PE*GW-1:0] grp1o;
    wire [SB-1:0] s_solve;
    wire [QB-1:0] q_solve;
    // a word's lanes in one group or in SPAN whole groups: SPAN ports, each its lanes' group
    // (else a port a lane)
    localparam integer SPAN = (CPG % PE == 0) ? 1 : (PE % CPG == 0) ? PE / CPG : 0;
    localparam integer SHARED = (SPAN > 0) && ((SPAN & (SPAN - 1)) == 0);
    localparam integer PORTS = SHARED ? SPAN : PE;
    wire [PORTS*GW-1:0] lg_ports, grp_ports;  // the group of each port's first lane (LOAD, EMIT)
    genvar gport;
    generate
        for (gport = 0; gport < PORTS; gport = gport + 1) begin : port_lanes
            assign lg_ports[gport * GW +: GW] = lg_s[gport * (PE / PORTS) * GW +: GW];
            assign grp_ports[gport * GW +: GW] = grp1o[gport * (PE / PORTS) * GW +: GW];
        end
    endgenerate
    wire [PORTS*SB-1:0] s_read;  // per port
    wire [PORTS*32-1:0] r_read;
    wire [PORTS*KB-1:0] k_read;
    wire solving = !rst && (phase == SOLVE) && !pend && !pend2;
    wire k_we = solving && (step == 0) && (setup >= 6);            // the cycle m is set
    wire [KB-1:0] k_new = (d_r == 0 || KMAX == 0) ? 0 : kk_r;
    wire r_we = solving && (step > 95);                           // isqrt(2^62 / m) <= 2^31
    wire [31:0] r_new = (m == 0) ? 0 : res[31:0];
    groupnorm_stats #(.GROUPS(GROUPS), .PE(PE), .PORTS(PORTS), .SHARED(SHARED), .IBITS(IBITS), .SB(SB), .QB(QB),
                      .KB(KB), .GW(GW)) stats (
        .clk(clk), .rst(rst), .add(pend2), .clear(drained), .x(x_s), .sq(sq_s), .lg(lg_ports),
        .solve_group(sg), .solve_s(s_solve), .solve_q(q_solve), .k_we(k_we), .k_new(k_new), .r_we(r_we), .r_new(r_new),
        .read_groups(grp_ports), .read_s(s_read), .read_r(r_read), .read_k(k_read));
    always @(posedge clk) begin
        if (rst) begin
            phase <= LOAD;
            widx <= 0;
            sg <= 0;
            step <= 0;
            setup <= 0;
        end else begin
            case (phase)
                LOAD: if (take) begin
                    widx <= widx + 1;
                    if (widx == WORDS - 1) begin
                        phase <= SOLVE;
                        sg <= 0;
                        step <= 0;
                    end
                end
                SOLVE: if (!pend && !pend2) begin  // (the map's last word is squared and accumulated in SOLVE's first two cycles)
                    if (step == 0 && setup == 0) begin
                        s_r <= $signed(s_solve);
                        q_r <= $signed(q_solve);
                        setup <= 1;
                    end else if (step == 0 && setup == 1) begin
                        ss_ll <= s_lo * s_lo;
                        ss_lh <= s_lo * s_hi;
                        ss_hh <= s_hi * s_hi;
                        nq_lo <= N * q_lo;
                        nq_hi <= N * q_hi;
                        setup <= 2;
                    end else if (step == 0 && setup == 2) begin
                        ss_r <= (ss_hh << 34) + (ss_lh << 18) + ss_ll;  // (s_hi 2^17 + s_lo)^2
                        nq_r <= (nq_hi << 17) + nq_lo;
                        setup <= 3;
                    end else if (step == 0 && setup == 3) begin
                        d_r <= nq_r - ss_r;
                        setup <= 4;
                    end else if (step == 0 && setup == 4) begin
                        // only a length above 32 gives k > 0: the search need not look below bit 32
                        len = 0;
                        for (b = 32; b < DB; b = b + 1)
                            if (d_r[b]) len = b + 1;
                        len_r <= len;
                        setup <= 5;
                    end else if (step == 0 && setup == 5) begin
                        kk_r <= (KMAX > 0 && len_r > 32) ? (len_r - 31) / 2 : 0;
                        setup <= 6;
                    end else if (step == 0) begin
                        m <= (KMAX > 0) ? d_r >> (2 * kk_r) : d_r;
                        rem <= 0;
                        quo <= 0;
                        setup <= 0;
                        step <= 1;
                    end else if (step <= 63) begin  // restoring division of 2^62 by m, MSB first
                        // one subtractor decides and subtracts: (rem << 1 | bit) - m, its borrow the compare
                        if (div_ge) begin
                            rem <= div_trial[32:0];
                            quo <= (quo << 1) | 1;
                        end else begin
                            rem <= div_shifted[32:0];
                            quo <= quo << 1;
                        end
                        if (step == 63) begin
                            num <= div_ge ? ((quo << 1) | 1) : (quo << 1);
                            res <= 0;
                            bitv <= 64'd1 << 62;
                        end
                        step <= step + 1;
                    end else if (step <= 95) begin  // bit-serial integer square root of num
                        // res is a multiple of 2 bitv here, so res + bitv = res | bitv: one subtractor again
                        if (!sq_trial[64]) begin
                            num <= sq_trial[63:0];
                            res <= (res >> 1) + bitv;
                        end else begin
                            res <= res >> 1;
                        end
                        bitv <= bitv >> 2;
                        step <= step + 1;
                    end else begin
                        step <= 0;
                        if (sg == GROUPS - 1) phase <= EMIT;
                        else sg <= sg + 1;
                    end
                end
                EMIT: if (drained) begin
                    phase <= LOAD;
                    widx <= 0;
                end
                default: phase <= LOAD;
            endcase
        end
    end

    // --- EMIT: read back and normalize, one word per cycle, in eight stages --------------------
    // stage 1 (vn): the word (the buffer's read register, a block RAM's output) and its group's S, r
    //   and k into registers: the only stage that reads the group's S, r and k (so the next map may
    //   start loading once the last word has passed it, v1 low);
    // stage 2 (vc): n q - S per lane;
    // stage 3 (vq): (n q - S) times r's low 17 and high 15 bits, apart (a multiplier block each);
    // stage 4 (vp): (n q - S) r, their sum;
    // stage 5 (v2): t = round_shift(that, S0 + k), and the channel's G[c] and B[c] read into registers;
    // stage 6 (vm): t G[c], B[c] alongside;
    // stage 7 (va): t G[c] + B[c];
    // output: y = clamp(round_shift(t G[c] + B[c], FT + FG)).
    // Each multiply, each wide add, and each rounding shift with its clamp, has a stage of its own.
    wire en = !out_valid || out_ready;
    wire have_g;
    wire [STEP_GBITS-1:0] step_group;
    reg [STEP_GBITS-1:0] sg1, sgn, sgc, sgq, sgp;  // the timestep group, alongside the words
    wire rfire = en && (phase == EMIT) && (ridx < WORDS) && have_g;
    group_hold #(.GROUPS(STEP_GROUPS), .GBITS(STEP_GBITS), .USES(WORDS)) hold (
        .clk(clk), .rst(rst), .g_valid(g_valid), .g_ready(g_ready), .g_data(g_data),
        .use_now(rfire), .ok(have_g), .group(step_group));
    reg [PE*IBITS-1:0] w1;
    wire [FW-1:0] rfold;        // ridx % FOLDS
    wire [PE*GW-1:0] rgroups;   // the lanes' groups, counted (no divider)
    channel_groups #(.CHANNELS(CHANNELS), .GROUPS(GROUPS), .PE(PE)) read_groups (
        .clk(clk), .clear(rst || drained), .step(rfire), .fold(rfold), .group(rgroups));
    reg [FW-1:0] fold1, foldn, foldc, foldq, foldp;
    reg [PE*GW-1:0] grp1;
    reg vn, vc, vq, vp, v2, vm, va;
    reg [PE*IBITS-1:0] xn;
    reg [PE*SB-1:0] sn;
    reg [PE*32-1:0] rn;
    reg [PE*KB-1:0] kn;
    reg [PE*CB-1:0] cenc;
    reg [PE*32-1:0] rc;
    reg [PE*KB-1:0] kc;
    reg [PE*(CB+18)-1:0] plo;  // (n q - S) r[16:0]
    reg [PE*(CB+16)-1:0] phi;  // (n q - S) r[31:17]
    reg [PE*KB-1:0] kq;
    reg [PE*PB-1:0] prodp;
    reg [PE*KB-1:0] kp;
    reg [PE*TB-1:0] t2;
    reg [PE*GBITS-1:0] g2;  // the lanes' gamma and beta, read beside the rounding shift (a table read,
    reg [PE*BBITS-1:0] b2;  // then a multiply and an add, were too long for one cycle)
    reg [PE*AB-1:0] tgm;   // t G[c]
    reg [PE*BBITS-1:0] bm;
    reg [PE*AB-1:0] acca;
    reg signed [CB-1:0] centered;
    reg signed [PB-1:0] prod, fl;
    reg signed [TB-1:0] t;
    reg signed [AB-1:0] acc;
    reg [CW-1:0] c;
    integer lane, sh;
    // banked buffer: every bank's word registered again, then chosen; stage 1's other registers wait a cycle
    wire [FW-1:0] fold1o;
    wire [STEP_GBITS-1:0] sg1o;
    wire [PE*IBITS-1:0] w1o;
    generate
        if (BANKED) begin : banked
            reg v1b;
            reg [FW-1:0] fold1b;
            reg [PE*GW-1:0] grp1b;
            reg [STEP_GBITS-1:0] sg1b;
            banked_memory #(.WIDTH(PE * IBITS), .WORDS(WORDS), .BANK(BBANK), .ABITS(WW), .WRITABLE(1)) buffer_banks (
                .clk(clk), .en(en), .raddr(ridx), .we(take), .waddr(widx), .wdata(in_data), .rdata(w1o));
            always @(posedge clk) begin
                if (rst) v1b <= 1'b0;
                else if (en) v1b <= v1;
                if (en) begin
                    fold1b <= fold1;
                    grp1b <= grp1;
                    sg1b <= sg1;
                end
            end
            assign {v1o, fold1o, grp1o, sg1o} = {v1b, fold1b, grp1b, sg1b};
        end else begin : direct
            assign {v1o, fold1o, grp1o, sg1o, w1o} = {v1, fold1, grp1, sg1, w1};
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            ridx <= 0;
            v1 <= 1'b0;
            vn <= 1'b0;
            vc <= 1'b0;
            vq <= 1'b0;
            vp <= 1'b0;
            v2 <= 1'b0;
            vm <= 1'b0;
            va <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            if (drained) ridx <= 0;
            else if (rfire) ridx <= ridx + 1;
            if (en) begin
                v1 <= rfire;
                if (!BANKED) w1 <= buffer[ridx];
                fold1 <= rfold;
                grp1 <= rgroups;
                sg1 <= step_group;
                vn <= v1o;
                foldn <= fold1o;
                sgn <= sg1o;
                vc <= vn;
                foldc <= foldn;
                sgc <= sgn;
                vq <= vc;
                foldq <= foldc;
                sgq <= sgc;
                vp <= vq;
                foldp <= foldq;
                sgp <= sgq;
                v2 <= vp;
                vm <= v2;
                va <= vm;
                out_valid <= va;
                if (v1o)
                    for (lane = 0; lane < PE; lane = lane + 1) begin
                        sn[lane * SB +: SB] <= s_read[lane / (PE / PORTS) * SB +: SB];  // its port's
                        rn[lane * 32 +: 32] <= r_read[lane / (PE / PORTS) * 32 +: 32];
                        kn[lane * KB +: KB] <= k_read[lane / (PE / PORTS) * KB +: KB];
                    end
                if (v1o) xn <= w1o;
                if (vn)
                    for (lane = 0; lane < PE; lane = lane + 1) begin
                        centered = N * $signed(xn[lane * IBITS +: IBITS]) - $signed(sn[lane * SB +: SB]);
                        cenc[lane * CB +: CB] <= centered;
                        rc[lane * 32 +: 32] <= rn[lane * 32 +: 32];
                        kc[lane * KB +: KB] <= kn[lane * KB +: KB];
                    end
                if (vc)
                    for (lane = 0; lane < PE; lane = lane + 1) begin
                        plo[lane * (CB + 18) +: CB + 18] <= $signed(cenc[lane * CB +: CB]) * $signed({1'b0, rc[lane * 32 +: 17]});
                        phi[lane * (CB + 16) +: CB + 16] <= $signed(cenc[lane * CB +: CB]) * $signed({1'b0, rc[lane * 32 + 17 +: 15]});
                        kq[lane * KB +: KB] <= kc[lane * KB +: KB];
                    end
                if (vq)
                    for (lane = 0; lane < PE; lane = lane + 1) begin
                        prodp[lane * PB +: PB] <= ($signed(phi[lane * (CB + 16) +: CB + 16]) <<< 17)
                                                  + $signed(plo[lane * (CB + 18) +: CB + 18]);
                        kp[lane * KB +: KB] <= kq[lane * KB +: KB];
                    end
                if (vp)
                    for (lane = 0; lane < PE; lane = lane + 1) begin
                        prod = $signed(prodp[lane * PB +: PB]);
                        if (S0 >= 1) begin
                            // round_shift(prod, S0 + k) at PB bits: round up (half to even) when the
                            // highest bit shifted out is set and the rest is not zero, or the floor is odd
                            sh = S0 + kp[lane * KB +: KB];
                            fl = prod >>> sh;
                            t = fl + (prod[sh - 1] && ((prod & ((1 <<< (sh - 1)) - 1)) != 0 || fl[0]));
                        end else
                            t = round_shift(prod, S0 + kp[lane * KB +: KB]);
                        t2[lane * TB +: TB] <= t;
                        c = {{CW{1'b0}}, foldp} * PE + lane;
                        g2[lane * GBITS +: GBITS] <= gamma[sgp * CHANNELS + c];
                        b2[lane * BBITS +: BBITS] <= beta[sgp * CHANNELS + c];
                    end
                if (v2)
                    for (lane = 0; lane < PE; lane = lane + 1) begin
                        tgm[lane * AB +: AB] <= $signed(t2[lane * TB +: TB]) * $signed(g2[lane * GBITS +: GBITS]);
                        bm[lane * BBITS +: BBITS] <= b2[lane * BBITS +: BBITS];
                    end
                if (vm)
                    for (lane = 0; lane < PE; lane = lane + 1)
                        acca[lane * AB +: AB] <= $signed(tgm[lane * AB +: AB]) + $signed(bm[lane * BBITS +: BBITS]);
                if (va)
                    for (lane = 0; lane < PE; lane = lane + 1) begin
                        acc = $signed(acca[lane * AB +: AB]);
                        out_data[lane * OBITS +: OBITS] <= requantize(acc, FT + FG);
                    end
            end
        end
    end

    `include "round_shift.vh"

endmodule

// The groups' statistics, a register file: S and Q, which every lane's x and x^2 add into during LOAD,
// and r and k, which SOLVE writes; the solver reads S and Q one group at a time and EMIT's first stage
// reads S, r and k at each lane's group. Channels are grouped in order, so when a word's lanes fall
// in one group (C/G a multiple of PE) or in PE/(C/G) whole groups, a power-of-two count (PORTS, SHARED:
// set by groupnorm), port j's lanes share one group, congruent to j modulo PORTS: the lanes are summed
// first and port j reads and writes only those groups (one adder and one multiplexer over
// GROUPS/PORTS per port, the group index's low bits the constant j), and EMIT reads a port's S, r and
// k once for its lanes. Otherwise each lane is a port of its own and the lanes add one after another.
// A module kept apart (keep_hierarchy): flattened, ABC merged the lanes' read-modify-writes with the
// group counters and the reads around them at a cost the channel arithmetic decided (C=96 G=8 PE=3
// 7,595 LUTs, C=48 G=8 PE=2 4,226); ported and apart, 3,735 and 2,195, what its ports, groups and
// widths make it (rtl/groupnorm/README.md).
(* keep_hierarchy *)
module groupnorm_stats #(
    parameter integer GROUPS = 2,
    parameter integer PE = 2,
    parameter integer PORTS = 2,   // PE / PORTS lanes a port
    parameter integer SHARED = 0,  // port j's groups are those congruent to j modulo PORTS
    parameter integer IBITS = 8,
    parameter integer SB = 12,
    parameter integer QB = 20,
    parameter integer KB = 1,
    parameter integer GW = 2
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  add,    // x and sq hold a word to accumulate
    input  wire                  clear,  // the map has left: start the next one's sums
    input  wire [PE*IBITS-1:0]   x,
    input  wire [PE*2*IBITS-1:0] sq,     // the lanes' x^2
    input  wire [PORTS*GW-1:0]   lg,     // the ports' groups (each port's first lane's)
    input  wire [GW-1:0]         solve_group,
    output wire [SB-1:0]         solve_s,
    output wire [QB-1:0]         solve_q,
    input  wire                  k_we,
    input  wire [KB-1:0]         k_new,
    input  wire                  r_we,
    input  wire [31:0]           r_new,
    input  wire [PORTS*GW-1:0]   read_groups,
    output wire [PORTS*SB-1:0]   read_s,  // port j's (lanes j L .. j L + L - 1)
    output wire [PORTS*32-1:0]   read_r,
    output wire [PORTS*KB-1:0]   read_k
);
    localparam integer L = PE / PORTS;  // lanes per port
    localparam integer PBITS = $clog2(PORTS);
    reg signed [SB-1:0] s_acc [0:GROUPS-1];
    reg signed [QB-1:0] q_acc [0:GROUPS-1];
    reg [31:0] r_of [0:GROUPS-1];
    reg [KB-1:0] k_of [0:GROUPS-1];
    assign solve_s = s_acc[solve_group];
    assign solve_q = q_acc[solve_group];
    // port j's group: its first lane's, the low bits the constant j when ports share (a multiplexer over
    // the groups congruent to j)
    function automatic [GW-1:0] port_group(input [PORTS*GW-1:0] groups, input integer j);
        port_group = SHARED ? (((groups[j * GW +: GW] >> PBITS) << PBITS) | j) : groups[j * GW +: GW];
    endfunction
    genvar j;
    generate
        for (j = 0; j < PORTS; j = j + 1) begin : reads
            wire [GW-1:0] rg = port_group(read_groups, j);
            assign read_s[j * SB +: SB] = s_acc[rg];
            assign read_r[j * 32 +: 32] = r_of[rg];
            assign read_k[j * KB +: KB] = k_of[rg];
        end
    endgenerate
    reg signed [SB-1:0] xs;
    reg [QB-1:0] qs;
    reg [GW-1:0] g1;
    integer p, q, g;
    always @(posedge clk) begin
        if (rst) begin
            for (g = 0; g < GROUPS; g = g + 1) begin
                s_acc[g] <= 0;
                q_acc[g] <= 0;
            end
        end else if (add) begin
            // ports of shared groups never meet (their groups differ modulo PORTS); lone lanes may, so
            // each adds to what the lanes before it left (blocking)
            for (p = 0; p < PORTS; p = p + 1) begin
                xs = 0;
                qs = 0;
                for (q = 0; q < L; q = q + 1) begin
                    xs = xs + $signed(x[(p * L + q) * IBITS +: IBITS]);
                    qs = qs + sq[(p * L + q) * 2 * IBITS +: 2 * IBITS];
                end
                g1 = port_group(lg, p);
                s_acc[g1] = s_acc[g1] + xs;
                q_acc[g1] = q_acc[g1] + $signed(qs);
            end
        end else if (clear) begin
            for (g = 0; g < GROUPS; g = g + 1) begin
                s_acc[g] <= 0;
                q_acc[g] <= 0;
            end
        end
        if (k_we) k_of[solve_group] <= k_new;
        if (r_we) r_of[solve_group] <= r_new;
    end
endmodule

`default_nettype wire
