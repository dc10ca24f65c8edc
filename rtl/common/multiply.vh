// Signed product of an MA-bit and an MB-bit value, MA+MB bits wide, included inside the modules that
// multiply (they define the localparams MA, MB and the parameter LUT_MULT). The cost model's resType:
// LUT_MULT = 0 ("dsp"): the `*` operator, which synthesis maps to the device's multiplier blocks
// (ECP5 MULT18X18D, iCE40 UP SB_MAC16) where it has them; LUT_MULT = 1 ("lut"): a sum of shifted
// partial products selected by the bits of b, which no flow turns back into a multiplier block, so
// it stays in LUTs and carry chains. Both compute the same integer.
function signed [MA+MB-1:0] multiply(input signed [MA-1:0] a, input signed [MB-1:0] b);
    multiply = multiply_rows(a, b, 0, MB);
endfunction

// The partial products of b's bits first .. last-1 alone (LUT_MULT = 1), so that a pipelined
// multiplier can sum two halves in two stages; with LUT_MULT = 0 the whole product for first = 0
// and nothing otherwise (the multiplier block takes it whole). The rows are summed pairwise, a
// balanced tree of log2(rows) adders in depth rather than one chain of them.
function signed [MA+MB-1:0] multiply_rows(input signed [MA-1:0] a, input signed [MB-1:0] b, input integer first,
                                          input integer last);
    reg [MB*(MA+MB)-1:0] rows;  // row i at bits [i*(MA+MB) +: MA+MB], two's complement
    integer i, step;
    begin
        if (LUT_MULT != 0) begin
            for (i = 0; i < MB; i = i + 1)  // the sign bit of b weighs -2^(MB-1)
                rows[i * (MA + MB) +: MA + MB] = (i < first || i >= last || !b[i]) ? 0
                                                 : (i == MB - 1) ? -(a <<< i) : (a <<< i);
            for (step = 1; step < MB; step = step * 2)
                for (i = 0; i + step < MB; i = i + 2 * step)
                    rows[i * (MA + MB) +: MA + MB] = rows[i * (MA + MB) +: MA + MB] + rows[(i + step) * (MA + MB) +: MA + MB];
            multiply_rows = rows[0 +: MA + MB];
        end else begin
            multiply_rows = (first == 0) ? a * b : 0;
        end
    end
endfunction
