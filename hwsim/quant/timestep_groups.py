"""Activation scales per group of timesteps (TDQ-style), on the power-of-two integer path.

A diffusion denoiser's activation ranges drift with the timestep (TDQ, So et al., NeurIPS 2023;
the seeds' surveys): one range per layer must cover the widest timestep and wastes levels on the
others. TDQ predicts a scale per timestep with a small MLP; hwsim keeps what hardware can hold
cheaply: the training timesteps [0, T) cut into ``G`` equally wide groups (``timestep_groups`` of
the precision plan), one calibrated range per layer and group. Weights, bit widths and the
datapath are shared; what changes per group is every constant that depends on an activation
scale (requantization shifts, biases at the accumulator scale, lookup tables, normalization
constants). The hardware holds those as tables with one row per group, chosen per evaluation by
the group of t, as rtl/requant and rtl/thresholding already do.

So the quantized net of a grouped plan is one hardware-exact net per group
(:class:`TimestepGroupedNet`), and its integer graph is one graph per group with the same nodes
(:func:`hwsim.export.intgraph.to_integer_graph` checks that), run by the simulator per group.
"""

from __future__ import annotations

import torch
from torch import nn

from hwsim.quant.group_index import group_bounds, group_of

__all__ = ["TimestepGroupedNet", "group_bounds", "group_of", "layer_name", "split_inputs"]


def split_inputs(inputs: list[tuple[torch.Tensor, torch.Tensor]], groups: int,
                 num_train_timesteps: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Calibration batches (x_t, t) sorted into groups; an empty group is an error (its range
    would be a guess)."""
    out: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(groups)]
    for x, t in inputs:
        g = torch.from_numpy(group_of(t.numpy(), groups, num_train_timesteps))
        for k in torch.unique(g).tolist():
            keep = g == k
            out[k].append((x[keep], t[keep]))
    empty = [k for k, batches in enumerate(out) if not batches]
    if empty:
        lo, hi = group_bounds(groups, num_train_timesteps)[empty[0]]
        raise ValueError(f"timestep group {empty[0]} (t {lo}..{hi}) has no calibration input; calibrate on more "
                         f"timesteps (timesteps: all) or use fewer timestep_groups than {groups}")
    return out


def layer_name(module_name: str) -> str:
    """A module's name in the float net: a grouped net's ``nets.<k>.`` prefix removed."""
    parts = module_name.split(".", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "nets" and parts[1].isdigit() else module_name


class TimestepGroupedNet(nn.Module):
    """One hardware-exact net per timestep group; each sample runs through its group's net."""

    def __init__(self, nets: list[nn.Module], num_train_timesteps: int):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.num_train_timesteps = num_train_timesteps

    @property
    def groups(self) -> int:
        return len(self.nets)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        g = torch.from_numpy(group_of(t.numpy(), self.groups, self.num_train_timesteps))
        first = int(g[0])
        if bool((g == first).all()):  # a sampler's batch shares its timestep
            return self.nets[first](x, t)
        out = None
        for k in torch.unique(g).tolist():
            keep = g == k
            part = self.nets[k](x[keep], t[keep])
            if out is None:
                out = part.new_empty((len(x), *part.shape[1:]))
            out[keep] = part
        return out
