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
// and nothing otherwise (the multiplier block takes it whole).
function signed [MA+MB-1:0] multiply_rows(input signed [MA-1:0] a, input signed [MB-1:0] b, input integer first,
                                          input integer last);
    reg signed [MA+MB-1:0] sum;
    integer i;
    begin
        if (LUT_MULT != 0) begin
            sum = 0;
            for (i = 0; i < MB - 1; i = i + 1)
                if (i >= first && i < last && b[i]) sum = sum + (a <<< i);
            if (MB - 1 >= first && MB - 1 < last && b[MB-1]) sum = sum - (a <<< (MB - 1));  // the sign bit weighs -2^(MB-1)
            multiply_rows = sum;
        end else begin
            multiply_rows = (first == 0) ? a * b : 0;
        end
    end
endfunction
