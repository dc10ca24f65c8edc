"""Paired-bootstrap FID differences A - B between points of one sweep (the same resampled sample
indices for both points, 200 resamples, bias-corrected percentile interval as hwsim.metrics.fid).
Points share the initial noise (one seed), so their FIDs are paired and the difference is far
tighter than the two intervals suggest. Samples are read back from the sweep's work directory.

    python experiments/paired_fid.py OUT_DIR "naive W8A6T4|naive W8A6" ...   # labels: method, precision[, sN]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hwsim.sweep.analysis import paired_fid


def label(config: dict) -> str:
    return f"{config['method']} {config['precision']}" + (f" s{config['sparsity']}" if config["sparsity"] else "")


def main(out: Path, pairs: list[tuple[str, str]], resamples: int = 200) -> None:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    configs = {label(r["config"]): r["config"] for r in rows}
    missing = sorted({x for p in pairs for x in p} - set(configs))
    if missing:
        raise SystemExit(f"{out}: no points labelled {missing}; labels are {sorted(configs)}")
    names = sorted({x for p in pairs for x in p})
    result = paired_fid(out / "work", {n: configs[n] for n in names}, pairs, resamples, seed=0)
    print("| paired FID difference | diff | 95% CI |\n|---|---|---|")
    for name, d in result["differences"].items():
        print(f"| {name} | {d['diff']:+.1f} | [{d['ci_low']:+.1f}, {d['ci_high']:+.1f}] |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), [tuple(p.split("|")) for p in sys.argv[2:]])
