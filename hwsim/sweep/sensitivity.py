"""Per-layer sensitivity, and a mixed-precision plan derived from it (issue 8).

:func:`layer_sensitivity` quantizes the net once per (layer, change): the base precision plan
with that ONE layer lowered (``{"weight_bits": 4}``, ``{"act_bits": 4}``, ... any
:class:`~hwsim.quant.plan.Override` fields), and measures

- the output MSE and SQNR against the float net on fixed inputs
  (:func:`hwsim.quant.diagnose.output_mse`, inputs from :func:`~hwsim.quant.diagnose.fixed_inputs`);
- the energy per image, cycles and latency of the whole net under that plan: the integer graph
  is exported, mapped, folded and priced with the sweep's own functions
  (:func:`~hwsim.export.intgraph.to_integer_graph`, :func:`~hwsim.dataflow.mapping.map_integer_graph`,
  :func:`~hwsim.dataflow.cost.cost_report`), without sampling and without the bit-exactness
  check (the sweep runs that check for every plan it samples);

quantizing with :func:`hwsim.quant.qmodel.quantize_dir`, as a sweep point does. Rows are written
to a JSON file as they finish (atomically); a rerun with the same setup skips the finished ones
and refuses a file made with another setup.

:func:`mixed_plan` is the greedy knapsack over those rows: lower first the (layer, change) with
the least predicted MSE increase per microjoule saved, skip any that would take the summed
increase over ``budget``, and write the result as a plan YAML (one rule per lowered layer,
matching its exact module name) that :func:`hwsim.quant.plan.load_plan` reads. The sum is a
prediction (it assumes the layers' errors and savings add up); :func:`measure_plan` measures the
plan for real. ``experiments/sensitivity.py`` runs it all on unet-digits (docs/sweeps.md).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from hwsim import config as cfgio
from hwsim.quant.plan import LayerPrecision, Override, PlanError, PrecisionPlan, Rule, resolve_for_net
from hwsim.sweep.store import atomic_write_json, atomic_write_text

Inputs = list[tuple[torch.Tensor, torch.Tensor]]
SCHEMA = 1
ENERGY_KEYS = ("fpga", "asic45nm")
OVERRIDE_FIELDS = tuple(f.name for f in dataclasses.fields(Override))


class SensitivityError(ValueError):
    """Bad arguments (a budget, a change, a layer name) or a rows file of another setup."""


# ---------------------------------------------------------------------------------------------
# measuring one plan


def _loaded(model):
    from hwsim.modeldir import LoadedModel, load_model

    return model if isinstance(model, LoadedModel) else load_model(model)


@torch.no_grad()
def output_power(float_net: nn.Module, inputs: Inputs) -> float:
    """Mean square of the float net's output over ``inputs`` (averaged as output_mse averages)."""
    from hwsim.quant.quantize import prepared

    reference = prepared(float_net)
    return sum(float((reference(x.double(), t) ** 2).mean()) for x, t in inputs) / len(inputs)


def sqnr_db(signal: float, mse: float) -> float:
    return math.inf if mse <= 0 else 10 * math.log10(max(signal, 1e-30) / mse)


def layer_macs(report: dict) -> dict[str, int]:
    """MACs per denoiser step of every weight layer, from a cost report's MVAU nodes (by the
    module name their source starts with)."""
    out: dict[str, int] = {}
    for node in report["nodes"]:
        if node["op_type"] == "MVAU":
            module = node["source"].split("+")[0].split(":")[0]
            out[module] = out.get(module, 0) + int(node["macs"])
    return out


