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
from hwsim.quant.plan import compute_layers, in_timestep_table




def prunable(net: nn.Module) -> list[str]:
    """The accelerator's weight layers except the first and last."""
    edge = (getattr(net, "FIRST_LAYER", None), getattr(net, "LAST_LAYER", None))
    return [n for n in compute_layers(net) if n not in edge and not in_timestep_table(n)]


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
    """Zero the ``fraction`` of weights with the smallest |w| (ties broken by position), except
    that every output row keeps its largest weight: an all-zero row has no per-channel weight scale
    (its scale and its bias at the accumulator scale would be degenerate, and its output constant)."""
    k = int(round(fraction * weight.numel()))
    if k == 0:
        return weight.clone()
    order = weight.abs().reshape(-1).argsort(stable=True)
    out = weight.clone().reshape(-1)
    out[order[:k]] = 0
    out = out.reshape(weight.shape[0], -1)
    rows = weight.reshape(weight.shape[0], -1)
    empty = (out == 0).all(dim=1) & (rows != 0).any(dim=1)
    top = rows.abs().argmax(dim=1)
    out[empty, top[empty]] = rows[empty, top[empty]]
    return out.reshape(weight.shape)


def _blocks(net: nn.Module, name: str, rows: int) -> int:
    """How many projections a layer fuses: attention's qkv is three (q, k and v), pruned as three
    layers, so that q's rows, scaled down by the folded 1/sqrt(d), are not pruned first."""
    parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
    return 3 if name.endswith("qkv") and hasattr(parent, "qkv") and rows % 3 == 0 else 1


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
            new = torch.cat([prune_magnitude(part, float(pattern)) for part in w.chunk(_blocks(net, name, w.shape[0]))])
        with torch.no_grad():
            w.copy_(new)
        report[name] = float((new == 0).double().mean())
    return report


@torch.no_grad()
def activation_sparsity(qnet: nn.Module, inputs) -> dict[str, float]:
    """Fraction of zero quantized inputs of every quantized Conv/Linear layer over ``inputs`` (over
    all timestep groups of a grouped net)."""
    from brevitas.nn import QuantConv2d, QuantLinear

    from hwsim.quant.modules import GroupQuantLayer
    from hwsim.quant.timestep_groups import layer_name

    zeros: dict[str, list[float]] = {}

    def hook(name):
        def fn(module, args, output):
            scale = float(module.input_quant.scale())
            q = torch.round(args[0].detach().double() / scale)
            z = zeros.setdefault(name, [0.0, 0.0])
            z[0] += float((q == 0).sum())
            z[1] += q.numel()
        return fn

    layers = [(m, layer_name(n))  # a TimestepGroupedNet's groups count as one layer
              for n, m in qnet.named_modules() if isinstance(m, (QuantConv2d, QuantLinear, GroupQuantLayer))]
    run_hooked(qnet, [(m, hook(n)) for m, n in layers], inputs)
    return {n: z / max(c, 1) for n, (z, c) in zeros.items()}
