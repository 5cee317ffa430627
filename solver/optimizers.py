"""Minimizers of the discrete objective (eq. 50), chosen by name from ``OPTIMIZERS``.

Each method is a generator ``method(objective, x0, spec) -> Iterator[Step]``: it yields after every
iteration or small block of iterations, and the caller (``solver.run``) decides when to stop (limits,
pause/stop requests). A method finishes by yielding a step with ``status`` set.

* ``gd``: the paper's method (section 4.1): plain gradient descent with learning rate ``lr``, cut
  by 0.2 after 2 non-improving steps while the cut exceeds 1e-8 (torch's ReduceLROnPlateau), and stopped
  after 5 non-improving steps. The baseline.
* ``lbfgs``: L-BFGS preconditioned by the inverse Hessian of the control energy, steps capped per
  particle, Armijo backtracking.
* ``newton``: saddle-free Newton with a structured Hessian (small problems).
* ``adam``: Adam with learning rate ``lr``.
* ``robust`` (default): in the terminal states alone when nothing else matters (``TerminalObjective``),
  L-BFGS until it slows down, then Newton (from rough starts of more than 8,000 unknowns, L-BFGS
  alone: ``glassy``); then *reassignment*: the nonlocal energy depends only on
  the set of terminal states, while the control energy depends on which particle goes where, so an
  exact OT assignment (under the exact steering cost; ``solver.assignment``) of sources to the current
  terminal states can only lower the control part; the trajectories are re-routed and the local solve
  resumes, until no reassignment helps. This repairs the crossing trajectories that trap descent methods (section 4.7).
  All this from minimum-energy paths to an OT assignment onto the target (``init="ot"``), then from
  check starts (the problem's own among them when the solve ended short of the target); the run keeps
  the best iterate (``solver.run`` tracks it).
* ``local``: ``robust``'s local solve and reassignment from the given start, then (small problems) the
  OT start as a check: continuation after a small change of the problem (``solver.warm``).
"""
from __future__ import annotations

import contextvars
import dataclasses
import math
import re
import threading
from collections import deque
from typing import Callable, Generator, Iterator, TypeVar

import numpy as np

from .assignment import (EXACT_PAIRS, LEAF_PARTICLES, PERIODIC_EXACT_PAIRS, REASSIGN_EXACT_PAIRS,
                         REASSIGN_FRAMES, improved_permutation)
from .init import (DETOUR_MARGIN, OTStart, around_obstacles, blob_quantized, paths_to, rounded_terminal_states,
                   target_size)
from .kernels import second_order
from .lazy import torch
from .objective import Objective, add_to_diagonal_blocks
from .problem import OptimizerSpec, Problem
from .reduced import ReducedObjective, reducible
from .registry import OPTIMIZERS
from .release import released
from .steering import KineticPreconditioner, quadratic_structure, steering_coordinates
from .steps import Step, per_particle_grad_norm
from .threads import adopt_threads
from .trust_region import Window, plateau_tolerance, rounding_scale, structured_system_bytes, trust_region

#: From a rough start in the terminal states (a continuum target's quasi-random quantization, which
#: L-BFGS then moves far) the local solve also tries a reassignment at its first Newton iteration and
#: every this many after it, not only once it has converged: there a reassignment permutes the states
#: (the nonlocal energy stays, the control energy falls), so it is taken at once. Newton's steps cannot
#: swap two particles' targets; with crossings left they crawl (Gaussian target, N = 1,000: 380 Newton
#: iterations, 48 s, for 7e-5 of relative decrease; the reassignment at their end gave 1.5e-4 at once).
#: From starts near the final states (onto particles or blob quantizations) the checks cost more than
#: they gain, and interrupted solves end in other minima (N = 1,000 samples: 59 -> 69 s to converge;
#: Fig. 2 continuum 3.2830069 -> 3.2830277), so there a reassignment waits for the local solve's end;
#: so too beyond ``EXACT_PAIRS`` in Newton's solves, where a check takes about a second and restarts the
#: solve (N = 10,000: 40 reassignments in 77 s of Newton, ending at 2.9119324 against 2.9117148 without
#: the checks; such sizes now take the L-BFGS solve below, checked every ``GLASSY_REASSIGN_EVERY``).
REASSIGN_EVERY = 10
#: Where the plateau applies (glassy landscapes, ``trust_region.plateau_tolerance``) and N^2 is at most
#: ``REASSIGN_EXACT_PAIRS``, Newton's solve from such a start is still checked (``_until_reassigned``,
#: exactly): after REASSIGN_EVERY iterations, then after this many times the last interval each time (a
#: check costs 0.04 s at N = 1,000, 0.1-0.2 s at N = 3,000, 1-3 s at N = 10,000), and interrupted only
#: when the check gains more than the solve itself gained since the last one. Where a reassignment
#: gains little the solve runs on as before (samples N = 1,000, seeds 1-3: the same endpoints); where
#: the assignment falls behind the moving states the crawl ends at once. Measured (2-D unless said,
#: uniform sources on the unit square, eps = 0.01): a Gaussian target at the square's centre, N = 3,000,
#: 58 -> 19 s, 0.0084514912 -> 0.0084511534 (another draw 82 -> 20 s, 0.0088751699 -> 0.0088736347),
#: N = 5,000 128 -> 32 s, 0.0085144441 -> 0.0085137265, N = 10,000 from its 120 s limit at 0.0080889327
#: to converged in 46 s at 0.0080210183; a ring target, N = 3,000, from its 120 s limit at 0.0219787773
#: to converged in 24 s at 0.0219315798; samples of a Gaussian beside the square, N = 3,000 5.4 -> 4.9 s,
#: 2.5102116 -> 2.5102133, N = 5,000 9.3 -> 8.5 s, 2.4941192 -> 2.4941216, N = 10,000 (two draws)
#: 20.0 / 19.7 -> 21.8 / 21.4 s, 2.5041863 / 2.5064421 -> 2.5041854 / 2.5064444; 3-D, N = 2,500 27 ->
#: 21 s, 3.0370777 -> 3.0370848 (the samples within the glassy spread); N = 2,000 overlapping, 2-D and
#: 3-D: never interrupted, the same endpoints.
CHECK_INTERVAL_GROWTH = 2
#: In the terminal states of more than ``GLASSY_MIN_VARS`` unknowns the local solve from a rough start
#: is L-BFGS alone (``glassy``): checked for a reassignment every ``GLASSY_REASSIGN_EVERY`` iterations
#: (at any N: a check takes ~1 s at N = 10,000 (exact, ``augmenting``), ~0.35 s by groups of nearby
#: particles, about 20 iterations),
#: and stopped by the plateau rule over ``GLASSY_WINDOW`` iterations. Past its first descent the
#: landscape is glassy (section 4.7), and a Newton-CG iteration's products grow with N in number and in
#: cost: at N = 10,000 (Gaussian target) 40-100 Hessian-vector products per iteration for steps of
#: 0.1-0.5 % of delta (2.91199 -> 2.91183 in 52 s), where L-BFGS at one gradient per iteration went from
#: 2.91530 to 2.91180 in 10 s and reassignments (which Newton's steps cannot make) gained more still.
#: Measured from the same starts, three draws of the sources each (2 cores, relative differences of the
#: final objectives, negative where L-BFGS alone ended lower): N = 10,000 in 38-41 s against 143-174 s,
#: -5e-5, -1.8e-4, -1.8e-4; N = 5,000 in 14-15 s against 48-62 s, -2.1e-5, +6.3e-5, -4.0e-5; but
#: N = 3,000 in 9-11 s against 27-44 s, -3.7e-5, +2.2e-4, +2.5e-4, and N = 2,000 in 9-10 s against
#: 14-16 s, +3.9e-4, +4.1e-4, +3.2e-4 (a Newton finish from L-BFGS's end gains 5e-6 there: a different
#: basin, not an unfinished solve). Hence the threshold, between 6,000 and 10,000 unknowns. The window: a
#: Newton-CG iteration there cost ~25-45 products, so 100 L-BFGS iterations are about 3 Newton
#: iterations' work; a smaller ``plateau`` asks for more (with a window of 300 the N = 10,000 run took
#: 84 s to 2.911285). From starts onto particles Newton-CG stays: there it ends lower (N = 3,000
#: samples: 2.5385776 against 2.5386753).
GLASSY_MIN_VARS = 8_000
#: (The same window serves the plateau of L-BFGS's solves in full trajectories, ``_local``.)
GLASSY_WINDOW, GLASSY_REASSIGN_EVERY = 100, 150
#: Seconds between the reports a method repeats while it prepares a start in the background.
HEARTBEAT = 0.2

T = TypeVar("T")


def default_lr(objective: Objective) -> float:
    """The paper's scaling of the learning rate with eps (section 4.2): alpha = 0.01 eps (Fig. 2)."""
    return 0.01 * objective.problem.eps


# --------------------------------------------------------------------------------------- gd (paper)
#: Gradient descent stops after this many iterations without a new lowest objective ...
GD_PATIENCE = 5
#: ... a minimum if they all stayed within this of the lowest, relative (float64 rounding of an O(1)
#: sum of terms is ~1e-16; the paper's learning-rate cuts leave the last iterates about that close).
GD_SETTLED = 1e-12


@OPTIMIZERS.register(name="gd")
def gradient_descent(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec) -> Iterator[Step]:
    """The paper's gradient descent (section 4.1): learning rate lr, cut on plateaus (slow, the baseline).

    Stops after ``GD_PATIENCE`` iterations without a new lowest objective E*: converged if they stayed
    within ``GD_SETTLED`` s of it (a minimum, to rounding), diverged if the objective ran more than s
    above it (lr too large: the run keeps its lowest iterate), else stalled; s = |E*| plus the scale
    the objective's rounding is relative to besides |E| (``trust_region.rounding_scale``: at E* = 0,
    points resting on their targets, the iterates differ by rounding of the nonlocal term's sums).
    Before, every such stop read "converged": 20 accelerated particles (default lr) went 184 -> 3e10
    in 5 steps and reported "converged" at the start. A stop at a saddle (``away_from_saddle``: five
    particles started at one point keep an exactly symmetric gradient, zero at the origin) is stalled:
    the paper's method has no step along negative curvature."""
    lr = spec.lr or default_lr(objective)
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2, threshold=0.0, factor=0.2)
    best, bad, highest = math.inf, 0, -math.inf  # highest: of the iterations since the lowest
    summed = rounding_scale(objective)
    for it in range(1, spec.max_iter + 1):
        opt.zero_grad()
        e = objective.energies(x)
        e["objective"].backward()
        energies = {k: float(v.detach()) for k, v in e.items()}
        here = x.detach().clone()
        gnorm = per_particle_grad_norm(x.grad)
        step = opt.param_groups[0]["lr"]
        loss = energies["objective"]
        if not math.isfinite(loss):
            yield Step(here, energies, gnorm, step, it, it, "gd", status="diverged")
            return
        opt.step()
        sched.step(loss)
        if loss < best:
            best, bad, highest = loss, 0, -math.inf
        else:
            bad, highest = bad + 1, max(highest, loss)
        status = None
        if gnorm <= spec.gtol:
            status = "converged"
        elif bad >= GD_PATIENCE:
            scale = abs(best) + summed  # what the objective's rounding is relative to
            status = ("converged" if highest - best <= GD_SETTLED * scale
                      else "diverged" if loss - best > scale else "stalled")
        if status == "converged" and away_from_saddle(objective, here, x.grad, loss, max_move(objective),
                                                      GD_SETTLED * (abs(loss) + summed)) is not None:
            status = "stalled"  # a saddle: the gradient vanishes there, and descent cannot leave it
        yield Step(here, energies, gnorm, step, it, it, "gd", status=status)
        if status:
            return


