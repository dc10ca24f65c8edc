"""Analyses of a finished (or running) sweep: its result rows loaded read-only and checked, a tidy
table of them, and the Pareto fronts of quality against cost (FID against energy per image, FID
against latency per image). ``hwsim report DIR`` (:mod:`hwsim.sweep.report`) draws them.

Loading never writes to the sweep directory (unlike :class:`~hwsim.sweep.store.ResultStore`,
which cuts a torn last line before appending), so it is safe while a sweep runs: a last line
without its newline is an append in progress (or killed) and is left out and listed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from hwsim.sweep.experiment import config_hash
from hwsim.sweep.runner import ERRORS_FILE, EXPERIMENT_FILE, RESULTS_FILE
from hwsim.sweep.store import ResultStore, checksum

# The config fields that tell points apart in tables and labels (the rest is in the provenance).
CONFIG_FIELDS = ("model", "method", "precision", "sparsity", "device", "target", "samples", "steps", "seed")
# Metrics by name: (label with unit, how to read it from a row). Missing or non-finite -> None.
METRICS = {
    "fid": ("FID", lambda r: r.get("fid")),
    "energy_fpga_uj": ("energy per image, FPGA [uJ]", lambda r: (r.get("energy_uj_per_image") or {}).get("fpga")),
    "energy_asic_uj": ("energy per image, ASIC 45 nm [uJ]",
                       lambda r: (r.get("energy_uj_per_image") or {}).get("asic45nm")),
    "latency_s": ("latency per image [s]", lambda r: r.get("latency_s_per_image")),
    "cycles_per_image": ("cycles per image", lambda r: r.get("cycles_per_image")),
}
FRONTS = (("fid", "energy_fpga_uj"), ("fid", "latency_s"))  # the two trade-offs the report shows
NUMBER_FIELDS = ("fid", "fid_floor", "fid_precision", "fid_recall", "cycles_per_image", "cycles_per_image_pipelined",
                 "latency_s_per_image", "onchip_bits")
MAPPING_FIELDS = ("energy_uj_per_image", "resources", "utilization", "cycles_per_step")


class ReportError(ValueError):
    """A sweep directory cannot be analysed; the message names the file and what is wrong."""


@dataclass
class Sweep:
    """A sweep directory's usable rows (first per key, in file order) and what was left out."""

    dir: Path
    rows: list[dict]
    experiment: dict | None = None  # experiment.json, when present
    failures: list[dict] = field(default_factory=list)  # errors.jsonl entries of points that have no row
    skipped: list[str] = field(default_factory=list)  # lines not used, each with the reason


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def metric(row: dict, name: str) -> float | None:
    """The metric ``name`` of a row as a finite float, or None when the row lacks it (a sweep
    stores NaN and infinities as null, so those are missing too)."""
    v = METRICS[name][1](row)
    return float(v) if _is_number(v) and math.isfinite(v) else None


def row_problem(row) -> str | None:
    """What makes a checksummed line unusable as a result row, or None. Metrics may be null
    (missing), but not of another type; the key must be the hash of the config, as the sweep makes it."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if not isinstance(row.get("key"), str):
        return "no 'key' string"
    config = row.get("config")
    if not isinstance(config, dict):
        return "no 'config' object"
    missing = [f for f in CONFIG_FIELDS if f not in config]
    if missing:
        return f"config lacks {', '.join(missing)}"
    if config_hash(config) != row["key"]:
        return f"key {row['key']} is not the hash of its config ({config_hash(config)})"
    prov = row.get("provenance")
    if not isinstance(prov, dict) or not isinstance(prov.get("git_commit"), str):
        return "no 'provenance' object with a 'git_commit'"
    for f in NUMBER_FIELDS:
        if row.get(f) is not None and not _is_number(row[f]):
            return f"'{f}' is {row[f]!r}, not a number or null"
    for f in MAPPING_FIELDS:
        if row.get(f) is not None and not isinstance(row[f], dict):
            return f"'{f}' is {row[f]!r}, not an object or null"
    ci = row.get("fid_ci")
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(v is None or _is_number(v) for v in ci)):
        return f"'fid_ci' is {ci!r}, not [low, high]"
    if row.get("fits") is not None and not isinstance(row["fits"], bool):
        return f"'fits' is {row['fits']!r}, not true, false or null"
    return None


def _lines(path: Path) -> tuple[list[bytes], int]:
    """The complete lines of a JSONL file and the length of a torn last line (no newline yet)."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), len(data) - end


