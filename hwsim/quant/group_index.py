"""Which timestep group a timestep falls in (hwsim.quant.timestep_groups), without torch: the
simulator and the stitcher need it, and the simulator must not load torch."""

from __future__ import annotations

import numpy as np


def group_of(t, groups: int, num_train_timesteps: int) -> np.ndarray:
    """The timestep group of every t (int array): ``t * G // T``, groups of equal width."""
    t = np.asarray(t, dtype=np.int64)
    if t.size and (t.min() < 0 or t.max() >= num_train_timesteps):
        raise ValueError(f"timesteps must lie in [0, {num_train_timesteps}), got {int(t.min())}..{int(t.max())}")
    return t * groups // num_train_timesteps


def group_bounds(groups: int, num_train_timesteps: int) -> list[tuple[int, int]]:
    """Each group's first and last timestep (inclusive)."""
    g = group_of(np.arange(num_train_timesteps), groups, num_train_timesteps)
    return [(int(np.flatnonzero(g == k)[0]), int(np.flatnonzero(g == k)[-1])) for k in range(groups)]
