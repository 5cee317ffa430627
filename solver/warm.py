"""Warm starts: carry a solve's trajectories over to a slightly changed problem.

Live tuning (the explorer changes eps, delta, p, obstacles or points while a solve runs) and warm
reruns continue from the current iterate instead of starting again. ``carry_over`` maps trajectories
of one problem to the particles and time points of another:

* time: each trajectory is resampled at the new time points t_j = (j - 1) / (M' - 1) by linear
  interpolation (``paths.at_times``), so a change of M keeps the paths' shapes;
* particles: new particle i takes the trajectory of the old particle j whose source is nearest to its
  own, shifted by (1 - t)(z_i - z_j): it starts at z_i and keeps j's terminal state (a particle that
  did not move keeps its own path exactly; a moved or added one borrows its neighbour's). Deleted
  particles are dropped.

The carried trajectories are a start, not a minimizer: the solve that follows (``method="local"``
for the default method) corrects them. ``None`` when the problems are too different for a warm start
to help (other dynamics or dimension, another kind of target, or fewer than half of the new sources
where old ones were).
"""
from __future__ import annotations

import numpy as np

from .lazy import scipy_spatial
from .paths import at_times
from .problem import Problem

#: A source counts as unchanged within this distance relative to the scene's size (float round-off
#: of values sent through the browser and back, far below any point a person moves).
SAME_POINT = 1e-9
#: At least this fraction of the new sources must be old ones for a warm start.
MIN_KEPT = 0.5


def carry_over(old: Problem, states: np.ndarray, new: Problem) -> np.ndarray | None:
    """Positions (N', M', d) for ``new`` from the trajectories ``states`` (N, M, D) of ``old``
    (positions first, as in a ``Snapshot``), or None when a warm start does not apply."""
    if not warm_compatible(old, new) or states is None:
        return None
    d = new.source.shape[1]
    positions = np.asarray(states, dtype=float)[..., :d]
    if positions.shape[:2] != (old.N, old.M):
        return None
    if new.M != old.M:
        positions = at_times(positions, np.linspace(0.0, 1.0, new.M)).transpose(1, 0, 2)
    old_src, new_src = np.asarray(old.source, float), np.asarray(new.source, float)
    gap, nearest = scipy_spatial.cKDTree(old_src).query(new_src)  # O(N log N): no N' x N distance matrix
    scale = max(float(np.ptp(np.vstack([old_src, new_src]), axis=0).max()), 1.0)
    kept = gap <= SAME_POINT * scale
    if kept.sum() < MIN_KEPT * new.N:
        return None
    t = np.linspace(0.0, 1.0, new.M)[None, :, None]
    shift = (new_src - old_src[nearest])[:, None, :]
    carried = positions[nearest] + (1.0 - t) * shift
    carried[:, 0] = new_src[:, :d]  # exactly the sources (the shift leaves round-off at t = 0)
    return carried


def warm_compatible(old: Problem, new: Problem) -> bool:
    """Whether trajectories of ``old`` can start ``new`` at all: same dynamics, dimension and kind of
    target."""
    return (old.dynamics.kind == new.dynamics.kind and old.source.shape[1] == new.source.shape[1]
            and old.dynamics.state_dim == new.dynamics.state_dim and old.target.kind == new.target.kind)


#: The method that continues each method from a carried start (the others continue as they are).
CONTINUATION = {"robust": "local"}


def continuation_method(problem: Problem) -> str:
    """The optimizer that continues a solve of ``problem`` from carried trajectories: ``robust`` would
    start again from its OT start, so its local solve (``local``) takes over, with the OT start after it
    as a check; other methods go on."""
    return CONTINUATION.get(problem.optimizer.method, problem.optimizer.method)
