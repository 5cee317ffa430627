"""The paper's published inputs: the default method reaches at most the published objective, within the
problem's 60 s time limit (the paper allowed 2,000 to 5,000,000 gradient steps)."""
import pytest

from solver import solve
from solver.diagnostics import map_errors

pytestmark = pytest.mark.paper

PUBLISHED = {  # ../shared/paper-data/README.md, objective with the constant C_{delta, m1}
    "fig1_pot_comparison": 1.98845,
    "fig2_gaussian_samples": 4.31848,
    "fig2_gaussian_continuum": 3.29779,
    "fig4_obstacles": 16.16196,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_default_method_reaches_the_published_objective(preset, name):
    p = preset(name)
    assert p.optimizer.method == "robust" and p.optimizer.time_limit == 60
    r = solve(p)
    print(f"{name}: ours {r.final.objective:.6f} vs paper {PUBLISHED[name]} in {r.final.elapsed:.1f} s "
          f"({r.final.evaluations} evaluations, {r.final.status})")
    assert r.final.objective <= PUBLISHED[name]
    assert r.final.elapsed <= 61.0  # the time limit, plus the last report's work
    if p.obstacles is not None:
        assert p.obstacles.depth(r.positions).max() <= 1e-3


def test_fig1_kinetic_energy_is_below_the_emd_value(preset):
    """Fig. 1: the soft terminal constraint lets the kinetic energy fall below POT's W2^2 = 1.99082."""
    r = solve(preset("fig1_pot_comparison"))
    assert r.final.energies["kinetic"] < 1.99082 < r.final.objective + 0.02


# Fig. 9: terminal error (65) of the exact minimizer. The published errors come from gradient descent
# stopped early (at 3e5-1.4e6 steps, or at the 2e6 cap), not from minimizers: running our faithful copy of
# that descent ("gd", lr 3e-5, same schedule) at N = 5 reproduces the published 0.005568994 to 8 digits at
# an objective 6.5e-10 above the minimizer's, whose error is 0.005569002; at N = 20 it stops (plateau rule,
# step 1,160,234) at 0.0019606 (published 0.0019599), 3.6e-9 above the minimum; at N = 100 it reaches the
# 2e6 cap at 0.00054464 (published 0.00054381), 1.3e-4 above the minimum (README, "A finding on Fig. 9").
# The minimizer's errors are 0.0001% to 2.3% above the published ones; they are pinned here to 5e-5
# relative: the objective is flat to float64 rounding along directions in which the error moves, and
# Newton stops where the model predicts less than the rounding (N = 40: 0.0011083793 with numpy 2.4.6 /
# POT 0.9.7.post1, 0.001108403 with the packages CI installed at stop 17, 2.1e-5 apart, both "converged").
MINIMIZER_ERRORS = {5: 0.005569002, 10: 0.002619655, 20: 0.001966644, 40: 0.001108403,
                    80: 0.0006565677, 100: 0.0005562282}
PUBLISHED_ERRORS = {5: 0.005569, 10: 0.002619, 20: 0.001960, 40: 0.001093, 80: 0.000645, 100: 0.000544}


@pytest.mark.parametrize("N", sorted(MINIMIZER_ERRORS))
def test_fig9_terminal_errors(preset, N):
    p = preset(f"fig9_N{N:03d}")
    r = solve(p)
    err = map_errors(r.positions, 0.5 * p.source + 2.0)["error_terminal"]
    print(f"N={N}: error (65) {err:.10f}, published {PUBLISHED_ERRORS[N]}")
    assert err == pytest.approx(MINIMIZER_ERRORS[N], rel=5e-5)
    assert err <= 1.025 * PUBLISHED_ERRORS[N]
    assert r.final.status == "converged" and r.final.elapsed < 60
