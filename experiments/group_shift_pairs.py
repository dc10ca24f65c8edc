"""The ECP5 cost of rtl/mvau's group shifters (WGROUP), measured: each grouped MVAU beside its twin
without groups (the same weights, memories and accumulator), both through Yosys synth_ecp5 and
nextpnr --pack-only; the LUT difference less what the resource model's other features give for it,
per shifter unit (``gshift``: bits x shift stages). These fix ``ecp5.FIXED``'s ``gshift`` (LUT
products) and ``gshift_m18`` (multiplier blocks), as the calibration grid has too few grouped rows
to fit them: the median per product style.

    python experiments/group_shift_pairs.py        # measure what is missing, write the results

Resumable (one row per pair in pairs.json, written after each). Results:
experiments/results/resource_calibration/group_shift/{pairs.json,README.md}. None of the pairs is a
calibration grid row: the coefficients stay independent of the rows they are evaluated on.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "results" / "resource_calibration" / "group_shift"
WORK = ROOT / "out" / "group_shift_pairs"
COMMAND = "python experiments/group_shift_pairs.py"

_DENSE = dict(WBITS=4, ABITS=8)
PAIRS = [  # session 25's four (LUT products), three with multiplier blocks (session 31)
    dict(MW=64, MH=8, PE=2, SIMD=8, WGROUP=8, GSBITS=3, **_DENSE),
    dict(MW=64, MH=8, PE=2, SIMD=16, WGROUP=8, GSBITS=3, **_DENSE),
    dict(MW=64, MH=8, PE=4, SIMD=4, WGROUP=16, GSBITS=3, **_DENSE),
    dict(MW=64, MH=16, PE=4, SIMD=16, WGROUP=4, GSBITS=2, **_DENSE),
    dict(MW=64, MH=16, PE=2, SIMD=8, WGROUP=8, GSBITS=3, LUT_MULT=0, **_DENSE),
    dict(MW=128, MH=16, PE=2, SIMD=16, WGROUP=4, GSBITS=2, LUT_MULT=0, **_DENSE),
    dict(MW=64, MH=16, PE=4, SIMD=4, WGROUP=16, GSBITS=3, LUT_MULT=0, **_DENSE),
]


def model_parts(block) -> tuple[float, float]:
    """(the model's LUTs for everything but the shifters, the shifter units) of a block: its
    estimate less the shifters' fixed price."""
    from hwsim.dataflow.ecp5 import FIXED, features
    from hwsim.dataflow.resources import estimate, load_device

    shifters = {k: v for k, v in features(block.node)["lut"].items() if k.startswith("gshift")}
    lut = estimate(block.node, load_device("ecp5-85f")).lut
    return lut - sum(FIXED["lut"][k] * v for k, v in shifters.items()), sum(shifters.values())


def measure(cfg: dict, k: int) -> dict:
    from hwsim.bitstream.calibrate import make_block, synth_pack

    twin_cfg = {key: v for key, v in cfg.items() if key not in ("WGROUP", "GSBITS")}
    got = {}
    for name, c in (("grouped", cfg), ("twin", twin_cfg)):
        block = make_block("mvau", c)
        res = synth_pack(block, WORK / f"{k}_{name}")
        other, units = model_parts(block)
        got[name] = {"lut": res["lut"], "model_other": round(other, 1), "units": units}
    g, t = got["grouped"], got["twin"]
    per_unit = (g["lut"] - t["lut"] - (g["model_other"] - t["model_other"])) / g["units"]
    return {"config": cfg, "products": "MULT18" if cfg.get("LUT_MULT", 1) == 0 else "LUT", **got,
            "delta_lut": g["lut"] - t["lut"], "per_unit": round(per_unit, 3)}


def main() -> int:
    from hwsim.bitstream.tools import tool_versions
    from hwsim.provenance import provenance

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "pairs.json"
    data = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    done = {json.dumps(r["config"], sort_keys=True) for r in data["rows"]}
    for k, cfg in enumerate(PAIRS):
        if json.dumps(cfg, sort_keys=True) in done:
            continue
        row = measure(cfg, k)
        print(json.dumps(row), flush=True)
        data["rows"].append(row)
        data["meta"] = {"command": COMMAND, "provenance": provenance(), "tool_versions": tool_versions()}
        path.write_text(json.dumps(data, indent=1) + "\n")
    medians = {p: statistics.median(r["per_unit"] for r in data["rows"] if r["products"] == p) for p in ("LUT", "MULT18")}
    data["median_per_unit"] = {p: round(m, 2) for p, m in medians.items()}
    path.write_text(json.dumps(data, indent=1) + "\n")
    lines = ["# Group shifters on the ECP5 (rtl/mvau WGROUP)", "",
             f"`{COMMAND}` (git {data['meta']['provenance']['git_commit']}): each grouped MVAU and its twin without "
             "groups through synth_ecp5 and nextpnr --pack-only; per unit = (LUT difference - the model's difference "
             "for everything but the shifters) / shifter units (bits x shift stages, `ecp5._group_shift_parts`). "
             "The medians fix `ecp5.FIXED` (`gshift` for LUT products, `gshift_m18` for multiplier blocks).", "",
             "| config | products | grouped LUT | twin LUT | difference | model's other difference | units | LUT per unit |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(f"| {cfg} | {r['products']} | {r['grouped']['lut']} | {r['twin']['lut']} | {r['delta_lut']:+d} | "
                     f"{r['grouped']['model_other'] - r['twin']['model_other']:+.0f} | {r['grouped']['units']:.0f} | "
                     f"{r['per_unit']:.2f} |")
    lines += ["", "Median LUT per unit: " + ", ".join(f"{p} products {m:.2f}" for p, m in data["median_per_unit"].items())
              + ".", ""]
    (OUT / "README.md").write_text("\n".join(lines))
    print(data["median_per_unit"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
