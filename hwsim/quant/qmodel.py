"""Quantized model directories: a float model directory plus what makes it quantized.

``quant.json`` (plan, calibration config, methods, provenance) and ``calibration.safetensors``
(the activation ranges; with a plan's ``timestep_groups`` > 1 also each group's, keys prefixed
``g<k>|``; and what methods learned as tensors, keys ``<method>|<name>``) sit beside the usual ``config.json`` + ``weights.safetensors``; the
weights are the float weights as the PTQ methods left them. Loading rebuilds the
hardware-exact net from those without recalibrating, so ``hwsim sample``, ``hwsim fid`` and
``hwsim export`` all run the very same quantized model. No pickles anywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from hwsim import config as cfgio
from hwsim.modeldir import WEIGHTS_FILE, LoadedModel, ModelDirError, load_model, save_model, save_tensors
from hwsim.provenance import provenance
from hwsim.quant.calibrate import (CalibrationConfig, Ranges, calibration_inputs, collect_stats, observe,
                                   ranges_from_tensors, ranges_to_tensors, select_timesteps)
from hwsim.quant.plan import PrecisionPlan, resolve_for_net
from hwsim.quant.quantize import mark_folded, prepared, quantize_net
from hwsim.quant.sparsity import activation_sparsity
from hwsim.quant.timestep_groups import TimestepGroupedNet, split_inputs

QUANT_FILE = "quant.json"
RANGES_FILE = "calibration.safetensors"


@dataclass
class QuantizedModel:
    model: LoadedModel  # the float net (weights as the methods left them)
    plan: PrecisionPlan
    ranges: Ranges
    meta: dict
    group_ranges: list[Ranges] | None = None  # one per timestep group when the plan has timestep_groups > 1
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # what methods learned: "<method>|<name>"

    def net(self) -> nn.Module:
        """The hardware-exact quantized net (float64); per timestep group, if the plan has groups."""
        T = self.model.spec.schedule.num_train_timesteps
        split = bool(self.meta.get("split_concat"))
        if not self.group_ranges:
            return quantize_net(self.model.net, self.plan, self.ranges, T, split_concat=split)
        return TimestepGroupedNet([quantize_net(self.model.net, self.plan, r, T, split_concat=split)
                                   for r in self.group_ranges], T)

    def example_input(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros((1, *self.model.spec.image_shape), dtype=torch.float64), torch.zeros(1, dtype=torch.long)


def calibration_set(model: LoadedModel, calib: CalibrationConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (x_t, t) inputs ``calib`` selects from the float model's own DDIM trajectories."""
    trajectory = calibration_inputs(model.net, model.noise_schedule(), model.spec.image_shape, calib.samples,
                                    calib.steps, calib.seed)
    return select_timesteps(trajectory, calib, model.spec.schedule.num_train_timesteps)