def plan_cost(qnet: nn.Module, example_input, steps: int, cost=None) -> dict:
    """Export ``qnet``'s integer graph (to a temporary directory), map it and price it for
    ``steps`` sampler steps: the sweep's cost stage without a model directory. The full report."""
    from hwsim.dataflow.cost import CostConfig, cost_report
    from hwsim.dataflow.mapping import map_integer_graph
    from hwsim.export.intgraph import to_integer_graph
    from hwsim.export.pipeline import GRAPH_FILE

    cost = cost if cost is not None else CostConfig()
    with tempfile.TemporaryDirectory(prefix="hwsim-sens-") as tmp:
        graph = map_integer_graph(to_integer_graph(qnet, example_input, Path(tmp) / GRAPH_FILE), steps)
        graph.steps = steps
        return cost_report(graph, cost)


def measure_plan(model, plan: PrecisionPlan, inputs: Inputs, *, calib=None, methods: Iterable[str] = (),
                 cost=None, steps: int = 20, signal: float | None = None) -> dict:
    """Quantize the model directory by ``plan`` (:func:`hwsim.quant.qmodel.quantize_dir`, as a
    sweep point), then its output MSE/SQNR on ``inputs`` and its cost for ``steps`` steps.
    ``signal``: :func:`output_power` of the float net on ``inputs`` (computed if None)."""
    from hwsim.quant.calibrate import CalibrationConfig
    from hwsim.quant.diagnose import output_mse
    from hwsim.quant.qmodel import quantize_dir

    model = _loaded(model)
    calib = calib if calib is not None else CalibrationConfig()
    started = time.time()
    q = quantize_dir(model.path, plan, calib, list(methods))
    qnet = q.net()
    mse = output_mse(qnet, model.net, inputs)
    signal = output_power(model.net, inputs) if signal is None else signal
    report = plan_cost(qnet, q.example_input(), steps, cost)
    return {
        "mse": mse, "sqnr_db": sqnr_db(signal, mse),
        "energy_uj_per_image": dict(report["energy_per_image_uj"]),
        "cycles_per_image": report["cycles_per_image"],
        "cycles_per_step": {"ii": report["cycles_per_step"]["ii"], "latency": report["cycles_per_step"]["latency"]},
        "latency_s_per_image": report["seconds_per_image"],
        "fits": report["fits"], "folding_target_cycles": report["folding"]["target_cycles"],
        "utilization": report["utilization"], "macs_per_step": report["macs_per_step"],
        "bitops_per_step": report["bitops_per_step"], "weight_bits_onchip": report["onchip_bits"]["weights"],
        "quantized_layers": _quantized_layers(qnet), "layer_macs": layer_macs(report),
        "seconds": round(time.time() - started, 2),
    }


def _quantized_layers(qnet: nn.Module) -> list[str]:
    from hwsim.quant.modules import GroupQuantLayer

    return [n for n, m in qnet.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, GroupQuantLayer))]


# ---------------------------------------------------------------------------------------------
# plans with one layer changed


def _check_change(change) -> dict:
    if not isinstance(change, dict) or not change:
        raise SensitivityError(f"a change is a non-empty mapping of Override fields {OVERRIDE_FIELDS}, got {change!r}")
    unknown = sorted(set(change) - set(OVERRIDE_FIELDS))
    if unknown:
        raise SensitivityError(f"change {change}: unknown field(s) {unknown}; allowed: {list(OVERRIDE_FIELDS)}")
    try:
        Override(**change).apply(LayerPrecision())
    except PlanError as err:
        raise SensitivityError(f"change {change}: {err}") from None
    return dict(sorted(change.items()))


def change_key(change: dict) -> str:
    """A short stable name of a change: ``weight_bits=4``, ``act_bits=4+weight_bits=2``."""
    return "+".join(f"{k}={v}" for k, v in sorted(change.items()))


def _label(before: LayerPrecision, after: LayerPrecision) -> str:
    """``W8->W4``, ``A8->A4``, ``W8A8->W4A4``, or the changed fields."""
    parts = []
    if before.weight_bits != after.weight_bits:
        parts.append(("W", before.weight_bits, after.weight_bits))
    if before.act_bits != after.act_bits:
        parts.append(("A", before.act_bits, after.act_bits))
    text = "".join(f"{p}{a}" for p, a, _ in parts) + "->" + "".join(f"{p}{b}" for p, _, b in parts) if parts else ""
    others = [f"{f}={getattr(after, f)}" for f in ("weight_granularity", "scale", "group_size")
              if getattr(before, f) != getattr(after, f)]
    return " ".join(x for x in [text, *others] if x) or "unchanged"


