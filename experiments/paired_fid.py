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

import numpy as np
import torch

from hwsim.evaluate import generate
from hwsim.metrics import fid as fidlib
from hwsim.modeldir import load_spec
from hwsim.sweep.experiment import config_hash, eval_config, quant_config


def label(config: dict) -> str:
    return f"{config['method']} {config['precision']}" + (f" s{config['sparsity']}" if config["sparsity"] else "")


def main(out: Path, pairs: list[tuple[str, str]], resamples: int = 200) -> None:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    configs = {label(r["config"]): r["config"] for r in rows}
    missing = sorted({x for p in pairs for x in p} - set(configs))
    if missing:
        raise SystemExit(f"{out}: no points labelled {missing}; labels are {sorted(configs)}")
    qdir = out / "work" / "quantized" / config_hash(quant_config(configs[pairs[0][0]]))
    dataset = load_spec(qdir).dataset
    real = fidlib.reference_features(dataset, "classifier")
    extractor = fidlib.make_extractor("classifier", dataset)
    feats = {}
    for name in sorted({x for p in pairs for x in p}):
        c = configs[name]
        images = generate(out / "work" / "quantized" / config_hash(quant_config(c)), c["samples"], c["steps"], "ddim",
                          c["seed"], "intsim", progress=False,
                          resume_dir=out / "work" / "samples" / config_hash(eval_config(c)))
        feats[name] = fidlib.extract_features(extractor, images)
    n = len(next(iter(feats.values())))
    rng = np.random.default_rng(0)
    boots = {k: [] for k in feats}
    for _ in range(resamples):
        idx = torch.from_numpy(rng.integers(0, n, n))
        for k, f in feats.items():
            boots[k].append(fidlib.frechet_distance(real, f[idx]))
    point = {k: fidlib.frechet_distance(real, f) for k, f in feats.items()}
    print("| paired FID difference | diff | 95% CI |\n|---|---|---|")
    for a, b in pairs:
        diff = point[a] - point[b]
        d = np.array(boots[a]) - np.array(boots[b])
        lo, hi = np.percentile(d - (d.mean() - diff), [2.5, 97.5])
        print(f"| {a} - {b} | {diff:+.1f} | [{lo:+.1f}, {hi:+.1f}] |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), [tuple(p.split("|")) for p in sys.argv[2:]])
