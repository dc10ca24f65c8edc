// A shift table's requantizer, included after round_shift.vh inside rtl/requant and rtl/mvau (it uses
// the module's SHIFT_MIN, SHIFT_MAX, SHBITS, SHIFT_FILE and its table smem). A lane chooses among the
// constant-shift requantizers of [SHIFT_MIN, SHIFT_MAX] by its entry, so synthesis builds one
// constant-shift datapath per shift the lane's entries take, never a barrel shifter over SHBITS-bit
// shifts (400-700 LUTs a lane in rtl/requant, a number that depended on the table's values in ways no
// model of the block could follow). An entry outside the range would take the wrong shift: a
// simulation stops on one (check_shift_table), naming the file and the entry.

// requantize(v, s) for an entry s in [SHIFT_MIN, SHIFT_MAX]
function [OBITS-1:0] requantize_table(input signed [63:0] v, input signed [SHBITS-1:0] s);
    integer k;
    begin
        requantize_table = requantize(v, SHIFT_MIN);
        for (k = SHIFT_MIN + 1; k <= SHIFT_MAX; k = k + 1)
            if (s == k) requantize_table = requantize(v, k);
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
