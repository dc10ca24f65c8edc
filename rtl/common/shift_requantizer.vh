// One constant-shift requantizer (round_shift.vh's requantize at SHIFT), a module kept apart
// (keep_hierarchy) so that synthesis maps each of a lane's requantizers alone, whatever the shift
// table around it: rtl/requant's table path instantiates one per shift of SHIFT_MIN..SHIFT_MAX and a
// lane chooses by its entry; the ones no entry of the lane takes are removed with their unused outputs.
// Included at file level by the blocks that use it; the guard keeps one definition per compilation.
`ifndef HWSIM_SHIFT_REQUANTIZER_VH
`define HWSIM_SHIFT_REQUANTIZER_VH
(* keep_hierarchy *)
module shift_requantizer #(
    parameter integer IBITS = 16,
    parameter integer OBITS = 8,
    parameter signed [63:0] QMIN = -128,
    parameter signed [63:0] QMAX = 127,
    parameter integer SHIFT = 0
) (
    input  wire [IBITS-1:0] v,
    output wire [OBITS-1:0] q
);
    assign q = requantize($signed(v), SHIFT);
    `include "round_shift.vh"
endmodule
`endif
