"""Dynamics (``DYNAMICS``): how the free optimization variables become trajectories, controls and
terminal states; one module per kind.

All share the time grid t_j = (j-1) h, j = 1..M, h = 1/(M-1) (eq. 48), and the control cost
(1/N) sum_i sum_j h psi(u_{i,j}), the Riemann sum of (1/N) sum_i int_0^1 psi(u_i(t)) dt (eq. 46).
A dynamics class has

* ``kind``; ``from_spec(spec, source_spec)`` -> (dynamics, source positions) and ``to_spec()``,
  ``source_spec(source)``; ``read_states(spec, where)``: the states of a particle target's file entry;
* ``dim`` (positions), ``state_dim`` (what the terminal constraint acts on), ``state_names()``,
  ``check_M(M)`` (raises ``ProblemError`` on "M" when M - 1 steps cannot reach every terminal state),
  ``source_states(source)``, ``has_velocities`` (states = positions, then velocities);
* the math: ``variable_shape``, ``positions``, ``controls``, ``terminal``, ``states``,
  ``variables_from_positions`` (torch);
* ``own_data``: whether ``positions`` reads per-particle data held by the dynamics besides the source
  (acceleration: the source velocities), so that a particle's trajectory cannot be computed alone;
* what the optimizers ask: ``couples_particles`` (a drift depending on the others), ``plain_transport``
  (ydot = u: optimal paths are straight, W_p maps are exact), ``steers_optimally(psi)`` (minimum-energy
  paths are optimal for psi), ``max_move(delta, h)`` (step cap per particle), ``paper_positions``
  (eqs. 56-57); ``time_coupling``: how many time steps apart two of a particle's variables can be and
  still share a term of its control energy, point or segment costs (None: any), which makes the
  Hessian of a particle's own terms banded (``optimizers.separable_parts``).

To add a kind: a module here with one class decorated ``@DYNAMICS.register``, imported below.
"""
from ..registry import DRIFTS, DYNAMICS
from .acceleration import AccelerationDynamics
from .linear import LinearDynamics
from .velocity import MeanAttraction, VelocityDynamics

__all__ = ["DRIFTS", "DYNAMICS", "AccelerationDynamics", "LinearDynamics", "MeanAttraction", "VelocityDynamics"]