def exact_match(name: str) -> str:
    """An fnmatch pattern matching exactly the module ``name`` (glob characters escaped)."""
    return glob.escape(name)


def with_layer_overrides(base_plan: PrecisionPlan, overrides: dict[str, dict]) -> PrecisionPlan:
    """``base_plan`` plus one rule per layer (exact name), after its own rules."""
    rules = tuple(Rule(match=exact_match(layer), **change) for layer, change in overrides.items())
    return dataclasses.replace(base_plan, rules=tuple(base_plan.rules) + rules)


def _tensor_digest(inputs: Inputs) -> str:
    h = hashlib.sha256()
    for x, t in inputs:
        h.update(x.detach().double().contiguous().numpy().tobytes())
        h.update(t.detach().long().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# the sensitivity table


def _read_rows(path: Path, setup: dict) -> dict:
    data = json.loads(path.read_text())
    if data.get("setup") != setup:
        stored = data.get("setup") or {}
        diff = sorted(k for k in set(stored) | set(setup) if stored.get(k) != setup.get(k))
        raise SensitivityError(f"{path}: rows of another setup (differs in {', '.join(diff) or 'format'}); "
                               "delete the file or write to another path")
    return data


def layer_sensitivity(model, base_plan: PrecisionPlan, lowered, inputs: Inputs, *, calib=None,
                      methods: Iterable[str] = (), cost=None, steps: int = 20, out: str | Path | None = None,
                      layers: list[str] | None = None, log: Callable[[str], None] | None = None) -> list[dict]:
    """One row per (quantized compute layer, change): the base plan with only that layer changed.

    ``model``: a :class:`~hwsim.modeldir.LoadedModel` or a float model directory; ``lowered``:
    one change (Override fields, e.g. ``{"weight_bits": 4}``) or a list of them; ``inputs``:
    fixed (x_t, t) inputs; ``calib``, ``methods``: the quantization recipe (as a sweep point's);
    ``cost``: a :class:`~hwsim.dataflow.cost.CostConfig`; ``steps``: sampler steps per image for
    the cost; ``layers``: a subset of the quantized layers (default: all, in net order); ``out``:
    the JSON file the rows go to as they finish (rerun to resume). Rows are in layer order, then
    change order; a change that leaves a layer's precision as it is gives a row with
    ``status: "unchanged"`` and no measurement.
    """
    from hwsim.dataflow.cost import CostConfig
    from hwsim.modeldir import WEIGHTS_FILE
    from hwsim.provenance import file_sha256, provenance
    from hwsim.quant.calibrate import CalibrationConfig

    model = _loaded(model)
    calib = calib if calib is not None else CalibrationConfig()
    cost = cost if cost is not None else CostConfig()
    methods = list(methods)
    changes = [_check_change(c) for c in ([lowered] if isinstance(lowered, dict) else list(lowered))]
    if not changes:
        raise SensitivityError("no change to measure: 'lowered' is empty")
    keys = [change_key(c) for c in changes]
    if len(set(keys)) != len(keys):
        raise SensitivityError(f"repeated changes in {changes}")
    if not inputs:
        raise SensitivityError("no inputs to measure the output MSE on")
    try:
        resolved = resolve_for_net(base_plan, model.net)
    except PlanError as err:
        raise SensitivityError(f"base plan does not fit the model: {err}") from None
    say = log or (lambda msg: None)
    setup = {
        "schema": SCHEMA, "model": model.name, "model_sha256": file_sha256(model.path / WEIGHTS_FILE),
        "base_plan": cfgio.to_dict(base_plan), "changes": changes, "calibration": cfgio.to_dict(calib),
        "methods": methods, "cost": cfgio.to_dict(cost), "steps": steps,
        "inputs": {"batches": len(inputs), "sha256": _tensor_digest(inputs)},
    }
    path = Path(out) if out is not None else None
    data = _read_rows(path, setup) if path is not None and path.is_file() else {"setup": setup}
    started, cpu = time.time(), time.process_time()
    spent = data.get("cpu_seconds", 0.0)

    def save() -> None:
        if path is not None:
            data["cpu_seconds"] = round(spent + time.process_time() - cpu, 1)
            data["provenance"] = provenance()
            atomic_write_json(path, data)

    signal = output_power(model.net, inputs)
    if "base" not in data:
        say(f"sensitivity: base plan {base_plan.describe()}")
        data["base"] = {"plan": base_plan.describe(), "output_power": signal,
                        **measure_plan(model, base_plan, inputs, calib=calib, methods=methods, cost=cost,
                                       steps=steps, signal=signal)}
        save()
    base = data["base"]
    quantized = base["quantized_layers"]
    if layers is None:
        layers = quantized
    else:
        unknown = [n for n in layers if n not in quantized]
        if unknown:
            raise SensitivityError(f"unknown layer(s) {unknown}: not quantized compute layers of {model.name}; "
                                   f"those are {quantized}")
    total_macs = base["macs_per_step"]
    done = {(r["layer"], r["change_key"]) for r in data.get("rows", [])}
    data.setdefault("rows", [])
    todo = [(layer, change) for layer in layers for change in changes if (layer, change_key(change)) not in done]
    for i, (layer, change) in enumerate(todo):
        before = resolved[layer]
        after = Override(**change).apply(before)
        row = {"layer": layer, "change": _label(before, after), "change_key": change_key(change), "override": change,
               "macs": base["layer_macs"].get(layer), "macs_share": None}
        if row["macs"] is not None and total_macs:
            row["macs_share"] = row["macs"] / total_macs
        if after == before:
            row["status"] = "unchanged"
        else:
            say(f"sensitivity: [{i + 1}/{len(todo)}] {layer} {row['change']}")
            m = measure_plan(model, with_layer_overrides(base_plan, {layer: change}), inputs, calib=calib,
                             methods=methods, cost=cost, steps=steps, signal=signal)
            row.update({
                "status": "measured", "mse": m["mse"], "sqnr_db": m["sqnr_db"],
                "delta_mse": m["mse"] - base["mse"], "delta_sqnr_db": m["sqnr_db"] - base["sqnr_db"],
                "mse_ratio": m["mse"] / base["mse"] if base["mse"] else None,
                "energy_uj_per_image": m["energy_uj_per_image"],
                "energy_saved_uj": {k: base["energy_uj_per_image"][k] - v for k, v in m["energy_uj_per_image"].items()},
                "cycles_per_image": m["cycles_per_image"], "delta_cycles": m["cycles_per_image"] - base["cycles_per_image"],
                "latency_s_per_image": m["latency_s_per_image"], "fits": m["fits"], "seconds": m["seconds"],
            })
        data["rows"].append(row)
        save()
    order = {(layer, change_key(c)): (li, ci) for li, layer in enumerate(quantized) for ci, c in enumerate(changes)}
    rows = [r for r in data["rows"] if r["layer"] in layers and (r["layer"], r["change_key"]) in order]
    rows.sort(key=lambda r: order[(r["layer"], r["change_key"])])
    for r in rows:
        r["base_mse"], r["base_energy_uj_per_image"] = base["mse"], base["energy_uj_per_image"]
    say(f"sensitivity: {len(rows)} rows, {time.time() - started:.0f} s")
    return rows


def read_sensitivity(path: str | Path) -> dict:
    """The rows file as written: ``setup``, ``base`` (the base plan's measurement), ``rows``."""
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------------------------------
# the mixed plan


@dataclass
class MixedPlan:
    plan: PrecisionPlan
    chosen: list[dict]  # the rows lowered, in the greedy's order
    overrides: dict[str, dict]  # layer -> merged override fields
    budget: float
    predicted_delta_mse: float  # sum of the chosen rows' MSE increases (negative ones counted as 0)
    predicted_energy_saved_uj: float  # sum of their savings (``energy`` key)
    energy: str
    skipped: list[dict] = field(default_factory=list)  # candidates over budget or conflicting

    def summary(self) -> dict:
        return {"plan": cfgio.to_dict(self.plan), "describe": self.plan.describe(), "budget": self.budget,
                "energy": self.energy, "predicted_delta_mse": self.predicted_delta_mse,
                "predicted_energy_saved_uj": self.predicted_energy_saved_uj,
                "lowered": [{"layer": r["layer"], "change": r["change"], "override": r["override"],
                             "delta_mse": r["delta_mse"], "energy_saved_uj": r["energy_saved_uj"][self.energy]}
                            for r in self.chosen],
                "overrides": self.overrides, "skipped": self.skipped}


def _plan_yaml(plan: PrecisionPlan, header: list[str]) -> str:
    import yaml

    def compact(o):
        return {k: v for k, v in dataclasses.asdict(o).items() if v is not None}

    doc: dict = {"default": dataclasses.asdict(plan.default)}
    for label in ("first", "last"):
        if getattr(plan, label) is not None:
            doc[label] = compact(getattr(plan, label))
    if plan.rules:
        doc["rules"] = [{"match": r.match, **{k: v for k, v in compact(r).items() if k != "match"}} for r in plan.rules]
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    return "".join(f"# {line}\n" for line in header) + body


def mixed_plan(rows: list[dict], base_plan: PrecisionPlan, budget: float, *, energy: str = "asic45nm",
               out: str | Path | None = None, model=None) -> MixedPlan:
    """Greedy mixed precision from sensitivity rows (module docstring).

    Candidates are the measured rows that save energy (``energy_saved_uj[energy] > 0``), taken in
    order of predicted MSE increase per microjoule saved (a negative increase counts as 0: free);
    one is lowered unless it would take the summed increase over ``budget`` (an MSE increase over
    the base plan, >= 0), or it changes a field another chosen change of the same layer already
    set (two changes of one layer that touch different fields combine). ``out``: write the plan
    YAML there; ``model``: check the rows' layers and the plan against that net (LoadedModel,
    model directory or nn.Module).

    ``energy`` picks the cost report's figure the savings are counted in. The default,
    ``asic45nm``, prices operations and memory accesses, so one layer's saving is its own and
    savings add up; ``fpga`` at a ``device`` folding target is mostly static energy x latency of
    the fastest folding that fits, which one layer's change moves for the whole net (on
    unet-digits any one DSP-bound layer at W4 frees enough multipliers to cut ~8% of the cycles),
    so per-layer FPGA savings do not add up.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget < 0:
        raise SensitivityError(f"budget must be a finite MSE increase >= 0, got {budget!r}")
    if energy not in ENERGY_KEYS:
        raise SensitivityError(f"energy must be one of {ENERGY_KEYS}, got {energy!r}")
    if not rows:
        raise SensitivityError("no sensitivity rows")
    for r in rows:
        missing = [k for k in ("layer", "override", "status") if k not in r]
        if missing:
            raise SensitivityError(f"not a sensitivity row (no {missing}): {str(r)[:200]}")
    if model is not None:
        names = _quantizable(model)
        unknown = sorted({r["layer"] for r in rows} - set(names))
        if unknown:
            raise SensitivityError(f"unknown layer(s) {unknown} in the rows: not compute layers of the model")
    candidates = [r for r in rows if r["status"] == "measured" and r["energy_saved_uj"][energy] > 0]
    candidates.sort(key=lambda r: (max(r["delta_mse"], 0.0) / r["energy_saved_uj"][energy], -r["energy_saved_uj"][energy]))
    chosen, skipped, overrides = [], [], {}
    total, saved = 0.0, 0.0
    for r in candidates:
        cost = max(r["delta_mse"], 0.0)
        merged = overrides.get(r["layer"], {})
        if set(merged) & set(r["override"]):
            skipped.append({"layer": r["layer"], "change": r["change"], "reason": "layer already lowered in that field"})
            continue
        if total + cost > budget:
            skipped.append({"layer": r["layer"], "change": r["change"], "reason": "over budget"})
            continue
        overrides[r["layer"]] = {**merged, **r["override"]}
        chosen.append(r)
        total += cost
        saved += r["energy_saved_uj"][energy]
    layer_order = list(dict.fromkeys(r["layer"] for r in rows))
    ordered = {layer: dict(sorted(overrides[layer].items())) for layer in layer_order if layer in overrides}
    plan = with_layer_overrides(base_plan, ordered)
    if model is not None:
        resolve_for_net(plan, model if isinstance(model, nn.Module) else _loaded(model).net)
    result = MixedPlan(plan, chosen, ordered, float(budget), total, saved, energy, skipped)
    if out is not None:
        header = [f"Mixed precision from per-layer sensitivity (hwsim.sweep.sensitivity.mixed_plan): {plan.describe()}",
                  f"budget (MSE increase over the base plan): {budget:.6g}; predicted increase {total:.6g}; "
                  f"predicted {energy} energy saved {saved:.6g} uJ/image",
                  f"{len(ordered)} layer(s) lowered: {', '.join(ordered) or 'none'}"]
        atomic_write_text(out, _plan_yaml(plan, header))
    return result


def fit_mixed_plan(rows: list[dict], base_plan: PrecisionPlan, budget: float, measure: Callable[[PrecisionPlan], dict],
                   base_mse: float, *, energy: str = "asic45nm", out: str | Path | None = None, model=None,
                   max_rounds: int = 5) -> tuple[MixedPlan, dict, list[dict]]:
    """:func:`mixed_plan`, verified: ``measure(plan)`` (e.g. :func:`measure_plan`) gives the plan's
    actual ``mse``; while its increase over ``base_mse`` exceeds ``budget`` (the layers' errors
    need not add up), the greedy runs again with its budget shrunk by actual / allowed. Returns
    the last plan, its measurement and every round (``within_budget`` says whether the last fits;
    after ``max_rounds`` it may not)."""
    if max_rounds < 1:
        raise SensitivityError(f"max_rounds must be >= 1, got {max_rounds}")
    greedy_budget, rounds = budget, []
    for i in range(max_rounds):
        mixed = mixed_plan(rows, base_plan, greedy_budget, energy=energy, out=out, model=model)
        measured = measure(mixed.plan)
        actual = measured["mse"] - base_mse
        rounds.append({"round": i, "greedy_budget": greedy_budget, "lowered": len(mixed.chosen),
                       "predicted_delta_mse": mixed.predicted_delta_mse, "actual_delta_mse": actual,
                       "predicted_energy_saved_uj": mixed.predicted_energy_saved_uj,
                       "within_budget": actual <= budget})
        if actual <= budget or not mixed.chosen:
            break
        greedy_budget = min(mixed.predicted_delta_mse, greedy_budget) * budget / actual * 0.99
    return mixed, measured, rounds


def _quantizable(model) -> list[str]:
    from hwsim.quant.plan import compute_layers

    if isinstance(model, nn.Module):
        return compute_layers(model)
    return compute_layers(_loaded(model).net)


__all__ = ["MixedPlan", "SensitivityError", "change_key", "exact_match", "layer_sensitivity", "measure_plan",
           "mixed_plan", "fit_mixed_plan", "output_power", "plan_cost", "read_sensitivity", "sqnr_db", "with_layer_overrides"]
