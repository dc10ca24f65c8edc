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
`default_nettype none

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
    localparam [CB-1:0] KI_C = KI[CB-1:0];
    localparam [CB-1:0] KO_C = KO[CB-1:0];

    reg  [CAPU*UW-1:0] data_q;
    reg  [CB-1:0]      count;                   // units held
    reg  [CAPU*UW-1:0] data_d;

    assign out_valid = (count >= KO_C);
    assign out_data = data_q[OUT*BITS-1:0];
    wire pop = out_valid && out_ready;
    wire [CB-1:0] base = pop ? count - KO_C : count;  // units kept after this cycle's output
    assign in_ready = (base < KO_C);                 // base + KI <= CAPU
    wire push = in_valid && in_ready;

    integer u, k;
    always @* begin
        data_d = data_q;
        u = 0;  // assigned on every path: no latch for the loop variable (Yosys)
        if (pop)  // units KO.. move down; the rest hold (they are beyond the count)
            for (u = 0; u + KO < CAPU; u = u + 1)
                data_d[u*UW +: UW] = data_q[(u + KO)*UW +: UW];
        for (k = 0; k < KO; k = k + 1)  // the input word goes right after the kept units
            if (push && base == k[CB-1:0]) data_d[k*UW +: IN*BITS] = in_data;
    end

    always @(posedge clk) begin
        data_q <= data_d;
        if (rst) count <= 0;
        else count <= base + (push ? KI_C : {CB{1'b0}});
    end
endmodule

`default_nettype wire