def load_sweep(sweep_dir: str | Path, skip_damaged: bool = False) -> Sweep:
    """Read a sweep directory's rows without changing anything in it. Raises :class:`ReportError`
    for a missing directory, no rows, or a line that is not a valid row; with ``skip_damaged``,
    lines the sweep itself ignores (not JSON, or a checksum that does not match: a crash damaged
    them, and the sweep runs their points again) are listed in ``skipped`` instead."""
    d = Path(sweep_dir)
    if not d.is_dir():
        raise ReportError(f"{d}: no such sweep directory" if not d.exists() else f"{d}: not a directory")
    path = d / RESULTS_FILE
    if not path.is_file():
        raise ReportError(f"{path}: no results file: not a sweep output directory, or no point has finished yet")
    lines, torn = _lines(path)
    sweep = Sweep(d, [])
    if torn:
        sweep.skipped.append(f"{path}: last line ({torn} bytes) has no newline: an append in progress or killed")
    seen = set()
    for i, line in enumerate(lines, 1):
        where = f"{path}:{i}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            damage = f"not JSON ({err})"
        else:
            damage = None if isinstance(row, dict) and row.get("checksum") == checksum(row) else \
                "its checksum does not match its content"
        if damage:
            if not skip_damaged:
                raise ReportError(f"{where}: damaged line: {damage}; the sweep ignores it and reruns its point "
                                  "(--skip-damaged reports the other rows)")
            sweep.skipped.append(f"{where}: damaged line: {damage}")
            continue
        problem = row_problem(row)
        if problem:
            raise ReportError(f"{where}: malformed result row: {problem}")
        if row["key"] in seen:  # as ResultStore: the first valid row of a key counts
            sweep.skipped.append(f"{where}: a second row of point {row['key']} (the first is used)")
            continue
        seen.add(row["key"])
        sweep.rows.append(row)
    if not sweep.rows:
        skipped = f" ({len(sweep.skipped)} line(s) skipped)" if sweep.skipped else ""
        raise ReportError(f"{path}: no result rows{skipped}")
    exp = d / EXPERIMENT_FILE
    if exp.is_file():
        try:
            sweep.experiment = json.loads(exp.read_text())
        except ValueError as err:
            raise ReportError(f"{exp}: not JSON ({err})") from None
        if not isinstance(sweep.experiment, dict):
            raise ReportError(f"{exp}: expected a JSON object, got {type(sweep.experiment).__name__}")
    errors = d / ERRORS_FILE
    if errors.is_file():
        failed = {}
        for line in _lines(errors)[0]:
            entry = ResultStore.parse(line)
            if entry is not None and entry["key"] not in seen:
                failed[entry["key"]] = entry  # the latest failure of a point
        sweep.failures = list(failed.values())
    return sweep


def label(row: dict) -> str:
    """A short human name of a point: its config fields that are set."""
    c = row["config"]
    parts = [c["model"], c["precision"], c["method"]] + ([f"sparse {c['sparsity']}"] if c["sparsity"] else [])
    return " ".join(str(p) for p in parts) + f" {c['device']}@{c['target']} seed {c['seed']}"


def tidy(rows: list[dict]) -> list[dict]:
    """One flat dict per point: its key, config fields and metrics (None when missing), for tables
    and dataframes (the shape ``pandas.DataFrame`` takes)."""
    table = []
    for r in rows:
        ci = r.get("fid_ci") or [None, None]
        prov = r.get("provenance") or {}
        t = {"key": r["key"], **{f: r["config"][f] for f in CONFIG_FIELDS}}
        t.update({name: metric(r, name) for name in METRICS})
        t.update(fid_ci_low=ci[0], fid_ci_high=ci[1], fid_floor=r.get("fid_floor"),
                 cycles_per_image_pipelined=r.get("cycles_per_image_pipelined"), fits=r.get("fits"))
        t.update({f"res_{k}": v for k, v in (r.get("resources") or {}).items()})
        t.update({f"util_{k}": v for k, v in (r.get("utilization") or {}).items()})
        t["git_commit"] = prov.get("git_commit")
        table.append(t)
    return table


