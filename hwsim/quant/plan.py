"""Precision plans: per-layer bit widths and scale rules, as data (YAML), checked against a net.

A plan is a default precision, optional ``first``/``last`` overrides for the net's first and
last compute layers, and an ordered list of rules whose ``match`` globs (fnmatch) select layers
by module name; later rules override earlier ones, field by field. A rule that matches no
layer is an error (a typo would otherwise silently leave layers at the default), as is a bit
width the integer path cannot carry.

    default: {weight_bits: 4, act_bits: 8}
    first: {weight_bits: 8}
    last: {weight_bits: 8}
    rules:
      - {match: "mid.*", weight_bits: 8}
    timestep_groups: 4   # TDQ-style: activation ranges per group of timesteps (hwsim.quant.timestep_groups)
    nonlinear_bits: 10   # GroupNorm/LayerNorm outputs, SiLU/GELU tables, softmax, attention matmuls
                         # (default: the default act_bits)

A precision also chooses its scales (``scale: po2 | float``, ``mantissa_bits``), an asymmetric
input grid (``act_zero_point: true``) and, with float scales, the weight range
(``weight_clip: max | mse``): docs/numerics.md, sections 6 and 7.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from hwsim import config as cfgio

MIN_BITS, MAX_BITS = 2, 16  # 1-bit (bipolar) layers are not part of the integer contract
MAX_TIMESTEP_GROUPS = 64
GRANULARITIES = ("per_tensor", "per_channel", "per_group")  # per_group: Q-DiT-style, along the input
# po2: power-of-two scales (shifts only), the default. float: Conv/Linear input and weight scales
# with a ``mantissa_bits``-bit mantissa times a power of two, realized as exact integer multipliers
# (hwsim.quant.modules.IntegerInputLayer); the nonlinear ops keep power-of-two scales.
SCALE_TYPES = ("po2", "float")
WEIGHT_CLIPS = ("max", "mse")


class PlanError(ValueError):
    """A precision plan is malformed or does not fit the net it is applied to."""


def _check_int(name: str, value, lo: int, hi: int, absent_ok: bool = False) -> None:
    """``value`` is an integer (not a bool) in lo..hi, or None where ``absent_ok``."""
    if absent_ok and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise PlanError(f"{name} must be an integer in {lo}..{hi}{' (or absent)' if absent_ok else ''}, got {value!r}")


@dataclass(frozen=True)
class LayerPrecision:
    weight_bits: int = 8
    act_bits: int = 8  # bits of the layer's input activation
    weight_granularity: str = "per_tensor"
    scale: str = "po2"
    group_size: int = 32  # inputs per weight scale with weight_granularity: per_group
    mantissa_bits: int = 8  # of the scales with scale: float
    # an asymmetric input grid with a zero point (hwsim.quant.modules.IntegerInputLayer): the 2^b
    # codes cover the calibrated [min, max] instead of [-max|x|, max|x|]
    act_zero_point: bool = False
    # the weight scale's range: the largest |weight| of the row (max), or the clipped range of least
    # squared rounding error (mse, as BRECQ/Q-Diffusion initialize theirs); mse needs scale: float
    weight_clip: str = "max"

    def __post_init__(self):
        for name in ("weight_bits", "act_bits", "mantissa_bits"):
            bits = getattr(self, name)
            _check_int(name, bits, MIN_BITS, MAX_BITS)
        if self.weight_granularity not in GRANULARITIES:
            raise PlanError(f"weight_granularity must be one of {GRANULARITIES}, got {self.weight_granularity!r}")
        if not isinstance(self.group_size, int) or self.group_size < 1:
            raise PlanError(f"group_size must be a positive integer, got {self.group_size!r}")
        if self.scale not in SCALE_TYPES:
            raise PlanError(f"scale must be one of {SCALE_TYPES}, got {self.scale!r}")
        if not isinstance(self.act_zero_point, bool):
            raise PlanError(f"act_zero_point must be true or false, got {self.act_zero_point!r}")
        if self.weight_clip not in WEIGHT_CLIPS:
            raise PlanError(f"weight_clip must be one of {WEIGHT_CLIPS}, got {self.weight_clip!r}")
        if self.weight_clip == "mse" and self.scale != "float":
            raise PlanError("weight_clip: mse needs scale: float (a power-of-two weight scale is Brevitas' max-based one)")
        if self.weight_clip == "mse" and self.weight_granularity == "per_group":
            raise PlanError("weight_clip: mse chooses one range per weight row; per_group weights take each group's largest |weight|")
        if self.act_zero_point and self.act_bits >= MAX_BITS:
            raise PlanError(f"act_zero_point needs act_bits <= {MAX_BITS - 1} (the integers q in [-z, 2^b - 1 - z] take "
                            f"b + 1 bits), got {self.act_bits}")


@dataclass(frozen=True)
class Override:
    """Fields to change; None keeps the value from the default or an earlier rule."""

    weight_bits: int | None = None
    act_bits: int | None = None
    weight_granularity: str | None = None
    scale: str | None = None
    group_size: int | None = None
    mantissa_bits: int | None = None
    act_zero_point: bool | None = None
    weight_clip: str | None = None

    def apply(self, base: LayerPrecision) -> LayerPrecision:
        fields = {f.name for f in dataclasses.fields(LayerPrecision)}
        changes = {k: getattr(self, k) for k in fields if getattr(self, k) is not None}
        return LayerPrecision(**{**dataclasses.asdict(base), **changes})


@dataclass(frozen=True)
class Rule(Override):
    match: str = ""  # fnmatch glob over module names, e.g. "down.*.conv1"


@dataclass(frozen=True)
class PrecisionPlan:
    default: LayerPrecision = LayerPrecision()
    first: Override | None = None
    last: Override | None = None
    rules: tuple[Rule, ...] = ()
    timestep_groups: int = 1  # activation scales per group of equally wide timestep intervals (TDQ-style)
    # Width of the hardware-exact nonlinear ops' activations (normalization outputs, lookup tables,
    # softmax, attention matmul operands); None: the default act_bits. Float fake-quant papers keep
    # these ops in float; on the integer path each is one more quantization point.
    nonlinear_bits: int | None = None

    def __post_init__(self):
        _check_int("timestep_groups", self.timestep_groups, 1, MAX_TIMESTEP_GROUPS)
        _check_int("nonlinear_bits", self.nonlinear_bits, MIN_BITS, MAX_BITS, absent_ok=True)

    @property
    def nonlinear_act_bits(self) -> int:
        """Bits of the nonlinear ops' activations: ``nonlinear_bits``, else the default act_bits."""
        return self.nonlinear_bits or self.default.act_bits

    @classmethod
    def uniform(cls, weight_bits: int, act_bits: int, **kwargs) -> "PrecisionPlan":
        return cls(default=LayerPrecision(weight_bits, act_bits, **kwargs))

    def resolve(self, layer_names: list[str], first: str, last: str) -> dict[str, LayerPrecision]:
        """Precision of every layer in ``layer_names`` (in the net's order)."""
        for name in (first, last):
            if name not in layer_names:
                raise PlanError(f"first/last layer {name!r} is not a compute layer of the net")
        out = {name: self.default for name in layer_names}
        for label, override in (("first", self.first), ("last", self.last)):
            if override is not None:
                target = first if label == "first" else last
                out[target] = override.apply(out[target])
        for i, rule in enumerate(self.rules):
            if not rule.match:
                raise PlanError(f"rules[{i}] has no 'match' pattern")
            hits = [n for n in layer_names if fnmatch.fnmatchcase(n, rule.match)]
            if not hits:
                raise PlanError(f"rules[{i}] pattern {rule.match!r} matches no layer; layers are e.g. {layer_names[:6]}")
            try:
                for name in hits:
                    out[name] = rule.apply(out[name])
            except PlanError as err:
                raise PlanError(f"rules[{i}] ({rule.match!r}): {err}") from None
        return out

    def describe(self) -> str:
        parts = [f"W{self.default.weight_bits}A{self.default.act_bits}"]
        if self.first or self.last or self.rules:
            parts.append(f"+{len(self.rules) + bool(self.first) + bool(self.last)} overrides")
        if self.nonlinear_bits is not None:
            parts.append(f"nonlinear A{self.nonlinear_bits}")
        if self.default.scale == "float":
            parts.append(f"float scales ({self.default.mantissa_bits}-bit mantissa)")
        if self.default.act_zero_point:
            parts.append("zero points")
        if self.timestep_groups > 1:
            parts.append(f"x{self.timestep_groups} timestep groups")
        return " ".join(parts)


