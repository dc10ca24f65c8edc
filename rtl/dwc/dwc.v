// Data-width converter (FINN's StreamingDataWidthConverter): a stream of IN lanes per word becomes a
// stream of OUT lanes per word, element order kept (lane 0 first). Any IN, OUT >= 1, multiples or not.
//
// A gearbox over a shift buffer of CAP = IN + OUT - G elements, G = gcd(IN, OUT), held in units of G
// elements (every count is a multiple of G): elements 0..count-1 are valid, element 0 is the oldest.
// An output word (the OUT oldest elements) is offered whenever at least OUT are held; an input word
// is taken whenever, after this cycle's output (if any), IN more fit, and lands right after the
// elements kept. Full rate on the slower side: the input every cycle when IN <= OUT, the output
// every cycle (once started) when IN >= OUT. out_valid and out_data are registers; in_ready depends
// on out_ready combinationally (as in every one-register-stage block here).
//
// A buffer unit is loaded (flip-flop enable) from one of its few sources, the unit KO above it after
// a pop or an input unit, by a per-unit select that dwc_select decodes once for all the unit's bits.
`default_nettype none

// Unit u's sources, shared by dwc and dwc_select: the input word's units when the word lands at a base
// in [DWC_KMIN(u), DWC_KMAX(u)], and (DWC_SHIFTED(u) = 1) the unit KO above it after a pop.
`define DWC_KMIN(u) ((u) - KI + 1 > 0 ? (u) - KI + 1 : 0)
`define DWC_KMAX(u) ((u) < KO - 1 ? (u) : KO - 1)
`define DWC_SHIFTED(u) ((u) + KO < KI + KO - 1 ? 1 : 0)

module dwc #(
    parameter integer IN = 2,
    parameter integer OUT = 3,
    parameter integer BITS = 8
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [IN*BITS-1:0]  in_data,
    output wire                out_valid,
    input  wire                out_ready,
    output wire [OUT*BITS-1:0] out_data
);
    function integer gcd;
        input integer a, b;
        integer i;
        begin
            gcd = 1;
            for (i = 1; i <= a; i = i + 1)
                if (a % i == 0 && b % i == 0) gcd = i;
        end
    endfunction

    localparam integer G = gcd(IN, OUT);
    localparam integer KI = IN / G;             // input word, in units
    localparam integer KO = OUT / G;            // output word, in units
    localparam integer CAPU = KI + KO - 1;      // buffer, in units (CAP = CAPU * G elements)
    localparam integer UW = G * BITS;           // bits per unit
    localparam integer CB = $clog2(CAPU + 1);   // count width
    localparam integer SW = $clog2((KI < KO ? KI : KO) + 1);  // a unit's source select
    localparam [CB-1:0] KI_C = KI[CB-1:0];
    localparam [CB-1:0] KO_C = KO[CB-1:0];

    wire [CAPU*UW-1:0] data_q;
    reg  [CB-1:0]      count;                   // units held

    assign out_valid = (count >= KO_C);
    assign out_data = data_q[OUT*BITS-1:0];
    wire pop = out_valid && out_ready;
    wire [CB-1:0] base = pop ? count - KO_C : count;  // units kept after this cycle's output
    assign in_ready = (base < KO_C);                 // base + KI <= CAPU
    wire push = in_valid && in_ready;

    wire [CAPU-1:0]    load;
    wire [CAPU*SW-1:0] sel;
    dwc_select #(.KI(KI), .KO(KO), .CB(CB), .SW(SW)) u_select (
        .pop(pop), .push(push), .base(base), .load(load), .sel(sel));

    genvar u;
    generate
        for (u = 0; u < CAPU; u = u + 1) begin : g_unit
            // sources: the unit KO above (after a pop) if there is one, then input units u - KMIN - i
            localparam integer KMIN = `DWC_KMIN(u);
            localparam integer KMAX = `DWC_KMAX(u);
            localparam integer SH = `DWC_SHIFTED(u);
            localparam integer NS = KMAX - KMIN + 1 + SH;
            wire [NS*UW-1:0] src;
            if (SH) begin : g_shift
                assign src[0 +: UW] = data_q[(u + KO)*UW +: UW];
            end
            genvar s;
            for (s = SH; s < NS; s = s + 1) begin : g_src
                assign src[s*UW +: UW] = in_data[(u - KMIN - (s - SH))*UW +: UW];
            end
            wire [SW-1:0] su = sel[u*SW +: SW];
            reg [UW-1:0] d;
            integer i;
            always @* begin
                d = src[0 +: UW];
                for (i = 1; i < NS; i = i + 1)
                    if (su == i) d = src[i*UW +: UW];
            end
            reg [UW-1:0] q;
            always @(posedge clk)
                if (load[u]) q <= d;
            assign data_q[u*UW +: UW] = q;
        end
    endgenerate

    always @(posedge clk)
        if (rst) count <= 0;
        else count <= base + (push ? KI_C : {CB{1'b0}});
endmodule

// The units' loads and selects, a module apart (keep_hierarchy): synthesis then maps each buffer bit as
// a multiplexer of its few sources under the unit's select, instead of folding the decoding of the
// count into every bit (on ECP5 that took up to six times the LUTs: 2 -> 3 lanes 208 against 44).
(* keep_hierarchy *)
module dwc_select #(
    parameter integer KI = 2,
    parameter integer KO = 3,
    parameter integer CB = 3,
    parameter integer SW = 2
) (
    input  wire                     pop,
    input  wire                     push,
    input  wire [CB-1:0]            base,
    output wire [KI+KO-2:0]         load,
    output wire [(KI+KO-1)*SW-1:0]  sel
);
    localparam integer CAPU = KI + KO - 1;
    genvar u;
    generate
        for (u = 0; u < CAPU; u = u + 1) begin : g_unit
            // the input word lands at base: unit u takes its input unit u - base when base is in [KMIN, KMAX]
            localparam integer KMIN = `DWC_KMIN(u);
            localparam integer KMAX = `DWC_KMAX(u);
            localparam integer SH = `DWC_SHIFTED(u);
            wire hit = push && base >= KMIN && base <= KMAX;
            wire [CB-1:0] off = base - KMIN[CB-1:0];
            assign load[u] = hit || (pop && SH);
            assign sel[u*SW +: SW] = hit ? off[SW-1:0] + {{(SW-1){1'b0}}, SH == 1} : {SW{1'b0}};
        end
    endgenerate
endmodule

`undef DWC_KMIN
`undef DWC_KMAX
`undef DWC_SHIFTED
`default_nettype wire
