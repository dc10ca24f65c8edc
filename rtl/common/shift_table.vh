// A shift table's choice, included inside rtl/requant and rtl/mvau (it uses the module's SHIFT_MIN,
// SHIFT_MAX, SHBITS, OBITS, SHIFT_FILE and its table smem). A lane chooses among the constant-shift
// requantizers of [SHIFT_MIN, SHIFT_MAX] (rtl/common/shift_requantizer.vh, each a module kept apart)
// by its entry; synthesis removes the ones no entry of the lane takes. Never a barrel shifter over
// SHBITS-bit shifts (400-700 LUTs a lane in rtl/requant, a number that depended on the table's values
// in ways no model of the block could follow), nor the requantizers flattened into the table's
// decoding (whose LUTs moved with the table's values: rtl/requant/README.md). An entry outside the
// range would take the wrong shift: a simulation stops on one (check_shift_table), naming the file
// and the entry.

// the output of the requantizer for entry s among q's SHIFT_MAX - SHIFT_MIN + 1 (shift SHIFT_MIN + k
// at q[k * OBITS +: OBITS])
function [OBITS-1:0] choose_shift(input [(SHIFT_MAX - SHIFT_MIN + 1)*OBITS-1:0] q, input signed [SHBITS-1:0] s);
    integer k;
    begin
        choose_shift = q[0 +: OBITS];
        for (k = 1; k <= SHIFT_MAX - SHIFT_MIN; k = k + 1)
            if (s == SHIFT_MIN + k) choose_shift = q[k * OBITS +: OBITS];
    end
endfunction

`ifndef SYNTHESIS
// stop the simulation on an entry of smem[0 .. entries-1] outside [SHIFT_MIN, SHIFT_MAX]
task check_shift_table(input integer entries);
    integer i;
    begin
        for (i = 0; i < entries; i = i + 1)
            if ($signed(smem[i]) < SHIFT_MIN || $signed(smem[i]) > SHIFT_MAX) begin
                $display("%m: %s entry %0d is %0d, outside SHIFT_MIN..SHIFT_MAX = %0d..%0d",
                         SHIFT_FILE, i, $signed(smem[i]), SHIFT_MIN, SHIFT_MAX);
                $finish;
            end
    end
endtask
`endif
