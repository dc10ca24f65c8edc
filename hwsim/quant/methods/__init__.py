"""PTQ methods as composable steps, selected by name (``hwsim quantize --method NAME``).

Each method acts at one stage of :func:`hwsim.quant.qmodel.quantize_dir`, and the stages run
in this order whatever order the names are given in:

1. ``float``: change the float weights before calibration (equalization, pruning);
2. calibration (timestep strategy and observer of :class:`CalibrationConfig`);
3. ``weights``: choose the integer weights with the calibrated ranges (AdaRound or BRECQ);
4. ``graph``: change how the quantized net is built (Q-Diffusion's split shortcut);
5. ``bias``: correct the layers' biases on the net the stages before built (bias correction);
6. ``sampler``: fit corrections applied by the host sampler (PTQD);
7. ``trajectory``: fit host-side corrections on the quantized sampler's own trajectories, with
   every correction before applied (trajectory bias).

A method reads and writes a :class:`MethodContext`; what it learns that is not a weight goes
into ``meta`` (saved in quant.json), or if it is a tensor into ``tensors`` (saved in
calibration.safetensors, keys ``<method>|<name>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import torch

from hwsim.modeldir import LoadedModel
from hwsim.quant.calibrate import CalibrationConfig, Ranges
from hwsim.quant.plan import PrecisionPlan

STAGES = ("float", "weights", "graph", "bias", "sampler", "trajectory")


@dataclass
class MethodContext:
    model: LoadedModel  # its net is the prepared float64 net; methods may change its weights
    plan: PrecisionPlan
    calib: CalibrationConfig
    inputs: list[tuple[torch.Tensor, torch.Tensor]]  # calibration inputs (x_t, t)
    ranges: Ranges | None = None  # set after calibration
    group_ranges: list[Ranges] | None = None  # per timestep group, when the plan has timestep_groups > 1
    meta: dict = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # keys "<method>|<name>"

    def quantized_net(self) -> torch.nn.Module:
        """The hardware-exact net as every stage so far left it (weights, ranges, graph options)."""
        from hwsim.quant.qmodel import QuantizedModel

        return QuantizedModel(self.model, self.plan, self.ranges, self.meta, self.group_ranges).net()


@dataclass(frozen=True)
class Method:
    stage: str
    apply: Callable[[MethodContext], None]
    summary: str


def _split_shortcut(ctx: MethodContext) -> None:
    from hwsim.nets.unet import UNet

    if not isinstance(ctx.model.net, UNet):
        raise ValueError(f"split-shortcut: a {type(ctx.model.net).__name__} has no skip concatenations")
    ctx.meta["split_concat"] = True


def _pruner(pattern: str) -> Callable[[MethodContext], None]:
    def apply(ctx: MethodContext) -> None:
        from hwsim.quant.sparsity import prune

        ctx.meta.setdefault("weight_sparsity", {}).update(prune(ctx.model.net, pattern))
    return apply


def _registry() -> dict[str, Method]:
    from hwsim.quant.methods import adaround, bias_correction, brecq, distill, ptqd, smoothquant, trajectory_bias

    return {
        "smoothquant": Method("float", smoothquant.apply, "SmoothQuant/PTQ4DiT-style channel balancing of the DiT's adaLN-fed layers"),
        "adaround": Method("weights", adaround.apply, "AdaRound: learned up/down rounding of every weight, layer by layer"),
        "brecq": Method("weights", brecq.apply, "BRECQ: AdaRound rounding learned block by block (residual, attention, DiT blocks)"),
        "distill": Method("weights", distill.apply, "EfficientDM-style: the quantized net's weights trained to the float net's "
                          "noise prediction on its own trajectories (straight-through, data-free)"),
        "split-shortcut": Method("graph", _split_shortcut, "Q-Diffusion: skip concatenation inputs quantized separately"),
        "sparse-2:4": Method("float", _pruner("2:4"), "2:4 structured weight pruning (then calibration)"),
        "sparse-0.5": Method("float", _pruner("0.5"), "50% unstructured magnitude pruning (then calibration)"),
        "bias-correction": Method("bias", bias_correction.apply, "per-channel bias correction of every layer's mean output error, layer by layer"),
        "ptqd": Method("sampler", ptqd.apply, "PTQD: per-timestep correction of correlated noise and residual bias, on the host"),
        "trajectory-bias": Method("trajectory", trajectory_bias.apply, "mean noise-prediction error per step and pixel on the "
                                  "quantized sampler's own trajectories (after PTQD), subtracted on the host"),
    }


EXCLUSIVE = [{"adaround", "brecq", "distill"}]  # methods that would overwrite each other's weights

SPARSE_FRACTION_RE = re.compile(r"^sparse-(\d*\.?\d+)$")  # sparse-0.25: unstructured magnitude pruning


def sparse_fraction(name: str) -> float | None:
    """The fraction of ``sparse-<fraction>`` (e.g. ``sparse-0.25``: the 25% smallest |w| of each
    prunable layer zeroed, as ``sparse-0.5``); None if ``name`` is not of that form. A fraction
    outside 0 < fraction < 1 is an error (0 is no pruning, 1 would zero every prunable layer)."""
    m = SPARSE_FRACTION_RE.match(name)
    if not m:
        return None
    fraction = float(m[1])
    if not 0 < fraction < 1:
        raise ValueError(f"PTQ method {name!r}: the pruned fraction must be strictly between 0 and 1 "
                         f"(e.g. sparse-0.25), got {m[1]}")
    return fraction


def _sparse_method(name: str) -> Method | None:
    fraction = sparse_fraction(name)
    if fraction is None:
        return None
    return Method("float", _pruner(name.removeprefix("sparse-")),
                  f"{fraction * 100:g}% unstructured magnitude pruning (then calibration)")


def resolve(names: list[str] | tuple[str, ...]) -> list[tuple[str, Method]]:
    """The methods by name, in stage order; an unknown or repeated name is an error. Besides the
    registered names, ``sparse-<fraction>`` with 0 < fraction < 1 (``sparse-0.25``) prunes that
    fraction of the smallest weights, as ``sparse-0.5`` does."""
    known = _registry()
    registered = sorted(known)
    for n in names:
        if n not in known and (method := _sparse_method(n)) is not None:  # raises on a bad fraction
            known[n] = method
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown PTQ method(s) {unknown}; known: {', '.join(registered)}, "
                         "sparse-<fraction> (0 < fraction < 1, e.g. sparse-0.25)")
    if len(set(names)) != len(names):
        raise ValueError(f"PTQ methods repeated: {list(names)}")
    for group in EXCLUSIVE:
        if len(group & set(names)) > 1:
            raise ValueError(f"PTQ methods {sorted(group & set(names))} all choose the integer weights; give one of them")
    return sorted(((n, known[n]) for n in names), key=lambda item: STAGES.index(item[1].stage))


def available() -> dict[str, str]:
    return {name: f"[{m.stage}] {m.summary}" for name, m in sorted(_registry().items())}
