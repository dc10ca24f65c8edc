// The timestep group of the evaluation a block is working on, for blocks whose constants are stored
// once per timestep group (TDQ-style activation scales: a plan with timestep_groups > 1). Every
// evaluation is preceded by one word on the g stream, its group's index; the block reads that
// group's constants USES times (at one point of its pipeline, `use_now`) and the hold then takes
// the next word, in the same cycle as the last use, so a g stream that keeps up costs no cycle.
// `ok` is low while no group is held: the block must not read constants then. With GROUPS = 1 there
// is nothing to select: g is never taken, `ok` is 1 and `group` 0, and synthesis removes the rest.
// Shared by rtl/requant, rtl/mvau, rtl/lut, rtl/groupnorm, rtl/softmax and rtl/adaln: each includes
// this file before its module (the guard keeps one definition per compilation).
`ifndef HWSIM_GROUP_HOLD_VH
`define HWSIM_GROUP_HOLD_VH

module group_hold #(
    parameter integer GROUPS = 1,
    parameter integer GBITS = 8,   // g stream width
    parameter integer USES = 1     // constant reads per evaluation
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             g_valid,
    output wire             g_ready,
    input  wire [GBITS-1:0] g_data,
    input  wire             use_now,  // the block reads the held group's constants this cycle
    output wire             ok,       // a group is held
    output wire [GBITS-1:0] group
);
    localparam integer GROUPED = (GROUPS > 1);
    localparam integer UB = (USES <= 1) ? 1 : $clog2(USES);
    reg             held;
    reg [UB-1:0]    count;
    reg [GBITS-1:0] held_group;
    wire last = use_now && (count == USES - 1);
    assign ok = !GROUPED || held;
    assign g_ready = GROUPED && (!held || last);
    assign group = GROUPED ? held_group : {GBITS{1'b0}};
    always @(posedge clk) begin
        if (rst || !GROUPED) begin
            held <= 1'b0;
            count <= 0;
        end else begin
            if (use_now) count <= last ? 0 : count + 1;
            if (g_valid && g_ready) begin
                held_group <= g_data;
                held <= 1'b1;
            end else if (last) held <= 1'b0;
        end
    end
endmodule
`endif
