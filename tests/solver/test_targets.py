"""Closed forms of K_delta * m_1 and C_{delta, m_1} against numerical quadrature."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from solver import problem_from_dict
from solver.objective import Objective
from solver.targets import GaussianMixtureTarget, GridDensityTarget, UniformBoxTarget

DELTA = 0.3


def phi(x, s):
    return np.exp(-x * x / (2 * s * s)) / math.sqrt(2 * math.pi * s * s)


def test_uniform_box_smoothed_and_constant_match_quadrature():
    t = UniformBoxTarget(np.array([2.0]), np.array([2.5]))
    y = np.array([1.7, 2.0, 2.2, 3.1])
    got = t.smoothed(torch.tensor(y)[:, None], DELTA).numpy()
    ref = [integrate.quad(lambda w: phi(v - w, DELTA) * 2.0, 2.0, 2.5, epsabs=1e-13)[0] for v in y]
    C = integrate.dblquad(lambda u, w: 4.0 * phi(u - w, DELTA), 2.0, 2.5, 2.0, 2.5, epsabs=1e-12)[0]
    # adaptive quadrature of smooth integrands: 1e-9 relative is far above its error
    assert got == pytest.approx(ref, rel=1e-9)
    assert t.constant(DELTA) == pytest.approx(C, rel=1e-9)


def test_gaussian_mixture_constant_matches_quadrature_in_1d():
    t = GaussianMixtureTarget(np.array([0.3, 0.7]), np.array([[0.0], [1.0]]),
                              np.array([[[0.2]], [[0.05]]]))
    dens = lambda x: 0.3 * phi(x, math.sqrt(0.2)) + 0.7 * phi(x - 1.0, math.sqrt(0.05))  # noqa: E731
    smoothed = lambda y: integrate.quad(lambda w: phi(y - w, DELTA) * dens(w), -8, 9, epsabs=1e-13)[0]  # noqa
    C = integrate.quad(lambda y: smoothed(y) * dens(y), -8, 9, epsabs=1e-12)[0]
    assert t.constant(DELTA) == pytest.approx(C, rel=1e-8)  # nested adaptive quadrature, error < 1e-10
    y = np.array([-0.5, 0.4, 1.2])
    assert t.smoothed(torch.tensor(y)[:, None], DELTA).numpy() == pytest.approx([smoothed(v) for v in y], rel=1e-9)


def test_a_mixtures_kept_factors_follow_delta():
    """``smoothed`` keeps its components' factors of cov + delta^2 I for the last delta: alternating two
    deltas (and float32), each value still matches quadrature at its own delta."""
    t = GaussianMixtureTarget(np.array([0.4, 0.6]), np.array([[0.0], [0.8]]), np.array([[[0.1]], [[0.03]]]))
    dens = lambda x: 0.4 * phi(x, math.sqrt(0.1)) + 0.6 * phi(x - 0.8, math.sqrt(0.03))  # noqa: E731
    y = np.array([-0.3, 0.5, 1.1])
    ref = {delta: [integrate.quad(lambda w: phi(v - w, delta) * dens(w), -8, 9, epsabs=1e-13)[0] for v in y]
           for delta in (0.3, 0.05)}
    for delta in (0.3, 0.05, 0.3):
        # adaptive quadrature of a smooth integrand: 1e-9 relative is far above its error
        assert t.smoothed(torch.tensor(y)[:, None], delta).numpy() == pytest.approx(ref[delta], rel=1e-9)
    got32 = t.smoothed(torch.tensor(y, dtype=torch.float32)[:, None], 0.3)  # its own factors, in float32
    assert got32.dtype == torch.float32 and got32.numpy() == pytest.approx(ref[0.3], rel=1e-5)  # 1e-7 rounding


PTS = np.random.default_rng(0).normal(size=(12, 2))
CELLS = np.array([[x + 0.5, y + 0.5] for x in range(3) for y in range(4)])


@pytest.mark.parametrize("target, src", [
    ({"kind": "particles", "points": PTS.tolist()}, PTS),
    ({"kind": "grid", "low": [0, 0], "high": [3, 4], "values": np.ones((4, 3)).tolist()}, CELLS),
], ids=["particles", "grid"])
def test_nonlocal_energy_vanishes_on_the_target(target, src):
    """||k*mu - k*m||^2 = 0 when mu = m: particles on a particle target, and particles at the cell
    centres of an equal-mass grid target (the quadrature rule is then exact)."""
    p = problem_from_dict({"source": {"points": src.tolist()}, "target": target, "eps": 0.01, "M": 2})
    ne = float(Objective(p).nonlocal_energy(torch.as_tensor(src)))
    assert abs(ne) < 1e-10  # three O(1/eps) terms cancel: only rounding is left


@pytest.mark.parametrize("target", [
    {"kind": "gaussian", "mean": [1, 1], "cov": 0.3},
    {"kind": "uniform", "low": [0, 0], "high": [1, 2]},
    {"kind": "mixture", "components": [{"weight": 1, "mean": [0, 0], "cov": 0.1},
                                       {"weight": 2, "mean": [1, 0], "cov": [[0.2, 0.05], [0.05, 0.1]]}]},
    {"kind": "annulus", "center": [0.5, 0.0], "inner": 0.3, "outer": 1.0},
], ids=lambda t: t["kind"])
def test_nonlocal_energy_is_nonnegative_for_continuum_targets(target):
    rng = np.random.default_rng(3)
    p = problem_from_dict({"source": {"points": rng.normal(size=(40, 2)).tolist()}, "target": target,
                           "eps": 1.0, "M": 2, "delta": 0.2})
    y = torch.as_tensor(rng.normal(size=(40, 2)))
    assert float(Objective(p).nonlocal_energy(y)) > 0


def test_grid_target_orientation_rows_are_second_coordinate():
    values = np.zeros((2, 3))
    values[1, 2] = 1.0  # row 1 = upper half in y, column 2 = right third in x
    t = GridDensityTarget(np.array([0.0, 0.0]), np.array([3.0, 2.0]), values)
    assert t.mean() == pytest.approx([2.5, 1.5])
