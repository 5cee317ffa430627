"""Terminal targets m_1 (``TARGETS``): one module per kind.

The nonlocal energy (eqs. 53, 55, with the constant restored) is

    NE = (1/eps) || k_delta * mu_1 - k_delta * m_1 ||^2_{L^2}
       = (1/eps) [ sum_ik a_i a_k K_delta(y_i - y_k) - 2 sum_i a_i (K_delta * m_1)(y_i) + C_{delta,m_1} ],

because k_delta * k_delta = K_delta for the Gaussian pair of eq. (54) (k_delta = K_{delta/sqrt 2}).
A target supplies the last two terms. Every target class has

* ``kind`` and ``from_spec(spec, context, where)`` / ``to_spec()`` (the problem file's ``target``);
  ``example_spec(dim)``: parameters the explorer offers when the kind is picked;
* ``dim``, ``mean()``, ``bounding_box()`` (a box holding almost all of the mass, for plots);
* ``smoothed(y, delta)`` = (K_delta * m_1)(y), ``cross_term(y, a, delta)`` = sum_i a_i (K_delta * m_1)(y_i)
  and ``constant(delta)`` = C_{delta,m_1} = int int K_delta(x - y) dm_1(x) dm_1(y);
* ``quantization(n, seed)``: points and weights standing for m_1 in an exact OT assignment, with
  ``discrete`` telling whether they *are* m_1 (particles, grid cells) and ``support_size(n)`` their number;
* ``empirical``: (points, weights) of a particle target (exact W_2 diagnostics), None otherwise;
  ``given_by_points``: whether the file lists the target's points (the explorer draws and edits them).
* optionally ``check_delta(delta)``: raise ``ProblemError`` for a delta its tables cannot afford (the
  annulus, whose radial tables grow with outer radius / delta); ``scales.check_scales`` calls it.

To add a kind: a module here with one class decorated ``@TARGETS.register``, imported below (the
order of the imports is the order in which the explorer lists the kinds).
"""
import numpy as np

from ..lazy import torch
from ..registry import TARGETS
from .particles import ParticleTarget  # isort: skip
from .gaussian import GaussianMixtureTarget, GaussianTarget  # isort: skip
from .uniform import UniformBoxTarget  # isort: skip
from .grid import GridDensityTarget  # isort: skip
from .annulus import AnnulusTarget  # isort: skip



def smoothed_density(target, y: np.ndarray, delta: float) -> np.ndarray:
    """(K_delta * m_1) at the rows of y (numpy in and out), e.g. to draw a continuum target."""
    with torch.no_grad():
        return target.smoothed(torch.as_tensor(y, dtype=torch.float64), delta).numpy()


__all__ = ["TARGETS", "smoothed_density", "AnnulusTarget", "GaussianMixtureTarget", "GaussianTarget", "GridDensityTarget", "ParticleTarget",
           "UniformBoxTarget"]
