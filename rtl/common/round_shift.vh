// hwsim's requantizing shift and its saturation (docs/numerics.md), included inside the modules
// that need them (MVAU, requant, GroupNorm; requantize uses the module's QMIN, QMAX and OBITS):
// v / 2^shift rounded half to even when shift > 0, v * 2^-shift (exact) when shift <= 0; 64 bits.
function signed [63:0] round_shift(input signed [63:0] v, input integer shift);
    reg signed [63:0] floor, rest, half;
    begin
        if (shift <= 0) round_shift = v <<< (-shift);
        else begin
            floor = v >>> shift;
            rest = v - (floor <<< shift);
            half = 64'sd1 <<< (shift - 1);
            round_shift = floor + (((rest > half) || ((rest == half) && floor[0])) ? 1 : 0);
        end
    end
endfunction

// round_shift, then saturate to the including module's [QMIN, QMAX], as an OBITS-bit result
function [OBITS-1:0] requantize(input signed [63:0] v, input integer shift);
    reg signed [63:0] r;
    begin
        r = round_shift(v, shift);
        if (r < QMIN) r = QMIN;
        if (r > QMAX) r = QMAX;
        requantize = r[OBITS-1:0];
    end
endfunction