def non_dominated(points: list[tuple[float, ...]]) -> list[int]:
    """Indices of the points no other point dominates (all objectives minimized; q dominates p if
    it is no worse in every objective and better in one). Exact comparisons: equal points do not
    dominate each other, so all copies of a front point stay on it. A dominator comes before the
    point in lexicographic order, and some front point dominates every dominated one, so checking
    each point against the front so far suffices."""
    order = sorted(range(len(points)), key=lambda i: points[i])
    front: list[int] = []
    for i in order:
        p = points[i]
        if not any(all(a <= b for a, b in zip(points[j], p)) and points[j] != p for j in front):
            front.append(i)
    return sorted(front)


@dataclass
class Front:
    """A Pareto front of rows over ``objectives`` (minimized), and the rows that are not on it."""

    objectives: tuple[str, ...]
    front: list[dict]  # sorted by the objectives
    dominated: list[dict]
    excluded: list[tuple[dict, str]]  # rows left out of the comparison, and why

    def keys(self) -> set[str]:
        return {r["key"] for r in self.front}


def pareto_front(rows: list[dict], objectives: tuple[str, ...] = FRONTS[0], require_fit: bool = True) -> Front:
    """The non-dominated rows over ``objectives`` (names of :data:`METRICS`). Rows missing one of
    them are excluded and listed; so, with ``require_fit``, are designs that do not fit their
    device: a cost the device cannot build is not a trade-off on offer."""
    usable, excluded = [], []
    for r in rows:
        missing = [o for o in objectives if metric(r, o) is None]
        if missing:
            excluded.append((r, f"no {', '.join(missing)}"))
        elif require_fit and r.get("fits") is not True:
            excluded.append((r, f"does not fit {r['config']['device']}" if r.get("fits") is False else "fit unknown"))
        else:
            usable.append(r)
    points = [tuple(metric(r, o) for o in objectives) for r in usable]
    on = set(non_dominated(points))
    front = sorted((usable[i] for i in on), key=lambda r: tuple(metric(r, o) for o in objectives))
    return Front(tuple(objectives), front, [r for i, r in enumerate(usable) if i not in on], excluded)


def paired_fid(work: str | Path, configs: dict[str, dict], pairs: list[tuple[str, str]], n_boot: int = 200,
               seed: int = 0, extractor: str = "classifier") -> dict:
    """FID differences A - B between points of one sweep, with one bootstrap over the shared noise
    seeds: sample i of every point started from the same noise, so resampling the same indices for
    every point keeps the pairing, and the difference is far tighter than the two intervals
    suggest. ``configs`` maps a name to a point's config; the images are read back from the sweep's
    work directory (``work/quantized``, ``work/samples``), nothing is resampled."""
    from hwsim.evaluate import generate
    from hwsim.metrics import fid as fidlib
    from hwsim.modeldir import load_spec
    from hwsim.sweep.experiment import eval_config, quant_config

    work = Path(work)
    qdirs = {name: work / "quantized" / config_hash(quant_config(c)) for name, c in configs.items()}
    dataset = load_spec(next(iter(qdirs.values()))).dataset
    real = fidlib.reference_features(dataset, extractor)
    model = fidlib.make_extractor(extractor, dataset)
    feats = {}
    for name, c in configs.items():
        images = generate(qdirs[name], c["samples"], c["steps"], "ddim", c["seed"], "intsim", progress=False,
                          resume_dir=work / "samples" / config_hash(eval_config(c)))  # the sweep's stored batches
        feats[name] = fidlib.extract_features(model, images)
    out = fidlib.paired_differences(real, feats, pairs, n_boot, seed)
    return {"n_bootstrap": n_boot, "seed": seed, "samples": len(next(iter(feats.values()))), "differences": out}
