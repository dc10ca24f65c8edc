"""Experiment files: what a sweep varies, checked whole before any work, expanded into points.

An experiment is one YAML mapping (docs/sweeps.md has the reference). Axes take a value or a
non-empty list, and the points are their product (``sampling: grid``) or a seeded random subset
of it (``sampling: {random: N, seed: S}``):

    models: [unet-digits]                # names under models/, or model directories
    methods: [naive, split-shortcut+adaround]   # or a mapping name -> {methods: [...], observer: ...}
    precisions: [W8A8, W8A8N12, W8A6T4, plans/mixed.yaml]  # WxAy[Nz][Fm][Tg] or a plan file (_precisions)
    sparsity: [none, "2:4"]              # weight pruning before calibration (the sparse-* methods)
    targets: [device, 100000]            # folding target: fastest that fits, or cycles per step
    devices: [ecp5-85f]
    samples: 32                          # FID samples, through the integer simulator
    steps: 5                             # DDIM steps, for sampling and for the cost per image
    seeds: [0]                           # initial noise of the FID samples and the bootstrap

Every point becomes a :class:`Point` whose ``config`` is the full, resolved description of the
work (the plan as data, the calibration config with its defaults, the model's weights hash) and
whose ``key`` is a hash of it: results are keyed by that hash, so a point is recomputed only if
something that determines its result changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim import config as cfgio

SCHEMA = 1  # part of every point's hash: bump when a point's meaning changes
REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"

AXES = ("models", "methods", "precisions", "sparsity", "targets", "devices", "samples", "steps", "seeds")
SETTINGS = ("name", "description", "calibration", "weight_granularity", "fid", "export_check", "cost", "sampling",
            "seconds_per_point")
REQUIRED = ("models", "methods", "precisions", "samples")
DEFAULTS: dict[str, Any] = {
    "sparsity": [None], "targets": ["device"], "devices": ["ecp5-85f"], "steps": [50], "seeds": [0],
    "calibration": {}, "weight_granularity": "per_channel", "fid": {}, "export_check": {}, "cost": {},
    "sampling": "grid", "seconds_per_point": None, "description": "",
}
FID_DEFAULTS = {"extractor": "classifier", "bootstrap": 100}
EXPORT_CHECK_DEFAULTS = {"samples": 2, "steps": 50}  # the bit-exactness check of every integer graph
EXTRACTORS = ("classifier", "inception")
NAIVE = "naive"  # no PTQ method: min-max calibration, the baseline of every comparison


class ExperimentError(ValueError):
    """An experiment file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Point:
    config: dict  # everything that determines the result (hashed)
    model_dir: str  # where the model is on this machine (not hashed: the weights' hash is)
    key: str = ""

    def __post_init__(self):
        object.__setattr__(self, "key", config_hash(self.config))

    def label(self) -> str:
        c = self.config
        parts = [c["model"], c["precision"], c["method"]]
        if c["sparsity"]:
            parts.append(f"s{c['sparsity']}")
        parts += [f"{c['device']}@{c['target']}", f"n{c['samples']}", f"T{c['steps']}", f"seed{c['seed']}"]
        return " ".join(parts)


@dataclass
class Experiment:
    path: Path
    name: str
    description: str
    points: list[Point]
    grid_size: int
    seconds_per_point: float | None
    raw: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"name": self.name, "description": self.description, "file": str(self.path), "raw": self.raw,
                "grid_size": self.grid_size, "points": [{"key": p.key, "config": p.config} for p in self.points]}


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(config: dict) -> str:
    """The key of a point: sha256 of its config as canonical JSON (sorted keys), 16 hex digits."""
    return hashlib.sha256(canonical(config).encode()).hexdigest()[:16]


def quant_config(config: dict) -> dict:
    """The part of a point that determines its quantized model directory (shared between points)."""
    keys = ("schema", "model", "model_sha256", "methods", "sparsity", "calibration", "plan", "export_check")
    return {k: config[k] for k in keys}