# -------------------------------------------------------------------------------------------- adam
@OPTIMIZERS.register(name="adam")
def adam(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec) -> Iterator[Step]:
    """Adam with learning rate lr (default 1e-3); converged at ``gtol``, stalled there at a saddle."""
    x = x0.detach().clone().requires_grad_(True)
    lr = spec.lr or 1e-3
    opt = torch.optim.Adam([x], lr=lr)
    summed = rounding_scale(objective)
    for it in range(1, spec.max_iter + 1):
        opt.zero_grad()
        e = objective.energies(x)
        e["objective"].backward()
        energies = {k: float(v.detach()) for k, v in e.items()}
        gnorm = per_particle_grad_norm(x.grad)
        status = "converged" if gnorm <= spec.gtol else None
        if not math.isfinite(energies["objective"]):
            status = "diverged"
        elif status and away_from_saddle(objective, x.detach(), x.grad, energies["objective"], max_move(objective),
                                         GD_SETTLED * (abs(energies["objective"]) + summed)) is not None:
            status = "stalled"  # a saddle (as in ``gradient_descent``)
        yield Step(x.detach().clone(), energies, gnorm, lr, it, it, "adam", status=status)
        if status:
            return
        opt.step()


# ------------------------------------------------------------------------------------------- lbfgs
def max_move(objective: Objective) -> float:
    """Largest displacement of one particle's variables in one iteration: delta (the kernel's
    sensing radius) for trajectories, delta/h for controls. Jumps much longer than delta skip over the
    target structure the nonlocal term senses and land in the basins of crossed or piled-up particles
    (section 4.7); capped steps follow the gradient flow's path instead."""
    p = objective.problem
    return p.dynamics.max_move(p.delta, p.h)


def _two_loop(g: torch.Tensor, pairs: deque[tuple[torch.Tensor, torch.Tensor, float]], gamma: float,
              precondition: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """L-BFGS direction -H g from the stored pairs (s, y, s.y) and the initial inverse Hessian gamma P
    (Nocedal and Wright, Algorithm 7.4). Each pair's s.y is the one computed when it was stored
    (bitwise the same sum; recomputing it twice per pair per call was a third of the loop's time)."""
    q = g.clone()
    alphas = []
    for s, y, sy in reversed(pairs):
        a = float((s * q).sum()) / sy
        alphas.append(a)
        q -= a * y
    r = gamma * precondition(q)
    for (s, y, sy), a in zip(pairs, reversed(alphas)):
        b = float((y * r).sum()) / sy
        r += (a - b) * s
    return -r


def _capped(d: torch.Tensor, cap: float) -> torch.Tensor:
    """d scaled down so that no particle's block moves farther than ``cap``."""
    longest = float(d.flatten(1).norm(dim=1).max())
    return d * (cap / longest) if longest > cap else d


def _armijo(objective: Objective, x: torch.Tensor, d: torch.Tensor, f: float, gd: float, curvature: float = 0.0,
            least_gain: float = -math.inf) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, int] | None:
    """Backtracking from t = 1 (halving, down to 2^-30: below that the change is lost in rounding)
    until E(x + t d) <= E(x) + 1e-4 (t g.d + t^2 ``curvature`` / 2) and E falls by more than
    ``least_gain`` (the second-order terms serve steps along negative curvature, ``away_from_saddle``).
    Returns (x + t d, energies, gradient, evaluations) or None.

    A trial that rounds back to x is no step (shorter ones round there too), so the search ends with
    None: otherwise E(x) <= E(x) + 1e-4 t g.d passes whenever t g.d is below E's rounding, and a null
    step reads as accepted (where Hessian eigenvalues reach 1e301, Newton's whole step rounds to zero)."""
    t = 1.0
    for k in range(1, 31):
        trial = x + t * d
        if torch.equal(trial, x):
            return None
        e_new, g_new = objective.value_and_grad(trial)
        if e_new["objective"] <= f + 1e-4 * (t * gd + 0.5 * t * t * curvature) and f - e_new["objective"] > least_gain:
            return trial, e_new, g_new, k
        t *= 0.5
    return None


#: A stop of L-BFGS or Newton (by any of their rules) on at most ``NEWTON_MAX_VARS`` variables, where a
#: dense Hessian takes a fraction of a second, is checked for a saddle (``away_from_saddle``); the
#: solve goes on from a step along negative curvature at most this many times.
SADDLE_ESCAPES = 10


def away_from_saddle(objective: Objective, x: torch.Tensor, g: torch.Tensor, f: float, cap: float,
                     least_gain: float) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, int] | None:
    """A step from x along the Hessian's most negative curvature that lowers E by more than
    ``least_gain`` (what the stopping rule that fired neglects), or None: x is a minimum to that
    tolerance (or has more than ``NEWTON_MAX_VARS`` variables: no dense Hessian is formed there).

    Descent methods keep a symmetric start symmetric: five particles started at one point have an
    exactly symmetric gradient, zero with all of them at the origin, and L-BFGS, Newton, gd and Adam all
    stopped there after one iteration, "converged" at a saddle (lowest eigenvalue -6.4e4); L-BFGS's
    positive definite model can also converge to one. With v the eigenvector of the lowest eigenvalue
    lambda < 0, scaled so its longest particle move is ``cap``, each sign of v (the one not against the
    gradient first) is backtracked (``_armijo``) until E(x + t v) <= E(x) + 1e-4 (t g.v + t^2 lambda
    |v|^2 / 2) with a gain above ``least_gain``; a lambda within the Hessian's rounding (1e-12 of its largest)
    or whose quadratic model gains at most ``least_gain`` at t = 1 is no saddle worth leaving: near the
    piecewise cost's kinks the Hessian shows eigenvalues of -0.006 to -0.013 (largest 5.2) along which
    steps gained 1e-12 to 1e-9 relative, and L-BFGS restarted after each for nothing (and ended
    elsewhere in the glassy spread). Returns (x + t v, energies, gradient, evaluations) like ``_armijo``."""
    if x.numel() > NEWTON_MAX_VARS:
        return None
    lam, Q = torch.linalg.eigh(hessian(objective, x))
    lowest = float(lam[0])
    v = Q[:, 0].reshape(x.shape)
    v = v * (cap / float(v.flatten(1).norm(dim=1).max()))
    curvature = lowest * float((v * v).sum())  # lambda |v|^2: the model's second-order change at t = 1
    if not (lowest < -1e-12 * float(lam.abs().max()) and -0.5 * curvature > least_gain):
        return None
    evaluations = 1  # the Hessian
    for d in sorted((v, -v), key=lambda d: float((g * d).sum())):
        found = _armijo(objective, x, d, f, float((g * d).sum()), curvature, least_gain)
        if found is not None:
            return (*found[:3], evaluations + found[3])
        evaluations += 30  # a failed search, counted as everywhere else
    return None


@OPTIMIZERS.register(name="lbfgs")
def lbfgs(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec, phase: str = "lbfgs",
          iterations: int = 0, evaluations: int = 0, history: int = 30,
          precondition: Callable[[torch.Tensor], torch.Tensor] | None = None,
          window: int = 10, plateau: float = 0.0, saddles: bool = True) -> Iterator[Step]:
    """Preconditioned L-BFGS with steps capped per particle (any size of problem).

    Steps are capped per particle (``max_move``) and found by an Armijo backtracking line search. The initial inverse Hessian is gamma P, P the inverse Hessian of the control energy
    (``KineticPreconditioner``), gamma = s.y / y.P y from the latest pair.

    Stops when the per-particle gradient N max|dE/dy| is below ``gtol``, when the objective's relative
    decrease over ``window`` iterations is below ``rtol`` (unless the last step was cut to the cap) or
    below ``plateau`` while no particle moved farther than ``trust_region.PLATEAU_MOVE`` times the cap
    in the window (the plateau rule of ``trust_region``), or when no descent step can be found. On at
    most ``NEWTON_MAX_VARS`` variables a stop is a minimum only if the Hessian has no negative curvature
    there along which a step gains; else L-BFGS goes on from that step (``away_from_saddle``), unless
    ``saddles`` is False: before Newton's method, whose saddle-free steps take negative curvature
    themselves (a check there only spent iterations: piecewise cost, max_iter 50, 0.5905 -> 0.6378)."""
    cap = max_move(objective)
    precondition = precondition or KineticPreconditioner(objective)
    x = x0.detach().clone()
    energies, g = objective.value_and_grad(x)
    evaluations += 1
    f = energies["objective"]
    pairs: deque[tuple[torch.Tensor, torch.Tensor, float]] = deque(maxlen=history)  # (s, y, s.y)
    gamma = 1.0 / x.shape[0]  # P is the Hessian inverse of N KE; gamma = 1/N matches KE's scale
    recent = Window(f, window)
    it = escapes = 0
    while True:
        it += 1
        d = _two_loop(g, pairs, gamma, precondition) if pairs else -gamma * precondition(g)
        if not float((g * d).sum()) < 0:  # lost positive definiteness: restart
            pairs.clear()
            d = -gamma * precondition(g)
        capped = float(d.flatten(1).norm(dim=1).max()) > cap
        d = _capped(d, cap)
        found = _armijo(objective, x, d, f, float((g * d).sum()))
        evaluations += 30 if found is None else found[3]
        status = None
        if found is None:
            if pairs:  # forget the curvature pairs and retry along the preconditioned gradient
                pairs.clear()
                continue
            status = "converged"
            trial, e_new, g_new = x, energies, g
        else:
            trial, e_new, g_new = found[:3]
        s, y = trial - x, g_new - g
        sy = float((s * y).sum())
        if sy > 1e-12 * float(s.norm() * y.norm()):
            pairs.append((s, y, sy))  # the oldest pair drops out beyond ``history``
            gamma = sy / float((y * precondition(y)).sum())
        x, g, energies, f = trial, g_new, e_new, e_new["objective"]
        step = float(s.flatten(1).norm(dim=1).max())
        recent.add(f, step)
        gnorm = per_particle_grad_norm(g)
        if not math.isfinite(f):
            status = "diverged"
        elif gnorm <= spec.gtol:
            status = "converged"
        elif recent.full:
            # a slow decrease while steps are cut to the per-particle cap means the solve is travelling
            # (e.g. from a start whose objective is huge), not converging
            if recent.gained() <= spec.rtol * max(abs(f), 1e-30) and not capped:
                status = "converged"
            elif recent.plateau(plateau, cap):
                status = "converged"
        away = None
        if status == "converged" and saddles and escapes < SADDLE_ESCAPES:
            away = away_from_saddle(objective, x, g, f, cap, max(plateau, spec.rtol) * abs(f))
        if away is not None:  # a saddle: on from the step along its negative curvature, afresh
            step = float((away[0] - x).flatten(1).norm(dim=1).max())
            x, energies, g = away[:3]
            f, evaluations, escapes, status = energies["objective"], evaluations + away[3], escapes + 1, None
            gnorm = per_particle_grad_norm(g)
            pairs.clear()
            recent = Window(f, window)
        yield Step(x, energies, gnorm, step, iterations + it, evaluations, phase, status=status)
        if status:
            return


