// Signed product of an MA-bit and an MB-bit value, MA+MB bits wide, included inside the modules that
// multiply (they define the localparams MA, MB and the parameter LUT_MULT). The cost model's resType:
// LUT_MULT = 0 ("dsp"): the `*` operator, which synthesis maps to the device's multiplier blocks
// (ECP5 MULT18X18D, iCE40 UP SB_MAC16) where it has them; LUT_MULT = 1 ("lut"): a sum of shifted
// partial products selected by the bits of b, which no flow turns back into a multiplier block, so
// it stays in LUTs and carry chains. Both compute the same integer.
function signed [MA+MB-1:0] multiply(input signed [MA-1:0] a, input signed [MB-1:0] b);
    reg signed [MA+MB-1:0] sum;
    integer i;
    begin
        if (LUT_MULT != 0) begin
            sum = 0;
            for (i = 0; i < MB - 1; i = i + 1)
                if (b[i]) sum = sum + (a <<< i);
            if (b[MB-1]) sum = sum - (a <<< (MB - 1));  // the sign bit weighs -2^(MB-1)
            multiply = sum;
        end else begin
            multiply = a * b;
        end
    end
endfunction
