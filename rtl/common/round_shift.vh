// hwsim's requantizing shift (docs/numerics.md), included inside the modules that need it:
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