# ------------------------------------------------------------------------------------------ newton
#: Newton converges quadratically where the objective is twice differentiable; a relative decrease
#: below this over 10 steps means it is crawling along a kink, so it stops.
NEWTON_STALL_RTOL = 1e-9
#: Newton's method is used by ``robust`` when the problem has at most this many variables: a dense
#: Hessian and its eigendecomposition then take ~0.1 s, so a live solve still reports several times a
#: second (at 1,000 variables each Newton step takes ~0.3 s and the app's plots stall).
NEWTON_MAX_VARS = 600


def _batched_hessian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     tangents: torch.Tensor) -> torch.Tensor:
    """Hessian-vector products H t for a batch of tangents (double backward, batched)."""
    xg = x.detach().clone().requires_grad_(True)
    with second_order():
        (g,) = torch.autograd.grad(f(xg), xg, create_graph=True)
    (Ht,) = torch.autograd.grad(g, xg, tangents, is_grads_batched=True)
    return Ht


def separable_parts(objective: Objective, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, J, H_NE): the Hessian of eq. (50) at x when every term but the nonlocal one is a sum over
    particles (``Problem.separable``) is blockdiag(B_i) + J^T H_NE J, with B_i (V x V) the Hessian of
    particle i's own terms (``own_hessians``), J (D x V) the shared affine map from a particle's
    variables to its terminal state, and H_NE ((N, D, N, D)) the Hessian of the nonlocal energy in the
    terminal states."""
    return (own_hessians(objective, x), *nonlocal_parts(objective, x))


def nonlocal_parts(objective: Objective, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(J, H_NE): the nonlocal energy's Hessian at x is J^T H_NE J, J (D x V) the shared affine map from
    a particle's variables to its terminal state, H_NE (N, D, N, D) its Hessian in the terminal states."""
    p = objective.problem
    J = quadratic_structure(objective)[1]
    return J, objective.nonlocal_hessian(p.dynamics.terminal(objective.positions(x.detach()), objective.h))


