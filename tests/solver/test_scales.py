"""Problems far from the scales float64 resolves: the energies stay exact wherever the scene lies, and
a kernel or a penalty beyond float64's reach is refused with one line naming the field and the fix."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import solver
from solver.reduced import ReducedObjective


@pytest.mark.parametrize("offset", [0.0, 1e8])
def test_the_reduced_control_energy_is_exact_far_from_the_origin(offset):
    """Under velocity control the minimum-energy path to Y_i is straight at constant speed, so
    KE(Y) = (1/N) sum_i |Y_i - x_i|^2 in closed form. Moves of ~0.1 at coordinates ~1e8: the positions
    carry rounding of ~1e-8 (2^-52 of 1e8), so KE agrees to 1e-6 relative; the expanded quadratic
    (sum of Y Q Y / 2 + q Y + c, terms ~1e16) was off by ~1 absolute, against KE ~ 0.01."""
    rng = np.random.default_rng(4)
    x = offset + rng.uniform(0, 1, (30, 2))
    move = rng.normal(0, 0.1, (30, 2))
    # delta >= 1e-8 of the coordinates, as the scale check asks (``solver.scales``)
    problem = solver.problem_from_dict({"source": {"points": x.tolist()}, "M": 6, "delta": 2.0,
                                        "target": {"kind": "particles", "points": (x + 1.0).tolist()}})
    work = ReducedObjective(problem)
    Y = torch.as_tensor(x + move)
    exact = float((move ** 2).sum(1).mean())
    value, grad, _ = work.kinetic(Y)
    assert float(value) == pytest.approx(exact, rel=1e-6)
    # the gradient 2 (Y_i - x_i) / N, to the same rounding (relative to |move| ~ 0.1)
    assert np.allclose(grad.numpy(), 2 * move / 30, rtol=0, atol=1e-6 * 0.1 * 2 / 30)
    assert float(work.particle_kinetic(Y).sum()) == pytest.approx(exact, rel=1e-6)
    assert float(work.kinetic(work.rest_states())[0]) == 0.0  # the sources themselves: no move, no energy


SCENE = {"source": {"points": [[0.0, 0.0], [1.0, 0.5], [0.5, 1.0], [0.2, 0.7]]},
         "target": {"kind": "particles", "points": [[2.0, 0.0], [3.0, 1.0], [2.5, 0.5], [2.2, 0.9]]}, "eps": 0.01}


@pytest.mark.parametrize("changes, field, phrase", [
    ({"delta": 1e-30}, "delta", "below 1e-08 times the largest coordinate (3)"),
    ({"delta": 1e300}, "delta", "so wide that the kernel's peak (2 pi delta^2)^(-d/2) underflows float64"),
    ({"delta_exponent": 60.0}, "delta_exponent", "gives delta = N^(-k/d) = 8.67e-19 for N = 4"),
    ({"eps": 1e-30}, "eps", "too small for float64 at delta = 0.503"),
    ({"target": {"kind": "annulus", "center": [2.0, 0.5], "inner": 0.5, "outer": 1e4}}, "target.outer",
     "10000 is 1.99e+04 times delta = 0.503, over 10000"),
    ({"obstacles": [{"center": [1.5, 0.5], "radius": 0.2}], "obstacle_weight": 1e200}, "obstacle_weight",
     "1e+200 is over 1e+100: Newton's factorizations overflow float64"),
    ({"source": {"points": [[1e10, 0.0], [1.0, 0.5], [0.5, 1.0], [0.2, 0.7]]}}, "delta",
     "0.503 (auto, eq. 58) is below 1e-08 times the largest coordinate (1e+10)"),
])
def test_kernels_and_penalties_beyond_float64_are_refused_naming_the_field(changes, field, phrase):
    """Each of these used to "converge" at a meaningless value (negative, 1e59, 0) or crash deep in the
    solve (measured in ``solver.scales``); now one line names the field, what is wrong and the fix."""
    with pytest.raises(solver.ProblemError) as err:
        solver.problem_from_dict(dict(SCENE, **changes))
    text = str(err.value)
    assert err.value.field == field and "\n" not in text and phrase in text, text


@pytest.mark.parametrize("changes, phrase", [
    ({"delta": 1e-300}, "delta: 1e-300 is so narrow that the kernel's peak (2 pi delta^2)^(-d/2) overflows"),
    ({"delta": 1e300}, "delta: 1e+300 is so wide that the kernel's peak"),
    ({"delta": 1e-100, "eps": 1.0}, "eps: 1 is too small for float64 at delta = 1e-100"),
])
def test_a_scene_at_the_origin_is_checked_without_overflow(changes, phrase):
    """One particle at the origin and a Gaussian there (largest coordinate 0): the bounds relative to the
    coordinates say nothing, the kernel's peak overflows or underflows, and the check still answers in
    one line (it raised ZeroDivisionError / OverflowError from float powers)."""
    spec = {"source": {"points": [[0.0, 0.0]]}, "target": {"kind": "gaussian", "mean": [0.0, 0.0], "cov": 1.0}}
    with pytest.raises(solver.ProblemError) as err:
        solver.problem_from_dict(dict(spec, **changes))
    assert str(err.value).startswith(phrase), str(err.value)


def test_the_least_eps_the_message_gives_is_the_bound_itself():
    """The eps the refusal suggests validates, and 1 % below it is refused: the message states the
    bound the check applies (2^-52 (2 pi delta^2)^(-d/2) / eps <= 1e-6 extent^2)."""
    with pytest.raises(solver.ProblemError) as err:
        solver.problem_from_dict(dict(SCENE, eps=1e-20))
    least = float(str(err.value).split("use eps >= ")[1].split()[0])
    solver.problem_from_dict(dict(SCENE, eps=least * 1.05))  # the message rounds to two digits
    with pytest.raises(solver.ProblemError):
        solver.problem_from_dict(dict(SCENE, eps=least * 0.95))