def eval_config(config: dict) -> dict:
    """The part that determines its FID (the quantized model, the samples, the FID settings)."""
    return {"quant": config_hash(quant_config(config)), **{k: config[k] for k in ("samples", "steps", "seed", "fid")}}


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, msg: str):
        raise ExperimentError(f"{self.path}: {key}: {msg}")

    def axis(self, data: dict, key: str) -> list:
        value = data[key]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            self.fail(key, "empty list: the grid would have no points")
        if len({canonical(v) for v in values}) != len(values):
            self.fail(key, f"repeated values in {values}")
        return values

    def positive_int(self, key: str, value) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.fail(key, f"expected a positive integer, got {value!r}")
        return value

    def mapping(self, key: str, value, allowed) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            self.fail(key, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        return value


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resolve_path(text: str, base: Path) -> Path | None:
    for root in (base, Path.cwd(), REPO_ROOT):
        p = (root / text).resolve()
        if p.exists():
            return p
    return None


def _is_denoiser(path: Path) -> bool:
    from hwsim.modeldir import WEIGHTS_FILE, load_spec

    try:
        return load_spec(path) is not None and (path / WEIGHTS_FILE).is_file()
    except Exception:  # noqa: BLE001 - no config.json, or one of another kind (a classifier)
        return False


def _models(ck: _Checker, values: list, base: Path) -> list[tuple[str, Path]]:
    from hwsim.quant.qmodel import is_quantized

    out = []
    for i, name in enumerate(values):
        key = f"models[{i}]"
        if not isinstance(name, str) or not name:
            ck.fail(key, f"expected a model name or directory, got {name!r}")
        path = MODELS_DIR / name if (MODELS_DIR / name).is_dir() else _resolve_path(name, base)
        if path is None or not _is_denoiser(path):
            known = sorted(p.name for p in MODELS_DIR.glob("*") if _is_denoiser(p))
            ck.fail(key, f"unknown model {name!r}: not a denoiser in {MODELS_DIR} (known: {', '.join(known)}) "
                         "nor a denoiser model directory")
        if is_quantized(path):
            ck.fail(key, f"{path} is already quantized; a sweep quantizes float models itself")
        out.append((name, path))
    return out


def _methods(ck: _Checker, value, calib_defaults: dict) -> list[tuple[str, list[str], dict]]:
    """Recipes: (name, PTQ method names, calibration config as a dict)."""
    from hwsim.quant.calibrate import CalibrationConfig
    from hwsim.quant.methods import resolve

    calib_fields = {f.name for f in dataclasses.fields(CalibrationConfig)}
    if isinstance(value, dict):
        if not value:
            ck.fail("methods", "empty mapping: the grid would have no points")
        items = list(value.items())
    else:
        items = []
        for i, entry in enumerate(ck.axis({"methods": value}, "methods")):
            if not isinstance(entry, str) or not entry:
                ck.fail(f"methods[{i}]", "expected a method name like 'naive' or 'split-shortcut+adaround', "
                                         f"got {entry!r}")
            items.append((entry, {"methods": [] if entry == NAIVE else entry.split("+")}))
    recipes = []
    for name, recipe in items:
        key = f"methods.{name}"
        recipe = ck.mapping(key, recipe if recipe is not None else {}, calib_fields | {"methods"})
        names = recipe.get("methods", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            ck.fail(f"{key}.methods", f"expected a list of PTQ method names, got {names!r}")
        if any(n.startswith("sparse-") for n in names):
            ck.fail(f"{key}.methods", "sparsity is its own axis: use the top-level 'sparsity' key")
        try:
            resolve(names)
            calib = CalibrationConfig(**{**calib_defaults, **{k: v for k, v in recipe.items() if k != "methods"}})
        except (ValueError, TypeError) as err:
            ck.fail(key, str(err))
        recipes.append((str(name), list(names), cfgio.to_dict(calib)))
    return recipes


def _precisions(ck: _Checker, values: list, base: Path, granularity: str, models: list[tuple[str, Path]]):
    from hwsim.modeldir import load_model
    from hwsim.quant.plan import PlanError, load_plan, parse_shorthand, resolve_for_net

    plans = []
    for i, text in enumerate(values):
        key = f"precisions[{i}]"
        if not isinstance(text, str):
            ck.fail(key, f"expected 'WxAy[Nz][Fm][Tg]' or a plan file, got {text!r}")
        try:
            plan = parse_shorthand(text, granularity)
            if plan is None:
                path = _resolve_path(text, base)
                if path is None or not path.is_file():
                    ck.fail(key, f"{text!r} is neither WxAy (e.g. W4A8; W8A8N12: nonlinear ops at 12 bits, W8A8F8: float "
                                 f"scales with 8-bit mantissas, W8A6T4: 4 timestep groups) nor an existing precision plan file")
                plan = load_plan(path)
        except (PlanError, cfgio.ConfigError) as err:
            ck.fail(key, str(err))
        plans.append((text, plan))
    for name, path in models:  # every plan must fit every model (a rule matching no layer is an error)
        net = load_model(path).net
        for i, (text, plan) in enumerate(plans):
            try:
                resolve_for_net(plan, net)
            except PlanError as err:
                ck.fail(f"precisions[{i}]", f"does not fit model {name}: {err}")
    return [(text, _plan_data(plan)) for text, plan in plans]


def _plan_data(plan) -> dict:
    """The plan as data for a point's config; the defaults of fields added later (one timestep
    group, nonlinear ops at the default act_bits) are left out, so points keep their keys."""
    data = cfgio.to_dict(plan)
    for name, default in (("timestep_groups", 1), ("nonlinear_bits", None)):
        if name in data and data[name] == default:
            del data[name]
    return data


def _sparsity(ck: _Checker, values: list) -> list[str | None]:
    from hwsim.quant.methods import available, resolve

    known = sorted(n.removeprefix("sparse-") for n in available() if n.startswith("sparse-")) + ["<fraction>"]
    out = []
    for i, s in enumerate(values):
        if s in (None, "none", 0, "0"):
            out.append(None)
            continue
        if isinstance(s, int) and not isinstance(s, bool):
            ck.fail(f"sparsity[{i}]", f"{s!r} unknown; known: none, {', '.join(known)} (YAML reads an unquoted "
                                      "N:M as a base-60 number: quote it, e.g. '2:4')")
        s = str(s)
        try:
            resolve([f"sparse-{s}"])  # a registered pattern, or an unstructured fraction 0 < f < 1
        except ValueError as err:
            ck.fail(f"sparsity[{i}]", f"{s!r} unknown; known: none, {', '.join(known)}" if str(err).startswith("unknown")
                    else f"{s!r}: {err}")
        out.append(s)
    return out


def _targets(ck: _Checker, values: list) -> list[str]:
    out = []
    for i, t in enumerate(values):
        if t == "device":
            out.append("device")
        elif isinstance(t, int) and not isinstance(t, bool) and t > 0:
            out.append(str(t))
        elif isinstance(t, str) and t.isdigit() and int(t) > 0:
            out.append(str(int(t)))
        else:
            ck.fail(f"targets[{i}]", f"expected 'device' or a number of cycles per step, got {t!r}")
    return out


def _devices(ck: _Checker, values: list) -> list[str]:
    from hwsim.dataflow.resources import load_device

    for i, d in enumerate(values):
        try:
            load_device(d)
        except Exception as err:  # unknown device file
            ck.fail(f"devices[{i}]", f"unknown device {d!r} ({str(err).splitlines()[0]})")
    return [str(d) for d in values]


def _sampling(ck: _Checker, value, grid_size: int) -> tuple[str, int, int]:
    if value == "grid":
        return "grid", grid_size, 0
    spec = ck.mapping("sampling", value, {"random", "seed"}) if not isinstance(value, str) else None
    if spec is None or "random" not in spec:
        ck.fail("sampling", f"expected 'grid' or {{random: N, seed: S}}, got {value!r}")
    n = ck.positive_int("sampling.random", spec["random"])
    seed = spec.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        ck.fail("sampling.seed", f"expected an integer, got {seed!r}")
    if n > grid_size:
        ck.fail("sampling.random", f"{n} points asked from a grid of {grid_size}")
    return "random", n, seed


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file whole; every problem raises :class:`ExperimentError`
    naming the file and the key, before any point is run."""
    from hwsim.dataflow.cost import CostConfig
    from hwsim.data import load_dataset
    from hwsim.modeldir import load_spec
    from hwsim.quant.calibrate import CalibrationConfig

    path = Path(path)
    try:
        data = cfgio.read_mapping(path)
    except cfgio.ConfigError as err:
        raise ExperimentError(str(err)) from None
    ck = _Checker(path)
    unknown = sorted(set(data) - set(AXES) - set(SETTINGS))
    if unknown:
        ck.fail(", ".join(unknown), f"unknown key(s); allowed: {', '.join(AXES + SETTINGS)}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        ck.fail(", ".join(missing), "required key(s) missing")
    d = {**DEFAULTS, **data}
    base = path.resolve().parent

    calib_fields = {f.name for f in dataclasses.fields(CalibrationConfig)}
    calib_defaults = ck.mapping("calibration", d["calibration"] or {}, calib_fields)
    try:
        CalibrationConfig(**calib_defaults)
    except (ValueError, TypeError) as err:
        ck.fail("calibration", str(err))
    fid = {**FID_DEFAULTS, **ck.mapping("fid", d["fid"] or {}, FID_DEFAULTS)}
    if fid["extractor"] not in EXTRACTORS:
        ck.fail("fid.extractor", f"{fid['extractor']!r} unknown; known: {', '.join(EXTRACTORS)}")
    if not isinstance(fid["bootstrap"], int) or isinstance(fid["bootstrap"], bool) or fid["bootstrap"] < 0:
        ck.fail("fid.bootstrap", f"expected a non-negative integer, got {fid['bootstrap']!r}")
    check = {**EXPORT_CHECK_DEFAULTS, **ck.mapping("export_check", d["export_check"] or {}, EXPORT_CHECK_DEFAULTS)}
    for k, v in check.items():
        ck.positive_int(f"export_check.{k}", v)
    cost_fields = {f.name for f in dataclasses.fields(CostConfig)} - {"device", "target"}
    cost = ck.mapping("cost", d["cost"] or {}, cost_fields)
    try:
        cost = {k: v for k, v in dataclasses.asdict(CostConfig(**cost)).items() if k in cost_fields}
    except (ValueError, TypeError) as err:
        ck.fail("cost", str(err))
    seconds_per_point = d["seconds_per_point"]
    if seconds_per_point is not None and (not isinstance(seconds_per_point, (int, float)) or seconds_per_point <= 0):
        ck.fail("seconds_per_point", f"expected a positive number of seconds, got {seconds_per_point!r}")
    granularity = d["weight_granularity"]
    from hwsim.quant.plan import GRANULARITIES

    if granularity not in GRANULARITIES:
        ck.fail("weight_granularity", f"{granularity!r} unknown; known: {', '.join(GRANULARITIES)}")

    models = _models(ck, ck.axis(d, "models"), base)
    recipes = _methods(ck, d["methods"], calib_defaults)
    plans = _precisions(ck, ck.axis(d, "precisions"), base, granularity, models)
    sparsity = _sparsity(ck, ck.axis(d, "sparsity"))
    targets = _targets(ck, ck.axis(d, "targets"))
    devices = _devices(ck, ck.axis(d, "devices"))
    samples = [ck.positive_int(f"samples[{i}]", v) for i, v in enumerate(ck.axis(d, "samples"))]
    steps = [ck.positive_int(f"steps[{i}]", v) for i, v in enumerate(ck.axis(d, "steps"))]
    seeds = ck.axis(d, "seeds")
    for i, s in enumerate(seeds):
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            ck.fail(f"seeds[{i}]", f"expected a non-negative integer, got {s!r}")
    for name, mpath in models:  # the data floor needs as many real training images as samples
        dataset = load_spec(mpath).dataset
        available = len(load_dataset(dataset, "train"))
        if max(samples) > available:
            ck.fail("samples", f"{max(samples)} samples, but the data floor of {name} ({dataset}) has only "
                               f"{available} training images")

    model_info = [(name, str(mpath), _sha256(mpath / "weights.safetensors")) for name, mpath in models]
    grid = list(itertools.product(model_info, recipes, plans, sparsity, devices, targets, samples, steps, seeds))
    grid_size = len(grid)
    mode, count, seed = _sampling(ck, d["sampling"], grid_size)
    if mode == "random":
        grid = [grid[i] for i in sorted(random.Random(seed).sample(range(len(grid)), count))]
    points = []
    for (model, mdir, sha), (method, names, calib), (prec, plan), sp, dev, tgt, n, t, s in grid:
        config = {
            "schema": SCHEMA, "model": model, "model_sha256": sha,
            "method": method, "methods": names + ([f"sparse-{sp}"] if sp else []), "calibration": calib,
            "precision": prec, "plan": plan, "sparsity": sp,
            "device": dev, "target": tgt, "cost": cost,
            "samples": n, "steps": t, "seed": s, "fid": fid, "export_check": check,
        }
        points.append(Point(config, mdir))
    keys = [p.key for p in points]
    if len(set(keys)) != len(keys):
        ck.fail("axes", "two entries resolve to the same point (e.g. sparsity 'none' and null)")
    name = d.get("name") or path.stem
    return Experiment(path, str(name), str(d["description"]), points, grid_size, seconds_per_point, data)
