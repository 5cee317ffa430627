"""The annulus target (added through the registry alone): K_delta * m_1 and C against adaptive
quadrature, its gradient, a solve onto it and a command-line run."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import integrate

from solver import problem_from_dict, solve
from solver.objective import Objective
from solver.targets import AnnulusTarget

CENTER, INNER, OUTER, DELTA = np.array([0.3, -0.2]), 0.4, 0.9, 0.15


def kernel(dx, dy):
    return math.exp(-(dx * dx + dy * dy) / (2 * DELTA**2)) / (2 * math.pi * DELTA**2)


def smoothed_by_quadrature(y):
    """(K_delta * m_1)(y) by adaptive quadrature in polar coordinates about the centre."""
    area = math.pi * (OUTER**2 - INNER**2)
    value, _ = integrate.dblquad(lambda t, r: kernel(y[0] - CENTER[0] - r * math.cos(t), y[1] - CENTER[1] - r * math.sin(t)) * r,
                                 INNER, OUTER, 0, 2 * math.pi, epsabs=1e-13, epsrel=1e-11)
    return value / area


def test_smoothed_density_matches_quadrature():
    target = AnnulusTarget(CENTER, INNER, OUTER)
    ys = np.array([CENTER, CENTER + [0.2, 0.1], CENTER + [0.65, 0.0], CENTER + [0.0, -0.9], CENTER + [1.3, 0.4]])
    got = target.smoothed(torch.as_tensor(ys), DELTA).numpy()
    want = [smoothed_by_quadrature(y) for y in ys]
    # composite Gauss-Legendre with 16 nodes per delta: rounding level; the adaptive reference is good to ~1e-11
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("inner_radius, outer_radius, delta", [(0.4, 0.9, 0.15), (0.5, 1.0, 0.0594), (0.0, 0.3, 0.01)])
def test_radial_profile_interpolates_the_quadrature_to_rounding(inner_radius, outer_radius, delta):
    """The piecewise Chebyshev profile the particles read equals the Gauss-Legendre quadrature it
    interpolates at random radii (ring, hole, centre region, far tail), values and derivatives; beyond
    its last panel (at least PROFILE_REACH delta past the ring) it is 0, where the quadrature is below
    1e-30 of its peak."""
    from solver.targets.annulus import PROFILE_REACH, radial_profile, radial_quadrature

    profile = radial_profile(inner_radius, outer_radius, delta)
    assert radial_profile(inner_radius, outer_radius, delta) is profile  # made once
    g = torch.Generator().manual_seed(1)
    reach = profile.coefficients.shape[0] * profile.width  # the last panel's end
    assert reach >= outer_radius + PROFILE_REACH * delta
    rho = torch.cat([1e-3 + (reach + 3 * delta) * torch.rand(4000, generator=g, dtype=torch.float64),
                     torch.tensor([inner_radius + 1e-3, outer_radius, reach - 1e-9, reach + 1e-9],
                                  dtype=torch.float64)]).requires_grad_(True)
    want, got = radial_quadrature(rho, inner_radius, outer_radius, delta), profile(rho)
    (want_slope,) = torch.autograd.grad(want.sum(), rho)
    (got_slope,) = torch.autograd.grad(got.sum(), rho)
    peak = float(want.detach().max())
    # degree 16 on panels of delta/2 resolves a profile analytic on the scale delta to rounding (2e-15
    # measured); its derivative loses a few digits to the differentiation (8e-13 measured)
    got, want = got.detach(), want.detach()
    assert float((got - want).abs().max()) < 1e-13 * peak
    assert float((got_slope - want_slope).abs().max()) < 1e-11 * peak / delta
    beyond = rho.detach() > reach
    assert torch.all(got[beyond] == 0) and float(want[beyond].max()) < 1e-30 * peak


def test_constant_matches_quadrature():
    """C = (1/area) int over the annulus of (K_delta * m_1): by symmetry a 1-D integral in the radius of
    the 2-D quadrature above (nested adaptive quadrature, good to ~1e-9)."""
    target = AnnulusTarget(CENTER, INNER, OUTER)
    area = math.pi * (OUTER**2 - INNER**2)
    C, _ = integrate.quad(lambda r: smoothed_by_quadrature(CENTER + [r, 0.0]) * 2 * math.pi * r / area,
                          INNER, OUTER, epsabs=1e-12, epsrel=1e-10)
    assert target.constant(DELTA) == pytest.approx(C, rel=1e-8)


def test_nonlocal_gradient_is_exact():
    p = problem_from_dict({"source": {"points": [[0.0, 0.0], [0.5, 0.1], [1.0, -0.3]]}, "eps": 0.1, "M": 2,
                           "delta": DELTA, "target": {"kind": "annulus", "center": CENTER.tolist(),
                                                      "inner": INNER, "outer": OUTER}})
    y = torch.tensor([[0.3, -0.2], [0.9, 0.1], [0.2, 0.6]], dtype=torch.float64, requires_grad=True)  # one at the centre
    assert torch.autograd.gradcheck(Objective(p).nonlocal_energy, (y,), eps=1e-6, atol=1e-6)


def test_particles_spread_over_the_annulus():
    """60 particles from a small square: the terminal points settle on the ring, all around it."""
    rng = np.random.default_rng(0)
    spec = {"source": {"points": (rng.uniform(-0.2, 0.2, (60, 2)) + [-2.0, 0.0]).tolist()}, "eps": 0.01, "M": 3,
            "target": {"kind": "annulus", "center": [1.0, 0.0], "inner": 0.5, "outer": 0.8}}
    r = solve(problem_from_dict(spec))
    end = r.positions[:, -1] - [1.0, 0.0]
    radius, angle = np.linalg.norm(end, axis=1), np.arctan2(end[:, 1], end[:, 0])
    # blobs of width delta = 60^(-0.495) ~ 0.13 sense the ring's edges: no terminal point more than
    # half a delta outside [0.5, 0.8]
    assert radius.min() > 0.5 - 0.07 and radius.max() < 0.8 + 0.07
    assert np.histogram(angle, bins=8, range=(-np.pi, np.pi))[0].min() >= 3  # every octant is covered
    assert r.final.status == "converged"


def test_annulus_through_the_command_line(tmp_path):
    spec = {"source": {"points": [[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1]]}, "M": 3,
            "target": {"kind": "annulus", "center": [1.0, 1.0], "inner": 0.2, "outer": 0.4}}
    (tmp_path / "p.json").write_text(json.dumps(spec))
    res = subprocess.run([sys.executable, "-m", "solver", "solve", str(tmp_path / "p.json"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["target"] == "annulus" and summary["nonlocal"] >= 0
    bad = dict(spec, target={"kind": "annulus", "center": [1.0, 1.0], "inner": 0.5, "outer": 0.4})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    res = subprocess.run([sys.executable, "-m", "solver", "solve", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.startswith("error: target.outer: must be larger than inner")


def test_wide_annuli_are_summed_in_blocks_equal_to_the_whole_sum(monkeypatch):
    """Beyond QUADRATURE_ENTRIES the quadrature sums blocks of sorted radii against the nodes within
    QUADRATURE_REACH delta, where every skipped term is exactly 0: forced onto that path, values and
    derivatives agree with the whole sum to rounding (1e-14 of the peak: only the order of the
    additions differs). And an annulus 2,000 delta wide, whose whole table (profile: ~2e9 entries) did
    not fit in memory, gets its profile and constant."""
    import solver.targets.annulus as annulus

    g = torch.Generator().manual_seed(2)
    rho = (1.2 * torch.rand(3000, generator=g, dtype=torch.float64)).requires_grad_(True)
    whole = annulus.radial_quadrature(rho, 0.3, 0.9, 0.02)
    (whole_slope,) = torch.autograd.grad(whole.sum(), rho)
    monkeypatch.setattr(annulus, "QUADRATURE_ENTRIES", 20_000)
    blocked = annulus.radial_quadrature(rho, 0.3, 0.9, 0.02)
    (blocked_slope,) = torch.autograd.grad(blocked.sum(), rho)
    peak = float(whole.detach().max())
    assert float((blocked - whole).detach().abs().max()) <= 1e-14 * peak
    assert float((blocked_slope - whole_slope).abs().max()) <= 1e-14 * float(whole_slope.abs().max())
    monkeypatch.undo()
    wide = problem_from_dict({"source": {"points": [[0.0, 0.0], [1.0, 1.0]]}, "delta": 0.001,
                                     "target": {"kind": "annulus", "center": [0.0, 0.0], "inner": 1.0, "outer": 2.0}})
    profile = annulus.radial_profile(1.0, 2.0, 0.001)
    assert profile.coefficients.shape[0] >= 4000  # 2.012 / (0.5 delta) panels
    constant = wide.target.constant(0.001)
    # C = ||K_delta * m_1||^2 is about the density's square integral, 1 / area (delta << the ring's width)
    assert constant == pytest.approx(1.0 / (math.pi * 3.0), rel=2e-3)
