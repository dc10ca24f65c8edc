"""Weight pruning before calibration, and the activation sparsity a quantized model shows.

Pruning runs on the float weights (methods ``sparse-2:4`` and ``sparse-<fraction>``), so calibration
afterwards sees the pruned net ("recalibration"), and zeros survive quantization exactly. The
first and last layers stay dense, as is customary (they are tiny and the most sensitive), and so
do the layers that become per-timestep tables (time embedding, adaLN), which cost no MACs.
N:M groups run along a layer's flattened input (input channels x kernel taps), the dimension a
hardware N:M MVAU indexes. Activation sparsity is the fraction of quantized layer inputs that
are zero, measured on calibration inputs and stored in quant.json for the cost models.
"""

from __future__ import annotations

import torch
from torch import nn

from hwsim.quant.hooks import run_hooked
from hwsim.quant.plan import compute_layers


TABLE_PARTS = ("time_embed", "temb_proj", "ada", "final_ada")  # become per-timestep ROM tables, not MVAUs


def prunable(net: nn.Module) -> list[str]:
    """The accelerator's weight layers except the first and last."""
    edge = (getattr(net, "FIRST_LAYER", None), getattr(net, "LAST_LAYER", None))
    return [n for n in compute_layers(net) if n not in edge and not set(n.split(".")) & set(TABLE_PARTS)]


@torch.no_grad()
def prune_n_m(weight: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """Keep the ``n`` largest |w| of every ``m`` consecutive inputs of each output row."""
    rows = weight.reshape(weight.shape[0], -1)
    if rows.shape[1] % m:
        raise ValueError(f"{n}:{m} pruning needs a multiple of {m} inputs per row, got {rows.shape[1]}")
    groups = rows.reshape(rows.shape[0], -1, m)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.abs().topk(n, dim=2).indices, True)
    return (groups * keep).reshape(weight.shape)


@torch.no_grad()
def prune_magnitude(weight: torch.Tensor, fraction: float) -> torch.Tensor:
    """Zero the ``fraction`` of weights with the smallest |w| (ties broken by position)."""
    k = int(round(fraction * weight.numel()))
    if k == 0:
        return weight.clone()
    order = weight.abs().reshape(-1).argsort(stable=True)
    out = weight.clone().reshape(-1)
    out[order[:k]] = 0
    return out.reshape(weight.shape)


def prune(net: nn.Module, pattern: str) -> dict[str, float]:
    """Prune in place by ``pattern`` ('2:4' or a fraction like '0.5'); returns the weight sparsity per layer."""
    modules = dict(net.named_modules())
    report = {}
    for name in prunable(net):
        w = modules[name].weight
        if ":" in pattern:
            n, m = (int(v) for v in pattern.split(":"))
            new = prune_n_m(w, n, m)
        else:
            new = prune_magnitude(w, float(pattern))
        with torch.no_grad():
            w.copy_(new)
        report[name] = float((new == 0).double().mean())
    return report


@torch.no_grad()
def activation_sparsity(qnet: nn.Module, inputs) -> dict[str, float]:
    """Fraction of zero quantized inputs of every quantized Conv/Linear layer over ``inputs``."""
    from brevitas.nn import QuantConv2d, QuantLinear

    from hwsim.quant.modules import GroupQuantLinear

    zeros: dict[str, list[float]] = {}

    def hook(name):
        def fn(module, args, output):
            scale = float(module.input_quant.scale())
            q = torch.round(args[0].detach().double() / scale)
            z = zeros.setdefault(name, [0.0, 0.0])
            z[0] += float((q == 0).sum())
            z[1] += q.numel()
        return fn

    run_hooked(qnet, [(m, hook(n)) for n, m in qnet.named_modules() if isinstance(m, (QuantConv2d, QuantLinear, GroupQuantLinear))], inputs)
    return {n: z / max(c, 1) for n, (z, c) in zeros.items()}
