// hwsim's requantizing shift and its saturation (docs/numerics.md), included inside the modules
// that need them (MVAU, requant, GroupNorm; requantize uses the module's QMIN, QMAX and OBITS):
// v / 2^shift rounded half to even when shift > 0, v * 2^-shift (exact) when shift <= 0; 64 bits.
// Written for short paths: the bits shifted out are v's low bits (v - floor * 2^shift is never
// formed), and requantize decides saturation on the floor, beside the round-up, not after it.

// 1 when v / 2^shift (shift >= 1) rounds away from its floor: the highest bit shifted out is set
// and the rest is not zero, or it is exactly a half and the floor is odd
function round_up(input signed [63:0] v, input integer shift);
    round_up = v[shift - 1] && ((v & ((64'sd1 <<< (shift - 1)) - 1)) != 0 || v[shift]);
endfunction

function signed [63:0] round_shift(input signed [63:0] v, input integer shift);
    begin
        if (shift <= 0) round_shift = v <<< (-shift);
        else round_shift = (v >>> shift) + round_up(v, shift);
    end
endfunction

// round_shift, then saturate to the including module's [QMIN, QMAX], as an OBITS-bit result.
// The rounded value is the floor or the floor + 1, so a floor >= QMAX saturates high and a floor
// < QMIN low (floor = QMIN - 1 rounds to at most QMIN); otherwise floor + up lies in [QMIN, QMAX]
// and only its OBITS low bits are added.
function [OBITS-1:0] requantize(input signed [63:0] v, input integer shift);
    reg signed [63:0] floor;
    reg [OBITS-1:0] qmin, qmax;
    begin
        qmin = QMIN;
        qmax = QMAX;
        if (shift <= 0) begin
            floor = v <<< (-shift);
            requantize = floor < QMIN ? qmin : floor > QMAX ? qmax : floor[OBITS-1:0];
        end else begin
            floor = v >>> shift;
            requantize = floor >= QMAX ? qmax : floor < QMIN ? qmin : floor[OBITS-1:0] + round_up(v, shift);
        end
    end
endfunction