SHORTHAND = re.compile(r"^[Ww](\d+)[Aa](\d+)(?:[Nn](\d+))?(?:[Ff](\d+))?([Zz])?(?:[Tt](\d+))?$")


def parse_shorthand(text: str, weight_granularity: str = "per_channel") -> PrecisionPlan | None:
    """A uniform plan from ``WxAy[Nz][Fm][Z][Tg]`` (W4A8; W8A8N12: nonlinear ops at 12 bits; W8A8F8:
    float scales with 8-bit mantissas; W8A8Z: zero points on the layer inputs; W8A6T4: 4 timestep
    groups), or None if ``text`` is not one."""
    m = SHORTHAND.match(text)
    if not m:
        return None
    scale = dict(scale="float", mantissa_bits=int(m[4])) if m[4] else {}
    plan = PrecisionPlan.uniform(int(m[1]), int(m[2]), weight_granularity=weight_granularity,
                                 act_zero_point=bool(m[5]), **scale)
    return dataclasses.replace(plan, nonlinear_bits=int(m[3]) if m[3] else None, timestep_groups=int(m[6] or 1))


def load_plan(path: str | Path) -> PrecisionPlan:
    """Read a plan from YAML/JSON; every error names the file."""
    try:
        return cfgio.load(PrecisionPlan, path)
    except PlanError as err:
        raise PlanError(f"{path}: {err}") from None


def compute_layers(net: nn.Module) -> list[str]:
    """Names of the Conv2d and Linear modules: the layers a plan assigns precision to."""
    return [name for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# Modules of hwsim's nets that the quantizer folds into per-timestep tables, computed in float from
# the float weights (the time embedding MLP, each ResBlock's projection of it, the DiT's adaLN):
# their weights are never quantized and cost no MACs on the accelerator.
TABLE_PARTS = ("time_embed", "temb_proj", "temb_act", "ada", "ada_act", "final_ada", "final_ada_act")


def in_timestep_table(name: str) -> bool:
    """Whether the module ``name`` of a hwsim net becomes part of a per-timestep table."""
    return any(part in TABLE_PARTS for part in name.split("."))


def resolve_for_net(plan: PrecisionPlan, net: nn.Module) -> dict[str, LayerPrecision]:
    """Resolve ``plan`` on a hwsim net, which names its first and last layers."""
    first, last = getattr(net, "FIRST_LAYER", None), getattr(net, "LAST_LAYER", None)
    if first is None or last is None:
        raise PlanError(f"{type(net).__name__} does not declare FIRST_LAYER/LAST_LAYER")
    return plan.resolve(compute_layers(net), first, last)