def own_hessians(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """B_i (N, V, V): the Hessian of particle i's own terms (control energy, obstacle penalty at the time
    points and along the segments, potential field) in its V variables, all particles at once.

    When these terms couple variables at most b time steps apart (b = max(``time_coupling``, 1): a
    segment joins consecutive points), B_i is banded, and a tangent that is 1 in coordinate k at every
    time step j = c mod (2b + 1) (of every particle) returns, at time step j, column (j', k) of B_i for
    the one j' = c mod (2b + 1) within b steps of j: (2b + 1) m batched Hessian-vector products give
    all blocks, m the variables per time step. Otherwise (controls of a linear system reach every later
    time) V products, a unit vector in every particle's block at once.

    Obstacles whose shapes have closed-form Hessians (``Obstacles.hessians``: discs, convex polygons)
    are added as such, mapped to the variables through the positions' Jacobian (the same for every
    particle: the dynamics are linear). Through automatic differentiation the discs' many small
    operations made these blocks most of an obstacle solve's time (the gap preset, 6 discs with
    whole-path avoidance: 10.6 ms a call, 2.0 ms so; the polygon wall of the obstacle scenes 12.6 ms,
    2.9 ms so)."""
    N = x.shape[0]
    V = x.numel() // N
    obstacles = objective.problem.obstacles
    closed = None if obstacles is None else obstacles.hessians(objective.positions(x.detach()),
                                                               objective.obstacle_smoothing)

    def local(v: torch.Tensor) -> torch.Tensor:
        pos = objective.positions(v)
        own = objective.kinetic(pos, v) + objective.potential_field(pos)
        return own if closed is not None else own + objective.obstacle(pos)

    coupling = objective.problem.dynamics.time_coupling
    if coupling is None or x.dim() != 3 or 2 * max(coupling, 1) + 1 >= x.shape[1]:
        tangents = torch.eye(V, dtype=x.dtype)[:, None, :].expand(V, N, V).reshape(V, *x.shape)
        blocks = _batched_hessian(local, x, tangents).reshape(V, N, V).permute(1, 2, 0)  # B_i[:, k]
    else:
        band = max(coupling, 1)
        colors, (T, m) = 2 * band + 1, x.shape[1:]
        steps = torch.arange(T)
        tangents = x.new_zeros(colors, m, N, T, m)
        for k in range(m):
            tangents[steps % colors, k, :, steps, k] = 1.0
        products = _batched_hessian(local, x, tangents.reshape(colors * m, *x.shape)).reshape(colors, m, N, T, m)
        j, j2 = torch.nonzero((steps[:, None] - steps[None, :]).abs() <= band, as_tuple=True)
        blocks = x.new_zeros(N, T, m, T, m)
        blocks[:, j, :, j2, :] = products[j2 % colors, :, :, j, :].permute(0, 2, 3, 1)  # B_i[(j, l), (j2, k)]
        blocks = blocks.reshape(N, V, V)
    if closed is not None:
        jacobian = objective.position_jacobian  # (M D, V)
        scale = objective.h / N  # as in ``Objective.obstacle``
        blocks = blocks + scale * torch.einsum("av,nab,bw->nvw", jacobian, closed, jacobian)
    return 0.5 * (blocks + blocks.transpose(1, 2))


def hessian(objective: Objective | ReducedObjective, x: torch.Tensor) -> torch.Tensor:
    """Dense Hessian of eq. (50) in the variables (n x n, n = N V); in closed form for the terminal
    states of a ``ReducedObjective``; otherwise J^T H_NE J (``nonlocal_parts``) plus, when the problem
    is separable, the particles' own blocks (``separable_parts``), else the coupled terms' Hessian
    (``coupled_hessian``)."""
    if isinstance(objective, ReducedObjective):
        return objective.hessian(x)
    n = x.numel()
    J, H_ne = nonlocal_parts(objective, x)
    H = torch.einsum("dv,idke,ew->ivkw", J, H_ne, J)
    if objective.problem.separable:
        add_to_diagonal_blocks(H, own_hessians(objective, x))
    else:
        H += coupled_hessian(objective, x)
    H = H.reshape(n, n)
    return 0.5 * (H + H.T)  # the einsum's off-diagonal blocks are symmetric only to rounding


def coupled_hessian(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """(N, V, N, V): the Hessian of every term of eq. (50) but the nonlocal one when interactions or a
    mean-field drift couple the particles.

    The terms that cost O(N M) to evaluate (control energy with its drift, potentials, obstacles,
    interactions without a closed-form Hessian, e.g. quadratic) come from n batched Hessian-vector
    products; each Gaussian interaction at each time point t in closed form, h P_t^T H_W(y_t) P_t, P_t
    the rows of ``Objective.position_jacobian`` for time t. With all terms batched n-fold through
    automatic differentiation, the pair sums took 1.5-6.7 s per Hessian at n = 600 (120 particles in
    1-D, M = 6, with a quadratic aggregation, and a Gaussian interaction too; the first reached 14
    Newton iterations in its 20 s limit), 0.03-0.05 s so."""
    p = objective.problem
    n, N = x.numel(), x.shape[0]
    V = n // N
    closed = [W for W in p.interactions if W.hessian is not None]
    others = [W for W in p.interactions if W.hessian is None]

    def cheap(v: torch.Tensor) -> torch.Tensor:
        pos = objective.positions(v)
        total = objective.kinetic(pos, v) + objective.potential_field(pos) + objective.obstacle(pos)
        for W in others:
            total = total + W.mean_field(pos) * objective.h
        return total

    eye = torch.eye(n, dtype=x.dtype).reshape(n, *x.shape)
    H = _batched_hessian(cheap, x, eye).reshape(N, V, N, V)
    if closed:
        pos = objective.positions(x.detach()).detach()
        jacobian = objective.position_jacobian.reshape(pos.shape[1], pos.shape[2], V)  # (M, d, V)
        for W in closed:
            for t in range(1, pos.shape[1]):  # the source (t = 0) is fixed
                P = jacobian[t, : W.dim]
                H += objective.h * torch.einsum("av,iakb,bw->ivkw", P, W.hessian(pos[:, t]), P)
    return H


def trajectory_parts(objective: Objective) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """x (N x V) -> ``separable_parts`` at x: the structure ``trust_region`` solves with in full
    trajectories."""
    shape = objective.variable_shape
    return lambda x: separable_parts(objective, x.reshape(shape))


#: How many times ``newton`` hands a stalled solve to L-BFGS and takes it back (each round gains more
#: than ``NEWTON_STALL_RTOL`` |E| and ``plateau`` |E|, or the solve ends).
NEWTON_PROBES = 10


@OPTIMIZERS.register(name="newton")
def newton(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec, phase: str = "newton",
           iterations: int = 0, evaluations: int = 0) -> Iterator[Step]:
    """Saddle-free Newton's method with a structured Hessian (small problems, to the last digits).

    d = -|H|^{-1} g, with |H| the Hessian with its eigenvalues replaced by their
    absolute values (floored at 1e-12 of the largest), so every step descends and negative curvature
    (crossing particles, the concave inside of an obstacle penalty) pushes away from saddles. Steps are
    capped per particle (``max_move``) and backtracked (Armijo). Near a minimum this is Newton's method,
    converging quadratically: the minimizer to the last digits float64 can resolve.

    Converged when the per-particle gradient is below ``gtol`` or a step was taken and the Newton
    decrement g.|H|^{-1}g falls to the rounding level of the objective. Where the objective is not
    twice differentiable (an obstacle's edge, the piecewise control cost's |u| = 1, or its u = 0, where
    the curvature of |u| is unbounded: eigenvalues up to 1e301 made the decrement 0 at a gradient of
    270) the model does not see the kink and the steps backtrack to nothing: when no step is accepted,
    or the relative decrease over 10 steps is below ``rtol`` and ``NEWTON_STALL_RTOL``, L-BFGS goes on
    from there (``phase``/lbfgs, stopped by its rules or by the plateau rule over its window of
    10 iterations). If it converged and gained at most ``NEWTON_STALL_RTOL`` |E| (or ``plateau`` |E|),
    the point is a minimum at a kink (converged: the piecewise cost's particles at |u| = 1); otherwise
    Newton resumes from where L-BFGS ended, up to ``NEWTON_PROBES`` times (then stalled). Without the
    plateau L-BFGS crawled along such kinks (20 accelerated particles under the piecewise cost: 7.6 ->
    19.5 s, 9e-6 lower; with it 3.6 s, 2e-7 lower; with a window of 100, 5.3 s). Before, that stop read
    "converged" at once: from the paper's start through a disc, one particle on the edge held every
    other (steps of 1e-7) and the solve ended at gradient norms 56-143, objectives 824-5,916, where
    L-BFGS from there went on to 66-161 and 63."""
    x = x0.detach().clone()
    for probe in range(NEWTON_PROBES + 1):
        last = yield from _until_slow(_saddle_free(objective, x, spec, phase, iterations, evaluations))
        if last.status != "stalled" or probe == NEWTON_PROBES:
            yield last
            return
        # the plateau rule over L-BFGS's own window ("plateau": 0 asks for its rtol rule alone: the crawl)
        went_on = yield from _until_slow(lbfgs(objective, last.variables, spec, phase + "/lbfgs",
                                               last.iterations, last.evaluations, plateau=spec.plateau))
        if went_on.status == "diverged":
            yield went_on
            return
        f = last.energies["objective"]
        if went_on.status == "converged" and f - went_on.energies["objective"] <= max(NEWTON_STALL_RTOL,
                                                                                      spec.plateau) * abs(f):
            yield went_on
            return
        x, iterations, evaluations = went_on.variables, went_on.iterations, went_on.evaluations


def _saddle_free(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec, phase: str,
                 iterations: int, evaluations: int) -> Iterator[Step]:
    """The steps of ``newton`` until it converges, diverges or stalls (its last step says which)."""
    cap = max_move(objective)
    x = x0.detach().clone()
    energies, g = objective.value_and_grad(x)
    evaluations += 1
    recent = [energies["objective"]]
    it = escapes = 0
    while True:
        it += 1
        lam, Q = torch.linalg.eigh(hessian(objective, x))
        evaluations += 1
        curved_down = float(lam[0]) < 0
        lam = lam.abs().clamp_min(1e-12 * float(lam.abs().max()))
        coef = (Q.T @ g.reshape(-1)) / lam
        d = -(Q @ coef).reshape(x.shape)
        decrement = float((coef * coef * lam).sum())  # g.|H|^{-1} g
        d = _capped(d, cap)
        f = energies["objective"]
        found = _armijo(objective, x, d, f, float((g * d).sum()))
        evaluations += 30 if found is None else found[3]
        accepted = found is not None  # a step that rounds to nothing is none (``_armijo``)
        step = float((found[0] - x).flatten(1).norm(dim=1).max()) if accepted else 0.0
        status = None
        if accepted:
            x, energies, g = found[:3]
        gnorm = per_particle_grad_norm(g)
        recent.append(energies["objective"])
        stalled = len(recent) > 10 and recent.pop(0) - recent[-1] <= max(spec.rtol, NEWTON_STALL_RTOL) * abs(f)
        if not math.isfinite(energies["objective"]):
            status = "diverged"
        elif gnorm <= spec.gtol or (accepted and decrement <= 1e-15 * max(abs(f), 1.0)):
            status = "converged"
            # a stationary point where the Hessian curved down (before the step) may be a saddle: with g = 0
            # exactly (particles started at one point, a symmetric manifold) |H|^{-1} g moves nothing
            away = None
            if curved_down and escapes < SADDLE_ESCAPES:
                here = energies["objective"]
                away = away_from_saddle(objective, x, g, here, cap, max(spec.rtol, NEWTON_STALL_RTOL) * abs(here))
            if away is not None:
                step = float((away[0] - x).flatten(1).norm(dim=1).max())
                x, energies, g = away[:3]
                gnorm, evaluations, escapes = per_particle_grad_norm(g), evaluations + away[3], escapes + 1
                status = None
                recent = [energies["objective"]]
        elif not accepted or stalled:
            status = "stalled"
        yield Step(x, energies, gnorm, step, iterations + it, evaluations, phase, status=status)
        if status:
            return


# ------------------------------------------------------------------------------------------ robust
#: Relative decrease (over 10 iterations) below which the robust method hands over from L-BFGS to
#: Newton's method: L-BFGS crosses the nonconvex landscape well, Newton finishes in a few steps.
HANDOVER_RTOL = 1e-7
#: In the terminal states, L-BFGS hands over to trust-region Newton sooner: its iterations cost one
#: gradient, Newton's a Hessian, and far from a minimum the landscape's roughness (section 4.7) makes
#: Newton's model good only over short steps, so L-BFGS covers the distance, Newton the last digits.
REDUCED_HANDOVER_RTOL = 1e-5
#: The OT start pulled back (``SHORT``) is tried after the OT start, as a check, when the work has at most
#: this many variables (each start then takes a fraction of a second).
CHECK_VARS = 200
#: The check start may take as many iterations as the OT start took, and at least this many, while it
#: trails the best objective of the solves that ended; then it is abandoned. A budget in iterations,
#: not seconds, keeps a run a function of its problem. A check that has led runs to its own end: the
#: run returns its best iterate, which must be a finished solve's (the mixture-with-obstacles preset's
#: check led on the continuation's wide band and was cut before narrowing: an unfinished iterate,
#: 5.5555540, reported "converged"; run to its end, 5.5528393 converged, 8-9.5 s against 7-8 s).
CHECK_MIN_ITERATIONS = 60
#: Obstacle problems are solved on the penalty (59) with its kink at the edge smoothed over this fraction
#: of the smallest obstacle's peak penalty, its inradius squared (``hinge``, ``Obstacles.smoothing``):
#: L-BFGS crawls along a kink for minutes and converges on the smoothed penalty in seconds. Reported
#: energies are the exact ones; the smoothing changes the penalty by at most c_Omega tau / 2 per point and
#: lets a point rest at most tau / (2 rho) <= 1.25e-4 rho_min inside an obstacle (rho_min: the smallest
#: inradius; a disc's is its radius). Structured Newton reaches this band by continuation from bands up
#: to 300 times wider (``SMOOTHING_CONTINUATION``); with the final band ten times wider (2.5e-3, the two
#: narrowest stages left out) its minimizers lay above the exact penalty's: over the 23 obstacle scenes
#: 22 now end lower by 4e-6 to 1.5e-3 (relative; one 1.5e-5 higher), every point 10 times nearer the edge
#: (Fig. 4 16.0968964 -> 16.0967023, deepest 5.6e-5 -> 5.6e-6), in 8-12 % more time over all (3.5 -> 3.9 s).
OBSTACLE_SMOOTHING = 2.5e-4
#: L-BFGS's solves of obstacle problems structured Newton does not take (interacting particles, beyond its
#: size) have no continuation, and stop on the wider band: on 2.5e-4 20 particles past discs with a
#: Gaussian interaction took 12.7 -> 14.3 s and ended 7e-5 higher.
LBFGS_OBSTACLE_SMOOTHING = 2.5e-3
#: ``_structured_newton``'s continuation: the obstacle penalty's smoothing, as multiples of the final one;
#: the phase label of its narrowing stages.
SMOOTHING_CONTINUATION, NARROWING = (300.0, 100.0, 30.0, 10.0, 3.0, 1.0), "narrower"
#: On the wide band the rounds of reassignment and local solve end once one gains less than this
#: fraction of the objective (elsewhere the plateau, 0 on small problems: rounds while any gain): the
#: narrower bands follow anyway. Small scenes went round after round for ~2e-5 each, every reassignment's
#: shifted paths cutting into the obstacle and costing a whole local solve to undo (the default scene
#: with a disc placed on its paths, warm start: 3 more rounds; 3.4 -> 2.3 s, with whole-path avoidance
#: 2.4 -> 1.8 s, and cold 2.4 -> 1.9 s; objectives equal or 6e-8 relative lower; Fig. 4, the three-disc
#: scenes, the gap and mixture presets: equal objectives, equal times).
WIDE_ROUND_GAIN = 1e-4
#: The check start: the OT start's terminal states pulled back this much toward the sources.
SHORT = 0.05
#: The problem's own start (the paper's straight lines to the target's centre, eqs. 56-57, or the file's
#: trajectories) is a check after the others, on problems whose start is reported at once (``EXACT_PAIRS``),
#: when the best solve so far ended short of the target: its particles fell short of the OT start's
#: travel by more than this fraction (``ended_short``). Then the target-anchored starts have no claim
#: to be near the minimum, and the own start found lower ones: eps = 0.3, a linear system with 3
#: particles 0.6641 -> 0.4494, 250 particles past a disc 1.8744 -> 1.8295, 50 interacting ones under a
#: rotation 1.9347 -> 1.8905 (shortfalls 0.32, 0.31, 0.16). Every preset and scene of ``assets/`` falls
#: short by at most 0.056 (Fig. 3's continuum, whose particles leave the quasi-random points for a blob
#: arrangement), where the check would only cost time (run regardless on the presets, the playful
#: scenes and 300 / 1,000 samples: 5-190 % more, no objective lower). The distance to the nearest OT
#: point instead also counted such rearrangements: 7 particles onto a Gaussian with delta = 0.1 ran
#: the check for nothing.
OWN_CHECK_SHORT = 0.1
#: The check start is also dropped when it trails the best objective found by more than this many
#: times its recent progress per iteration (the mean over its last ``CHECK_WINDOW`` iterations).
CHECK_PATIENCE, CHECK_WINDOW = 50.0, 3
#: Resumed reassignment rounds that trail the best finished solve are dropped once the gap exceeds this
#: many times what their last round gained: rounds' gains mostly shrink by half or more from one to the
#: next, so all further rounds together gain about as much as the last one. Judged per iteration they
#: were dropped in their first round (Newton's last steps in a round gain nothing, the next reassignment
#: jumps), and an annulus at N = 200 ended 1e-5 higher. A Gaussian at N = 1,000 gains 6e-4, then 5e-5,
#: against a gap of 1.9e-3 and is dropped; 5 instead of 2 changed no objective over the 36 scenes of the
#: robust method's docstring and cost the Gaussian 2 s. One draw there gained 3.6e-6 in a round and
#: 5.4e-5 in the next (in its Newton solve, not by the reassignment): no multiple short of 12 keeps it.
ROUND_PATIENCE = 2.0
#: Before a blob start the OT start pauses after this many rounds (its first local solve and one
#: reassignment round), and the blob check is judged by where they got. Paused after its first local
#: solve alone, the OT start's objective was so far above its end that blob checks led it and ran to
#: their own ends where the OT start then won (swarm_500: 6.3 -> 9.3 s; now 6.2 s).
PAUSE_ROUNDS = 2


def _local(objective: Objective, x: torch.Tensor, spec: OptimizerSpec, phase: str, iterations: int,
           evaluations: int, rough: bool = True) -> Iterator[Step]:
    """A local solve. In the terminal states (``ReducedObjective``): trust-region Newton, after L-BFGS
    when the start is ``rough`` (far from a minimum of the nonlocal energy); from a rough start beyond
    ``GLASSY_MIN_VARS`` unknowns, L-BFGS alone to its plateau (``glassy``). In full trajectories:
    L-BFGS until it slows down, then Newton: saddle-free Newton for small problems with a twice
    differentiable objective; for obstacle problems, and larger ones with a twice differentiable control
    cost, whose terms other than the nonlocal one are sums over particles, trust-region Newton on the
    structured system (``_structured``, ``_structured_newton``); otherwise L-BFGS, stopped by the
    plateau rule over ``GLASSY_WINDOW`` iterations at any size, as every other solve of a glassy
    landscape (``"plateau": 0`` asks for ``rtol`` over 10 iterations instead): interacting particles,
    a mean-field drift, obstacle problems beyond structured Newton's size. Without the plateau these
    L-BFGS solves crawled, often to the time limit, and the reassignment rounds after a local solve came
    late or never. With obstacles (beyond structured Newton's size, or with interacting particles),
    uniform sources to 700 / 1,000 / 2,000 samples of a Gaussian past one disc (eps 0.01, M 5) were
    still going at their 60 / 90 / 60 s limits (2.5258063 / 2.6353694 / 2.6485430), and converge so in
    21 / 27 / 42 s at 2.5258207 / 2.6353424 / 2.6485245 (+5.7e-6 / -1.0e-5 / -7.0e-6 relative: the
    crawl's last digits against the reassignment rounds' gain); with a Gaussian interaction too
    (strength 0.1, width 0.1), 100 / 300 samples 28.7 s / at the 60 s limit (2.4437148 / 2.4326780)
    before, 12.3 / 36.9 s now (2.4437250 / 2.4325155). Without obstacles: 700 samples past a Gaussian
    bump (height 1, width 0.15) 57.9 -> 12.1 s (2.5003886 -> 2.5004153, +1.1e-5); 600 / 1,000 samples
    with that interaction, from their 60 s limits (2.4039087 / 2.5141681) to 16.8 / 26.5 s
    (2.4038923 / 2.5141592). A window of 300 iterations ended lower
    (N = 700 2.5257425 in 64 s, N = 1,000 2.6353150 in 39 s: 1-3e-5) at 1.5-3 times the time; 100 is
    the window of L-BFGS's plateau in the terminal states (``glassy``). Below 1,000 terminal unknowns
    these solves used to go to rtol, and crawled there too: 24 problems of 100-400 uniform
    sources solved this way (Gaussian interactions with Gaussian or sample targets, a quadratic
    aggregation, mean-field drifts; M 5 and 10; three draws each; with six that go elsewhere, 490 s in
    all to rtol, 131 s by the plateau) are 1.5-8.6 times faster each (300 interacting particles with a
    Gaussian target, two draws: from the 60 s limit to converged in 14 / 27 s), ending -7.6e-6 ..
    +1.2e-5 relative to the crawl, one drift to a Gaussian +6.1e-5 (2.9769595 -> 2.9771426, 33 -> 8 s):
    the spread between the landscape's local minima. (Small obstacle problems sent this way by lowering
    structured Newton's size ended 1e-5 - 3.3e-5 above the crawl in a third to a half of its
    iterations.)"""
    reduced = isinstance(objective, ReducedObjective)
    p = objective.problem
    if reduced and not rough:
        yield from trust_region(objective, x, spec, p.delta, phase + "/newton", iterations, evaluations)
        return
    if glassy(objective, rough):
        yield from lbfgs(objective, x, spec, phase, iterations, evaluations, precondition=lambda q: q,
                         window=GLASSY_WINDOW, plateau=plateau_tolerance(objective, spec))
        return
    if _structured(objective):
        yield from _structured_newton(objective, x, spec, phase, iterations, evaluations)
        return
    if not reduced and (x.numel() > NEWTON_MAX_VARS or not p.smooth):
        # the plateau of every glassy solve, at any size ("plateau": 0 asks for L-BFGS's own rule)
        rule = {"window": GLASSY_WINDOW, "plateau": spec.plateau} if spec.plateau else {}
        yield from lbfgs(objective, x, spec, phase, iterations, evaluations, **rule)
        return
    coarse = dataclasses.replace(spec, rtol=max(spec.rtol, REDUCED_HANDOVER_RTOL if reduced else HANDOVER_RTOL))
    last = yield from _until_slow(lbfgs(objective, x, coarse, phase, iterations, evaluations,
                                        precondition=(lambda q: q) if reduced else None, saddles=False))
    if last.status == "diverged":
        yield last
    elif reduced:
        yield from trust_region(objective, last.variables, spec, p.delta, phase + "/newton", last.iterations,
                                last.evaluations)
    else:
        yield from newton(objective, last.variables, spec, phase + "/newton", last.iterations, last.evaluations)


#: An OT start onto the target's own points (or grid cells) sits at the nonlocal energy's minimum,
#: where Newton's quadratic model of it holds over moves well below delta (the kernel saturates beyond).
#: Such a start counts as rough (``beyond_reach``) when the model's minimizer along the steepest-descent
#: direction would already move a particle farther than this fraction of delta: the penalty is weak
#: (large eps) and the minimum lies far back toward the sources, beyond the model's reach. Newton then
#: crawled with every step cut by its shift or the cap: samples in 2-D (uniform sources, Gaussian
#: samples, seeds 1-2), eps = 1: N = 500 1.0925-1.1285 in 46-50 s, N = 1,000 1.90 at the 60 s limit,
#: against L-BFGS first 1.0272-1.0496 in 4-9 s and 1.0711-1.0871 in 14-27 s. The quantity grows
#: linearly with eps: 0.004-0.007 at eps = 0.01, 0.04-0.07 at eps = 0.1 (those starts keep Newton),
#: 0.13 at eps = 0.3 and N = 1,000, 0.4-0.7 at eps = 1.
REACH = 0.1


def beyond_reach(objective: ReducedObjective, x: torch.Tensor) -> bool:
    """Whether the quadratic model's minimizer along -g from ``x``, x - t g with t = g.g / g.H g (the
    Hessian-vector product of ``ReducedObjective.curvature``), moves some particle farther than
    ``REACH`` delta (or the curvature along -g is not positive)."""
    _, g = objective.value_and_grad(x)
    curvature = float((g * objective.curvature(x)(g)).sum())
    if not curvature > 0:
        return True
    t = float((g * g).sum()) / curvature
    return t * float(g.norm(dim=1).max()) > REACH * objective.problem.delta


def glassy(objective: Objective | ReducedObjective, rough: bool) -> bool:
    """Whether the local solves of ``objective`` from a ``rough`` start are L-BFGS alone with periodic
    reassignments (``GLASSY_WINDOW``): in the terminal states, more than ``GLASSY_MIN_VARS`` unknowns."""
    p = objective.problem
    return rough and isinstance(objective, ReducedObjective) and p.N * p.dynamics.state_dim > GLASSY_MIN_VARS


def _until_slow(steps: Generator[Step, None, Step | None] | Iterator[Step],
                keep_best: bool = False) -> Generator[Step, None, Step]:
    """The steps of a preliminary solve, passed on with their status cleared (the solve goes on);
    returns the last one (or, with ``keep_best``, what the generator returns) with its status
    ("diverged" ends the solve)."""
    last = None
    try:
        while True:
            last = next(steps)
            yield dataclasses.replace(last, status=None)
    except StopIteration as stop:
        return stop.value if keep_best and stop.value is not None else last


def _structured_newton(objective: Objective, x: torch.Tensor, spec: OptimizerSpec, phase: str,
                       iterations: int, evaluations: int) -> Iterator[Step]:
    """L-BFGS until it slows down, then trust-region Newton in full trajectories on the structure of a
    separable problem's Hessian (``separable_parts``, factored as ``trust_region.TrajectorySystem``)."""
    coarse = dataclasses.replace(spec, rtol=max(spec.rtol, REDUCED_HANDOVER_RTOL))
    last = yield from _until_slow(lbfgs(objective, x, coarse, phase, iterations, evaluations, saddles=False))
    if last.status == "diverged":
        yield last
        return
    yield from trust_region(objective, last.variables, spec, max_move(objective), phase + "/newton",
                            last.iterations, last.evaluations, parts=trajectory_parts(objective))


def reassign(objective: Objective | ReducedObjective, variables: torch.Tensor, frames: int = 1,
             exact_pairs: int | None = None) -> torch.Tensor | None:
    """Re-route particles so the assignment of sources to the current terminal states is an exact OT
    assignment (repaired from the current one, ``augmenting``) for the cost of steering each particle
    to each state (squared distances in ``steering_coordinates``); beyond ``exact_pairs`` pairs (default
    ``REASSIGN_EXACT_PAIRS``), one exact within groups of nearby particles, cut in ``frames`` rotated
    frames (``improved_permutation``: its cost can only fall). Returns new variables, or None if the
    current assignment is already optimal (within every group).

    Particle i is sent to terminal state s(i) along the minimum-energy path (``paths_to``; in the
    terminal states alone the new variables are just the permuted states); with state costs it takes
    the path of particle s(i) shifted by (1 - t)(y_i,0 - y_s(i),0) instead, which starts at its own
    source and keeps any detour (e.g. around an obstacle); with whole-path avoidance, bent around an
    obstacle where the shift cut into one (``kept_out``)."""
    p = objective.problem
    full = objective.full if isinstance(objective, ReducedObjective) else objective
    pos = objective.positions(variables).detach()
    terminal = p.dynamics.terminal(pos, full.h).numpy()
    sources, L = steering_coordinates(full)
    states = terminal @ L
    exact_pairs = REASSIGN_EXACT_PAIRS if exact_pairs is None else exact_pairs
    perm = improved_permutation(sources, states, p.N if p.N * p.N <= exact_pairs else LEAF_PARTICLES,
                                workers=torch.get_num_threads(), frames=frames)
    if ((sources - states[perm]) ** 2).sum() >= ((sources - states) ** 2).sum() * (1 - 1e-12):
        return None
    if isinstance(objective, ReducedObjective):
        return torch.as_tensor(terminal[perm], dtype=torch.float64)
    if not p.has_state_cost:
        return paths_to(objective, terminal[perm])
    perm_t = torch.as_tensor(perm)
    t = torch.linspace(0.0, 1.0, p.M, dtype=pos.dtype)[None, :, None]
    shift = (objective.source - objective.source[perm_t])[:, None, : pos.shape[2]]
    x = objective.variables_from_positions(pos[perm_t] + (1.0 - t) * shift)
    # with whole-path avoidance a shifted path cutting an obstacle is bent around it; at the time points
    # alone the penalty pushes the shifted points out (Fig. 4: bending them ended at 16.0981, not 16.0969)
    return kept_out(objective, x) if p.obstacles is not None and p.obstacles.segments else x


def kept_out(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """``x``, with its paths bent around the obstacles (``around_obstacles``, terminal states kept) when
    one reaches deeper than ``DETOUR_MARGIN`` times the smallest obstacle inside one (not for the slight
    depths the smoothed penalty allows): a shifted path of a reassignment, or an obstacle moved onto
    the paths, can cut through an obstacle, and where discs overlap the penalty alone cannot push a
    path out (their gradients cancel at the seam)."""
    p = objective.problem
    if p.obstacles is None or p.dynamics.dim < 2:
        return x
    pos = objective.positions(x).detach().numpy()
    depth = p.obstacles.path_depth(pos) if p.obstacles.segments else p.obstacles.depth(pos).max()
    if depth > DETOUR_MARGIN * min(shape.size for shape in p.obstacles.shapes):
        return around_obstacles(objective, x)
    return x


def _polished(objective: Objective | ReducedObjective, x: torch.Tensor, spec: OptimizerSpec, label: str,
              counters: list[int], rough: bool = True) -> Iterator[Step]:
    """A local solve, then reassign-and-resume while that lowers the objective. The last step of each
    local solve carries its status ("converged", "stalled", "diverged", ...).

    Obstacle problems solved by structured Newton go by continuation in the smoothing of the penalty's
    kink: the rounds run on ``SMOOTHING_CONTINUATION[0]`` times the objective's smoothing (to a loose
    tolerance), then the best of them is carried through the narrower bands down to the objective's
    own. Newton's model of the smoothed penalty holds over steps about as long as the band, so with the
    final, narrow band alone it crawls (hundreds of short steps while contacts come and go); a wide
    band first, then narrower ones from its minimizer, take a few dozen steps each. On the wide band
    the rounds end once one gains less than ``WIDE_ROUND_GAIN``."""
    if not _continued(objective):
        yield from _rounds(objective, x, spec, label, counters, rough)
        return
    tau = objective.obstacle_smoothing
    loose = dataclasses.replace(spec, rtol=max(spec.rtol, HANDOVER_RTOL))
    wide = dataclasses.replace(objective, obstacle_smoothing=tau * SMOOTHING_CONTINUATION[0])
    best = yield from _until_slow(_rounds(wide, x, loose, label, counters, rough, WIDE_ROUND_GAIN), keep_best=True)
    for k, factor in enumerate(SMOOTHING_CONTINUATION[1:]):
        if best.status == "diverged":
            yield best
            return
        final = k == len(SMOOTHING_CONTINUATION) - 2
        stage = objective if final else dataclasses.replace(objective, obstacle_smoothing=tau * factor)
        solve = trust_region(stage, best.variables, spec if final else loose, max_move(objective),
                             f"{label}/{NARROWING}", counters[0], counters[1], parts=trajectory_parts(stage))
        best = yield from (_passed_on(solve) if final else _until_slow(solve))
        counters[0], counters[1] = best.iterations, best.evaluations


@dataclasses.dataclass(frozen=True)
class Paused:
    """``_rounds`` stopped before a round (``pause``): that round's start, the best round's last step
    and how many rounds ran; ``_rounds(..., resume=paused)`` goes on as if never stopped."""

    x: torch.Tensor
    best: Step
    rounds: int
    released: bool = False  # whether x is a release's


def round_phase(label: str, rounds: int, released: bool = False) -> str:
    """The phase label of ``_rounds``' round ``rounds`` of a start ``label``: "label", "label/reassign k",
    or "label/release k" for a round that begins from releases."""
    return label + (f"/{'release' if released else 'reassign'} {rounds}" if rounds else "")


def round_of(phase: str) -> int:
    """Which round a step's phase label names (``round_phase``'s inverse; a local solve may append its own
    phase, e.g. "/newton")."""
    found = re.search(r"/(?:reassign|release) (\d+)", phase)
    return int(found.group(1)) if found else 0


def _rounds(objective: Objective | ReducedObjective, x: torch.Tensor | None, spec: OptimizerSpec, label: str,
            counters: list[int], rough: bool, least_gain: float = 0.0, pause: int = 0,
            resume: Paused | None = None) -> Generator[Step, None, Step | Paused]:
    """``_polished``'s rounds of local solve and reassignment on one objective; returns the last step of
    the best round. Reassignments end when one no longer lowers the objective, or (where the
    plateau rule applies, ``trust_region.plateau_tolerance``) when a whole round gained at most the
    plateau, or ``least_gain``, of the objective: at N = 3,000 samples every reassignment still found a
    little (32 rounds of ~3e-6 each in 120 s). In the terminal states the (reassigned) states are
    offered to releases after every round (``moved_on``), also after the round that ended the
    reassignments; a round that begins from releases is solved as from a rough start. The rounds end
    when neither is left or a round does not lower the objective. With
    ``pause`` k > 0, returns ``Paused`` where round k + 1 would begin; ``resume`` (``x`` unused) begins
    it."""
    best: Step | None = None if resume is None else resume.best
    rounds = 0 if resume is None else resume.rounds
    x = x if resume is None else resume.x
    leap = resume is not None and resume.released  # whether x is a release's (far from the last solve's end)
    while x is not None:
        if pause and rounds == pause:
            return Paused(x, best, rounds, leap)
        steps = _local(objective, x, spec, phase=round_phase(label, rounds, leap),
                       iterations=counters[0], evaluations=counters[1],
                       rough=(rough and (rounds == 0 or glassy(objective, rough))) or leap)
        last, moved = yield from _until_reassigned(objective, steps, periodic=rough,
                                                   weighed=not rough and plateau_tolerance(objective, spec) > 0)
        counters[0], counters[1] = last.iterations, last.evaluations
        if last.status == "diverged":
            return last
        if moved is not None:  # interrupted by a reassignment or a release (they lower the objective): go on
            if best is None or last.energies["objective"] < best.energies["objective"]:
                best = last
            x, leap = moved
        else:
            f = last.energies["objective"]
            if best is not None and f >= best.energies["objective"]:
                return best
            # a round (a reassignment or a release, and its local solve) that gained less than the plateau
            # ends the reassignments; a release may still follow
            little = best is not None and best.energies["objective"] - f <= max(least_gain, plateau_tolerance(objective, spec)) * abs(f)
            best = last
            x, leap = moved_on(objective, last.variables, reassigning=not little, frames=REASSIGN_FRAMES)
        rounds += 1
    return best


def moved_on(objective: Objective | ReducedObjective, variables: torch.Tensor, reassigning: bool = True,
             releasing: bool = True, frames: int = 1, exact_pairs: int | None = None
             ) -> tuple[torch.Tensor | None, bool]:
    """Where the rounds go next from ``variables``, and whether that is a release
    (``release.released``): the reassignment (unless not ``reassigning``; exact up to ``exact_pairs``,
    default ``REASSIGN_EXACT_PAIRS``, beyond by groups cut in ``frames`` frames), then, in the terminal
    states (unless not ``releasing``), the greedy releases from the reassigned states; (None, False) when
    neither lowers the objective. Reassigned first, a release is priced on the cheaper routes. Releases only once no reassignment
    helped made rounds of reassignment gaining ~3e-4 each go on for a minute first (1,000 samples, eps =
    0.3: 62 rounds, 1.9465 -> 1.9045 in 58 s, then the releases 1.9045 -> 1.7214 at once). Not in the
    glassy L-BFGS solves' periodic checks (``releasing`` off there): released from an unfinished L-BFGS
    iterate, particles stranded (continuum Gaussian, N = 10,000: 2.92737, not 2.91125)."""
    moved = reassign(objective, variables, frames, exact_pairs) if reassigning else None
    freed = (released(objective, variables if moved is None else moved)
             if releasing and isinstance(objective, ReducedObjective) else None)
    if freed is not None:
        return freed, True
    return moved, False


def _until_reassigned(objective: Objective | ReducedObjective, steps: Iterator[Step], periodic: bool,
                      weighed: bool = False) -> Generator[Step, None, tuple[Step, tuple[torch.Tensor, bool] | None]]:
    """The steps of a local solve; returns its last step and None. With ``periodic``, in the terminal
    states, the solve is interrupted when a reassignment helps: in ``glassy`` solves every
    ``GLASSY_REASSIGN_EVERY`` iterations; otherwise, up to ``EXACT_PAIRS`` pairs, in the Newton phase,
    at its first iteration and every ``REASSIGN_EVERY``, when a reassignment or a release helps. With
    ``weighed`` instead (a start near the final states), up to N^2 = ``REASSIGN_EXACT_PAIRS`` (exact
    checks), after ``REASSIGN_EVERY`` Newton iterations and then ``CHECK_INTERVAL_GROWTH`` times longer
    intervals, when the check gains more than the solve did since the last one. Then returns the last
    step and where to go on (``moved_on``: the states, and whether released)."""
    p = objective.problem
    reduced = isinstance(objective, ReducedObjective)
    lbfgs_only = glassy(objective, periodic)
    weighed = weighed and reduced and not periodic and p.N * p.N <= REASSIGN_EXACT_PAIRS
    periodic = weighed or (periodic and reduced and (lbfgs_only or p.N * p.N <= EXACT_PAIRS))
    every = GLASSY_REASSIGN_EVERY if lbfgs_only else REASSIGN_EVERY
    # L-BFGS's start is itself an OT assignment; so is a weighed solve's (checked after an interval)
    since = 0 if lbfgs_only or weighed else REASSIGN_EVERY - 1
    last, checked = None, None  # checked: the objective at the last check (or the start; weighed solves)
    try:
        for last in steps:
            yield last
            checked = last.energies["objective"] if checked is None else checked
            if not periodic or last.status is not None or not (lbfgs_only or last.phase.endswith("/newton")):
                continue
            since += 1
            if since < every:
                continue
            since = 0
            moved = moved_on(objective, last.variables, releasing=not lbfgs_only,
                             exact_pairs=REASSIGN_EXACT_PAIRS if weighed else PERIODIC_EXACT_PAIRS)
            if weighed:
                f = last.energies["objective"]
                if moved[0] is not None and f - float(objective(moved[0])) > checked - f:  # the value alone
                    return last, moved
                checked, every = f, every * CHECK_INTERVAL_GROWTH
            elif moved[0] is not None:
                return last, moved
    finally:
        steps.close()
    return last, None


def _continued(objective: Objective | ReducedObjective) -> bool:
    """Whether ``_polished`` solves ``objective`` by continuation in the obstacle penalty's smoothing
    (structured Newton on a smoothed penalty), not by plain ``_rounds``."""
    return getattr(objective, "obstacle_smoothing", 0.0) > 0 and _structured(objective)


def _structured(objective: Objective | ReducedObjective) -> bool:
    """Whether ``_local`` solves ``objective`` by structured trust-region Newton: problems in full
    trajectories whose terms other than the nonlocal one are summed over particles, with at most
    ``STRUCTURED_VARS`` terminal unknowns and a system within ``STRUCTURED_MEMORY`` (N V x V blocks: at
    M = 400 the default scene with a disc held 5.6 GB), and either obstacles or (beyond ``NEWTON_MAX_VARS``
    variables, where saddle-free Newton's dense Hessian is not used) a twice differentiable control cost.
    With obstacles L-BFGS crawls along the penalty's edge (the obstacle benchmark's three-disc scene:
    10,000 iterations, still going at its 60 s limit with whole-path avoidance, 53 s to max_iter
    without; about 8 and 6 s converged this way; Fig. 4: 16.0968898 in 8.2 s, 16.0968843 in 5.2 s).
    Without them (potentials; acceleration or linear dynamics under |u|^p, p > 2) L-BFGS alone ran
    thousands of iterations: 500 samples past a potential bump 35 s (7,392 iterations), 8.8 s so."""
    if isinstance(objective, ReducedObjective):
        return False
    p = objective.problem
    if not structured_system_bytes(p):
        return False
    return p.obstacles is not None or (p.control_cost.smooth and math.prod(objective.variable_shape) > NEWTON_MAX_VARS)


def _passed_on(steps: Iterator[Step]) -> Generator[Step, None, Step]:
    """The steps unchanged; returns the last."""
    last = None
    for last in steps:
        yield last
    return last


def bent(make: Callable[[threading.Event], torch.Tensor], objective: Objective
         ) -> Callable[[threading.Event], torch.Tensor]:
    """``make``, then its trajectories bent around the obstacles (``around_obstacles``)."""
    return lambda cancel: around_obstacles(objective, make(cancel), cancel)


def exact_energies(objective: Objective, step: Step) -> dict[str, float]:
    """The energies of ``step`` with the obstacle penalty of eq. (59) itself, when the step was taken on a
    smoothed one (``OBSTACLE_SMOOTHING``): only the obstacle term (and the sums holding it) changes."""
    if objective.problem.obstacles is None or "obstacle" not in step.energies:
        return step.energies
    with torch.no_grad():
        exact = float(objective.obstacle(objective.positions(step.variables)))
    change = exact - step.energies["obstacle"]
    return dict(step.energies, obstacle=exact, potential=step.energies["potential"] + change,
                objective=step.energies["objective"] + change)


def ended_short(objective: Objective, x: torch.Tensor, ot: torch.Tensor) -> bool:
    """Whether the particles of ``x`` travelled, along the OT start's ``ot`` displacements d_i = Y_i^OT - x_i,
    less than ``1 - OWN_CHECK_SHORT`` of them: 1 - sum_i <Y_i - x_i, d_i> / sum_i |d_i|^2 above
    ``OWN_CHECK_SHORT`` (Y the terminal states, x the sources' states). Moves across the travel (a blob
    arrangement of a continuum target, detours around obstacles) do not count. Sources on their OT
    targets travel nothing and fall short of nothing."""
    p = objective.problem
    source = p.dynamics.source_states(p.source)
    end, end_ot = (p.dynamics.terminal(objective.positions(v.detach()), objective.h).numpy() for v in (x, ot))
    d = end_ot - source
    travel = float((d * d).sum())
    return travel > 0 and 1.0 - float(((end - source) * d).sum()) / travel > OWN_CHECK_SHORT


def reported(objective: Objective, work: Objective | ReducedObjective, step: Step) -> Step:
    """``step`` of a local solve on ``work`` as the run reports it: in full trajectories (a reduced
    iterate mapped back), with the exact eq. (59) energies, its status cleared (the caller decides), and
    ``provisional`` unless it ended its solve."""
    variables = work.full_variables(step.variables) if isinstance(work, ReducedObjective) else step.variables
    return dataclasses.replace(step, status=None, energies=exact_energies(objective, step), variables=variables,
                               provisional=step.status is None)


def unfinished_lead(work: Objective | ReducedObjective, lowest: Step | None, best_objective: float,
                    spec: OptimizerSpec) -> bool:
    """Whether the run's lowest iterate ``lowest`` (exact energies) is a provisional one that lies below
    every finished solve (``best_objective``) by more than the plateau tolerance: then the run polishes
    it (``polish``). Only on the obstacle continuation (``_continued``), where the steps on the wide band
    are taken on another objective than the reported one; elsewhere every local solve descends on the
    reported objective, and the lowest iterate is a solve's end."""
    return (_continued(work) and lowest is not None and lowest.provisional and math.isfinite(best_objective)
            and lowest.energies["objective"] < best_objective - spec.plateau * abs(best_objective))


def polish(work: Objective, lowest: Step, spec: OptimizerSpec, counters: list[int]) -> Iterator[Step]:
    """A local solve on the final smoothing of the obstacle penalty, without continuation (L-BFGS, then
    trust-region Newton: ``_structured_newton``), from the run's lowest iterate when that is a
    provisional one (``unfinished_lead``). Measured on the polygon wall of the obstacle scenes (300
    particles, a continuum target), while the smoothing was relative to the polygon's size: the blob
    start's first L-BFGS step on the continuation's wide band had the lowest exact objective of the run,
    9.86695, both continuation solves ended at 9.90679 and 9.91365, and the run returned that first step
    as "converged"; polished, 9.77255 in 839 iterations (4.7 s), where the continuation from it ended at
    9.84608 (13.6 s) and Newton alone at 9.86756. With the smoothing relative to the inradius the
    continuation ends at 9.73398 and a wide-band step of the blob check at 9.73259, polished to 9.72879."""
    yield from _structured_newton(work, lowest.variables, spec, "polish", counters[0], counters[1])


def prepared(make: Callable[[threading.Event], T], waiting: Step | None) -> Generator[Step, None, T]:
    """Compute ``make(cancel)`` (e.g. a start that needs a long blob quantization) in a worker thread
    while yielding ``waiting`` every ``HEARTBEAT`` seconds: the caller keeps reporting and can pause,
    stop or hit its time limit meanwhile. Closing the generator sets ``cancel`` and waits for the
    worker (``make`` checks it between evaluations). The worker runs in a copy of the caller's context,
    so that a kernel backend forced around the solve (``kernels.backend``) holds there too (a new
    thread starts from the defaults), and on the process's kernel threads (``threads.adopt_threads``).
    Returns ``make``'s result."""
    if waiting is None:
        return make(threading.Event())
    outcome: list[tuple[bool, object]] = []
    cancel = threading.Event()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            adopt_threads()
            outcome.append((True, context.run(make, cancel)))
        except BaseException as err:  # handed to the caller's thread below
            outcome.append((False, err))

    worker = threading.Thread(target=work, name="mfc-prepare-start", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(HEARTBEAT)
            if worker.is_alive():
                yield waiting
    finally:
        cancel.set()
        worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _working(objective: Objective) -> tuple[Objective | ReducedObjective, bool]:
    """What the local solves of ``robust`` and ``local`` minimize, and whether it is reduced: eq. (50)
    in the terminal states alone when nothing else matters (``ReducedObjective``), else in full
    trajectories, with the obstacle penalty's kink Huber-smoothed (``OBSTACLE_SMOOTHING`` where
    structured Newton solves it, else ``LBFGS_OBSTACLE_SMOOTHING``)."""
    p = objective.problem
    if reducible(p):
        return ReducedObjective(p, objective), True
    if p.obstacles is not None:
        fraction = OBSTACLE_SMOOTHING if _structured(objective) else LBFGS_OBSTACLE_SMOOTHING
        return dataclasses.replace(objective, obstacle_smoothing=p.obstacles.smoothing(fraction)), False
    return objective, False


#: ``local`` checks its carried start against ``robust``'s first start, the OT start, on small problems:
#: N max(N, K) at most this many pairs. The check has
#: ``robust``'s budget for checks (the carried start's iterations, at least ``CHECK_MIN_ITERATIONS``)
#: and, while it trails, is judged round by round (``ROUND_PATIENCE``): its releases and reassignments
#: carry its gains, and judged per iteration it was cut at its first solve's end. A change of the cost
#: or the penalty can leave the carried paths in a basin above the new problem's best: fuzzing live
#: changes (a solve, one change, ``local`` from the carried paths against ``robust`` cold) found, over
#: 30 changes of p, four ending 1.2-4.1 % above the cold solve (30 particles to 16 points, eps = 0.05,
#: p 2 -> 3: 3.8115 against 3.7358, the OT start's release rounds), 60 particles to an annulus, p 3 ->
#: 1.5, 2.6 % above, 10 particles to an annulus, p 3 -> 2, 10.6 %; with the check all three end at the
#: cold solve's objective (to 5e-5). Comparing the two starts' objectives before solving does not tell
#: (2.142 carried against 2.185 for the OT start that ends lower). The check takes about as long as the
#: carried start's solve (its budget), which at larger N stops being a fraction of a second and bought
#: nothing in the changes measured there: eps 0.01 -> 0.02 on swarm_500 (N = 500, a Gaussian target)
#: 5.1 -> 8.4 s, 200 particles to samples past a disc, p 2 -> 3, 5.8 -> 9.4 s (both longer than a fresh
#: solve, same objectives); 100 particles past a disc, p 2 -> 3, 1.9 -> 3.4 s, 100 onto an annulus, eps
#: 0.01 -> 0.003, 0.41 -> 0.58 s, the default scene (N = 49) +0.05 s. Every case it won had N <= 60.
WARM_CHECK_PAIRS = 10_000


#: A particle target of K != N equally weighted points (``empirical``: grids have none), with N K at most
#: this many pairs, also gets a check start with each particle on one point
#: (``init.rounded_terminal_states``): the OT start's barycentric projection puts a particle whose plan
#: splits it between points at their barycentre, and with delta small against their distance that lies
#: between the kernel's wells. 30 particles to 60 points, delta = 0.02 (auto: 0.186), eps = 0.05: 212.27
#: from the OT start, 127.76 with the rounded check (found by fuzzing live changes: ``local`` from the
#: solution at delta auto ended at 120.47). With delta auto nothing changed on 7 scenes of 49-300
#: particles (K = N / 2 and 2 N), the check cut by patience within 0.01-0.13 s. ``local`` checks it
#: too where it checks the OT start (``WARM_CHECK_PAIRS``): 2 particles to 5 points in 3-D, delta auto
#: (0.79) -> 0.1, eps 0.01, ended at 3178.54 from the carried paths and from the OT start, where the
#: rounded start reaches 1912.05 (found by fuzzing live changes).
ROUNDED_PAIRS = 250_000


def rounded(p: Problem) -> bool:
    """Whether ``robust`` checks the rounded start (``ROUNDED_PAIRS``)."""
    if not p.target.discrete or p.target.empirical is None:
        return False
    points, weights = p.target.empirical
    K = len(points)
    return K != p.N and p.N * K <= ROUNDED_PAIRS and bool(np.all(weights == weights[0]))


@OPTIMIZERS.register(name="local")
def local(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec) -> Iterator[Step]:
    """``robust``'s local solve and OT reassignment from the given start: the continuation a warm start or
    a live change of eps, delta, p, obstacles or points needs (``solver.warm``); then, where it is cheap
    (``WARM_CHECK_PAIRS``), the OT start as a check. Paths a change left deeper than ``DETOUR_MARGIN``
    times the smallest obstacle inside one (an obstacle moved onto them) are first bent around it
    (``around_obstacles``, terminal states kept: ``kept_out``). In the terminal states a start whose
    minimum lies beyond Newton's reach (``beyond_reach``: eps raised tenfold, say) is solved as rough,
    L-BFGS first: from the eps = 0.01 solution of 300 samples, eps -> 1 took 6.6 s to 1.00403, now 1.2 s
    to 0.98437. As in ``robust``, a provisional iterate below every finished solve is polished
    (``polish``)."""
    return _run(objective, x0, spec, carried=True)


@OPTIMIZERS.register(name="robust")
def robust(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec) -> Iterator[Step]:
    """The fast default: Newton's method from an optimal-transport start, with OT reassignment.

    When only the terminal states matter (``reducible``) the problem is solved in them alone
    (``ReducedObjective``) by trust-region Newton-CG (from a rough start of more than ``GLASSY_MIN_VARS``
    unknowns, by L-BFGS with periodic reassignments: ``glassy``), and every reported iterate is mapped
    back to full trajectories; otherwise in full trajectories by L-BFGS, then Newton (``_local``:
    saddle-free for small smooth problems, trust-region on the structured Hessian for obstacle problems and
    larger separable ones, ``_structured``).

    Starts, in turn: minimum-energy paths to an OT assignment onto the target's points or
    quasi-random quantization (``OTStart(blob=False)``: exact emd where affordable, multiscale beyond);
    for a continuum target of at most ``QUANTIZE_MAX_N`` particles, onto a blob quantization of the
    target (points minimizing the nonlocal energy alone, expanded from a cluster: seconds to make);
    for a particle target of K != N equally weighted points, each particle on one point (``rounded``);
    for problems of at most ``CHECK_VARS`` variables, the OT start's terminal states pulled back by
    ``SHORT``; when the best solve so far ended short of the target (``ended_short``), the problem's
    own start (rough: L-BFGS first), not judged by the patience rule in its first
    ``CHECK_MIN_ITERATIONS`` iterations, which cover distance slowly. An OT start onto particles or
    grid cells (at the nonlocal energy's minimum) is solved by Newton at once, unless the penalty is
    so weak that its minimum lies beyond the model's reach (``beyond_reach``, ``REACH``): then, like a
    start onto quasi-random points, L-BFGS first (eps = 1, N = 1,000 samples: 1.90 at the 60 s limit
    before, now 1.07-1.09 in 14-27 s; at eps <= 0.1 nothing changes). The OT start goes first: from the quasi-random points L-BFGS covers the distance cheaply
    and sets the reference the checks are judged by. A blob start that went first (in the terminal
    states, until this order) was never cut, and where the cluster's expansion stalls (in an annulus'
    hole, between a mixture's components, short of a box's corners) Newton crawled from it for
    hundreds of iterations before the OT start ran at all: N = 1,000, annulus 71 s, mixture 33 s, box
    23 s, now 15, 13 and 8 s to the same objectives. Over 23 continuum scenes (N = 200-1,000, four
    target kinds, three draws of the sources, three presets) the two orders ended equal on 17, this
    one lower on 3 (by up to 6e-4), higher on 3 (by 4e-6 to 5e-5). Before a blob start the OT start
    pauses after ``PAUSE_ROUNDS`` rounds (``Paused``; not on the obstacle continuation): its further
    reassignment rounds come after the blob check, which is judged by the paused start's objective,
    and are a check themselves (``ROUND_PATIENCE``) when the blob start ended lower. Where the blob
    start wins (Gaussian targets) the rounds it makes moot are dropped: N = 1,000, 11.7 -> 8.6 s to the
    same objective. Over 36 scenes (N = 200, 500, 700; Gaussian, mixture, box and annulus targets;
    three draws) 35 ended at the same objectives as with all rounds first, one annulus draw at N = 200
    5.5e-6 higher; the sweep took 243 s against 256 s (Gaussians 0.5-1.0x, annuli at N = 200 up to
    1.4x: their blob checks led the paused start and ran to their ends).

    Every start after the first is a check under an iteration budget and a patience rule while it
    trails (one that has led runs to its end): local minima differ (section 4.7), and the run keeps
    the best iterate of all. After each local solve, an exact OT reassignment of sources to the
    terminal states (it can only lower the control energy), in the terminal states also releases
    (``moved_on``), and a new local solve, while that helps. An OT start onto particles or grid cells
    begins from its releases where any pays (a weak penalty; none at eps = 0.01).
    On the obstacle continuation the exact objective of a step on the wide band can lie below where every
    solve ends; the run then polishes that iterate by a last local solve (``polish``). The run's answer
    is its best finished solve (the other steps are ``provisional``); it ends "converged" when that
    solve met its stopping rule."""
    return _run(objective, x0, spec, carried=False)


def _run(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec, carried: bool) -> Iterator[Step]:
    """``robust`` (from its own starts) or, ``carried``, ``local`` (from ``x0``, then the OT start as a
    check where ``WARM_CHECK_PAIRS`` allows)."""
    p = objective.problem
    work, reduced = _working(objective)
    size = p.N * (p.dynamics.state_dim if reduced else int(np.prod(objective.variable_shape[1:])))
    ot_start: list[torch.Tensor] = []

    def make_ot(cancel: threading.Event) -> torch.Tensor:
        ot_start.append(OTStart(blob=False).variables(objective, cancel))
        return ot_start[0]

    def make_short(cancel: threading.Event) -> torch.Tensor:
        """The OT start's terminal states pulled back toward the sources by ``SHORT``."""
        full = objective.positions(ot_start[0]).detach()
        source = torch.as_tensor(p.dynamics.source_states(p.source), dtype=full.dtype)
        terminal = p.dynamics.terminal(full, objective.h)
        return paths_to(objective, (source + (1 - SHORT) * (terminal - source)).numpy())

    # (label, start, rough): the OT start onto a continuum target's quasi-random quantization is rough
    # (not a minimum of the nonlocal energy); onto particles, grid cells or blob quantizations it is not.
    pairs = p.N * max(p.N, target_size(p))
    starts: list[tuple[str, Callable[[threading.Event], torch.Tensor], bool]] = []
    ot = ("ot-start", make_ot, not p.target.discrete)
    on_points = ("rounded-start", lambda cancel: paths_to(objective, rounded_terminal_states(objective)), False)
    if carried:  # ``local``: the given start first (bent only where a change left it deep inside an obstacle)
        starts.append(("local", lambda cancel: kept_out(work, x0.detach().clone()), False))
        if pairs <= WARM_CHECK_PAIRS:
            starts += [ot, on_points] if rounded(p) else [ot]
    else:
        starts += [ot, on_points] if rounded(p) else [ot]
        if blob_quantized(p):
            starts.append(("blob-start", lambda cancel: OTStart().variables(objective, cancel), False))
        if size <= CHECK_VARS:
            starts.append(("short-start", make_short, False))
    reported_at_once = not carried and pairs <= EXACT_PAIRS
    if reported_at_once and not isinstance(p.init, OTStart):
        starts.append(("own-start", lambda cancel: x0.detach().clone(), True))
    # the OT start pauses after PAUSE_ROUNDS rounds when a blob start follows (not on the obstacle
    # continuation, whose rounds report no round ends): its later rounds come after the blob check
    continued = _continued(work)
    pause = len(starts) > 1 and starts[1][0] == "blob-start" and not continued
    counters = [0, 0]
    last: Step | None = None
    best_objective, outcome, diverged = math.inf, "stalled", False
    if reported_at_once:
        # the problem's own start, reported at once (cheap here): the OT start's preparation (blob
        # quantizations of a continuum target take seconds) then runs in a worker thread, repeating it
        energies, g = objective.value_and_grad(x0)
        last = Step(x0.detach().clone(), energies, per_particle_grad_norm(g), 0.0, 0, 1, "start")
        counters[1] = 1
        yield last
    budget = math.inf
    run_lowest: Step | None = None  # the run's lowest iterate (exact energies), provisional or not

    def leg(steps: Generator[Step, None, Step | Paused], reference: float, resumed_from: float | None = None,
            grace: int = 0) -> Generator[Step, None, tuple[Step | Paused | None, float]]:
        """Report a start's ``steps``; returns what they return (None if cut) and their lowest objective.
        Under a finite ``budget`` the leg is a check: cut when its iterations exceed the budget, or by
        the patience rule (not in its first ``grace`` iterations: a rough start's first iterations
        cover distance slowly), while it trails both the best finished solve and ``reference``; its own
        iterations (at least ``CHECK_MIN_ITERATIONS``) are the next leg's budget. Resumed reassignment
        rounds (``resumed_from``: the objective they go on from) are judged round by round instead (``ROUND_PATIENCE``): within a round Newton's last steps gain little, the next
        reassignment much more."""
        nonlocal last, best_objective, outcome, diverged, budget, run_lowest
        begun, recent, lowest = counters[0], [], math.inf
        round_index, round_start, before = -1, resumed_from, resumed_from
        try:
            while True:
                try:
                    step = next(steps)
                except StopIteration as stop:
                    return stop.value, lowest
                ended = step.status
                last = reported(objective, work, step)
                yield last
                f = last.energies["objective"]
                lowest = min(lowest, f)
                if run_lowest is None or f < run_lowest.energies["objective"]:
                    run_lowest = last
                if ended is not None and f <= best_objective:
                    best_objective, outcome = f, ended
                if ended == "diverged":
                    diverged = True
                    return None, lowest
                bar = min(best_objective, reference)
                if lowest <= bar:
                    continue  # a check that has led is never cut: the run's best iterate is its to finish
                if step.iterations - begun >= budget:
                    return None, lowest  # the check start's budget is spent
                if resumed_from is not None:
                    this_round = round_of(step.phase)
                    if this_round > round_index >= 0:  # the round before this step ended at ``before``
                        if before - bar > ROUND_PATIENCE * max(round_start - before, 0.0):
                            return None, lowest  # further rounds like the last cannot plausibly catch up
                        round_start = before
                    round_index = max(round_index, this_round)
                    before = f
                    continue
                if continued and not step.phase.endswith(NARROWING):
                    continue  # on the continuation's wide band the exact objective can rise while the solve gains
                recent.append(f)
                if math.isfinite(budget) and len(recent) > CHECK_WINDOW and step.iterations - begun >= grace:
                    progress = (recent[-CHECK_WINDOW - 1] - f) / CHECK_WINDOW
                    if f - bar > CHECK_PATIENCE * max(progress, 0.0):
                        return None, lowest  # the check trails by more than it can plausibly still gain
        finally:
            steps.close()
            # a cut leg's unfinished round did not count its iterations: the next leg goes on from them
            if last is not None:
                counters[0], counters[1] = max(counters[0], last.iterations), max(counters[1], last.evaluations)
            budget = max(CHECK_MIN_ITERATIONS, counters[0] - begun)

    paused: Paused | None = None
    reference = math.inf  # the paused first start's lowest objective, which the blob check is judged by
    for index, (label, make, rough) in enumerate(starts):
        if label == "own-start" and not (run_lowest is not None and ot_start
                                         and ended_short(objective, run_lowest.variables, ot_start[0])):
            continue
        waiting = None if last is None else dataclasses.replace(last, phase=f"{label}: preparing")
        x = yield from prepared(make if p.obstacles is None or label == "local" else bent(make, work), waiting)
        if reduced:
            x = work.variables_from_positions(objective.positions(x))
            # weak penalty (or, for a carried start, eps raised tenfold): the minimum lies far from the
            # start, L-BFGS covers the distance
            rough = rough or (label in ("ot-start", "local") and beyond_reach(work, x))
            if label == "ot-start" and p.target.discrete:
                # weak penalty: particles that gain by stopping short of their places (the OT start puts
                # each in the well of its target point) leave them before the first local solve, which
                # then goes on as from a rough start: Newton's first solve from the OT start crawled
                # (1,000 samples, eps = 0.1: 156 iterations, 9 s, before the first release round)
                freed = released(work, x)
                if freed is not None:
                    x, rough = freed, True
        if index == 0 and pause:
            first_label, first_rough = label, rough  # the resumed rounds go on as this start's
            result, reference = yield from leg(_rounds(work, x, spec, label, counters, rough, pause=PAUSE_ROUNDS),
                                               math.inf)
            paused = result if isinstance(result, Paused) else None
            if paused is None:  # it ended within those rounds: later starts are judged as before
                reference = math.inf
        else:
            # ``local``'s OT check is judged round by round (its releases and reassignments carry its gains
            # where the carried start is beaten; judged per iteration it was cut at its first solve's end)
            yield from leg(_polished(work, x, spec, label, counters, rough), reference,
                           resumed_from=math.inf if carried and index > 0 else None,
                           grace=CHECK_MIN_ITERATIONS if rough else 0)
        if diverged:
            break
        if paused is not None and index == 1:  # the first start's later rounds, after the blob check
            yield from leg(_rounds(work, None, spec, first_label, counters, first_rough, resume=paused), math.inf,
                           resumed_from=reference)
            paused, reference = None, math.inf
            if diverged:
                break
    if not diverged and unfinished_lead(work, run_lowest, best_objective, spec):
        yield from leg(polish(work, run_lowest, spec, counters), math.inf)
    yield dataclasses.replace(last, status=outcome)