def calibrate(model: LoadedModel, plan: PrecisionPlan, calib: CalibrationConfig,
              inputs: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> Ranges:
    """Activation ranges of the prepared float net by ``calib`` (timestep strategy, observer)."""
    net = prepared(model.net)
    stats = collect_stats(net, inputs if inputs is not None else calibration_set(model, calib), calib.seed)
    precision = resolve_for_net(plan, net)

    def bits_of(module: str, key: str) -> int:
        return precision[module].act_bits if module in precision and key == "in0" else plan.nonlinear_act_bits

    def float_of(module: str, key: str) -> bool:
        return module in precision and key == "in0" and precision[module].scale == "float"

    def zero_point_of(module: str, key: str) -> bool:
        return module in precision and key == "in0" and precision[module].act_zero_point

    return observe(stats, calib, bits_of, float_of, zero_point_of)


def calibrate_groups(model: LoadedModel, plan: PrecisionPlan, calib: CalibrationConfig,
                     inputs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[Ranges] | None:
    """Per timestep group, the ranges :func:`calibrate` finds on that group's inputs (None: one group)."""
    if plan.timestep_groups == 1:
        return None
    T = model.spec.schedule.num_train_timesteps
    return [calibrate(model, plan, calib, part) for part in split_inputs(inputs, plan.timestep_groups, T)]


def is_quantized(model_dir: str | Path) -> bool:
    return (Path(model_dir) / QUANT_FILE).is_file()


def read_meta(model_dir: str | Path) -> dict:
    """quant.json of a quantized model directory (plan, calibration, methods and their results)."""
    path = Path(model_dir) / QUANT_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelDirError(f"{path}: not readable JSON ({err})") from None


def save_quantized(q: QuantizedModel, out_dir: str | Path) -> Path:
    out = save_model(q.model.spec, q.model.net, out_dir)
    tensors = ranges_to_tensors(q.ranges)
    for k, ranges in enumerate(q.group_ranges or []):
        tensors.update({f"g{k}|{name}": v for name, v in ranges_to_tensors(ranges).items()})
    save_tensors({**tensors, **q.tensors}, out / RANGES_FILE)
    meta = {**q.meta, "plan": cfgio.to_dict(q.plan), "provenance": provenance()}
    (out / QUANT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


_GROUP_KEY = re.compile(r"^g\d+\|")


def _method_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The methods' own tensors among calibration.safetensors' keys: "<method>|<name>", not ranges
    (no "|") nor a timestep group's ranges ("g<k>|")."""
    return {k: v for k, v in tensors.items() if "|" in k and not _GROUP_KEY.match(k)}


def method_tensors(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """What the PTQ methods of a quantized directory learned as tensors (empty for a float one)."""
    path = Path(model_dir) / RANGES_FILE
    if not is_quantized(model_dir):
        return {}
    try:
        return _method_tensors(load_file(str(path)))
    except Exception as err:  # missing or corrupt file
        raise ModelDirError(f"{path}: not a readable safetensors file ({err})") from None


def load_quantized(model_dir: str | Path) -> QuantizedModel:
    model_dir = Path(model_dir)
    if not is_quantized(model_dir):
        raise ModelDirError(f"{model_dir}: not a quantized model directory (no {QUANT_FILE}); run 'hwsim quantize'")
    meta = read_meta(model_dir)
    try:
        plan = cfgio.from_dict(PrecisionPlan, meta["plan"])
    except (ValueError, KeyError, TypeError) as err:
        raise ModelDirError(f"{model_dir / QUANT_FILE}: invalid ({err})") from None
    try:
        tensors = load_file(str(model_dir / RANGES_FILE))
    except Exception as err:  # missing or corrupt file
        raise ModelDirError(f"{model_dir / RANGES_FILE}: not a readable safetensors file ({err})") from None
    ranges = ranges_from_tensors({k: v for k, v in tensors.items() if "|" not in k})
    group_ranges = [ranges_from_tensors({k.partition("|")[2]: v for k, v in tensors.items() if k.startswith(f"g{g}|")})
                    for g in range(plan.timestep_groups)] if plan.timestep_groups > 1 else None
    if group_ranges and not all(group_ranges):
        raise ModelDirError(f"{model_dir / RANGES_FILE}: the plan has {plan.timestep_groups} timestep groups "
                            f"but the file lacks some groups' ranges (keys g<k>|...)")
    model = load_model(model_dir)
    mark_folded(model.net)  # the saved weights are the prepared ones (attention scale folded)
    model.net = model.net.double()
    model.net.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)))  # again, in float64: exact
    return QuantizedModel(model, plan, ranges, meta, group_ranges, _method_tensors(tensors))


def quantize_dir(model_dir: str | Path, plan: PrecisionPlan, calib: CalibrationConfig = CalibrationConfig(),
                 methods: list[str] | tuple[str, ...] = ()) -> QuantizedModel:
    """PTQ of a float model directory: the named methods (:mod:`hwsim.quant.methods`) around a
    calibration by ``calib``; with no methods, naive min-max (the baseline of every comparison)."""
    from hwsim.quant.methods import MethodContext, resolve

    steps = resolve(methods)
    model = load_model(model_dir)
    model.net = prepared(model.net)  # float64, attention scale folded: what methods change and what is saved
    ctx = MethodContext(model, plan, calib, calibration_set(model, calib),
                        meta={"source": str(model_dir), "methods": list(methods), "calibration": cfgio.to_dict(calib)})
    for _, method in (s for s in steps if s[1].stage == "float"):
        method.apply(ctx)
    ctx.ranges = calibrate(model, plan, calib, ctx.inputs)
    ctx.group_ranges = calibrate_groups(model, plan, calib, ctx.inputs)
    for _, method in (s for s in steps if s[1].stage != "float"):
        method.apply(ctx)
    quantized = QuantizedModel(model, plan, ctx.ranges, ctx.meta, ctx.group_ranges, ctx.tensors)
    probe = ctx.inputs[:: max(1, len(ctx.inputs) // 4)][:4]  # a few calibration batches across the timesteps
    ctx.meta["activation_sparsity"] = activation_sparsity(quantized.net(), probe)
    return quantized
