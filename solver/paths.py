"""Trajectories in time: straight lines, and interpolation between the M time points.

The solver's trajectories are M time points t_j = (j - 1) h (eq. 48); between them the explorer, the
exports and the figures draw straight segments, i.e. linear interpolation in time. These helpers are
the one implementation of both (numpy only).
"""
from __future__ import annotations

import numpy as np


def straight_lines(start: np.ndarray, end: np.ndarray, M: int) -> np.ndarray:
    """Positions (N, M, d) moving at constant speed from ``start`` (t = 0) to ``end`` (t = 1)."""
    t = np.linspace(0.0, 1.0, M)[None, :, None]
    return (1.0 - t) * start[:, None, :] + t * end[:, None, :]


def at_times(states: np.ndarray, times: np.ndarray) -> np.ndarray:
    """States (N, M, D) linearly interpolated in time at ``times`` in [0, 1]: (len(times), N, D)."""
    M = states.shape[1]
    s = np.clip(np.asarray(times, dtype=float), 0.0, 1.0) * (M - 1)
    j = np.clip(np.floor(s).astype(int), 0, M - 2)
    w = (s - j)[:, None, None]
    return (1.0 - w) * states[:, j].transpose(1, 0, 2) + w * states[:, j + 1].transpose(1, 0, 2)


def at_time(states: np.ndarray, t: float) -> np.ndarray:
    """States (N, D) at one time t in [0, 1]."""
    return at_times(states, np.array([t]))[0]
