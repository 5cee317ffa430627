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
  L-BFGS until it slows down, then Newton; then *reassignment*: the nonlocal energy depends only on
  the set of terminal states, while the control energy depends on which particle goes where, so an
  exact OT assignment (POT emd, under the exact steering cost) of sources to the current terminal states
  can only lower the control part; the trajectories are re-routed and the local solve resumes, until no
  reassignment helps. This repairs the crossing trajectories that trap descent methods (section 4.7).
  All this from the problem's own start, then from minimum-energy paths to an OT assignment onto the
  target (``init="ot"``); the run keeps the best iterate (``solver.run`` tracks it).
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generator, Iterator, TypeVar

import numpy as np

from .init import OTStart, ot_available, paths_to
from .kernels import second_order
from .lazy import ot, torch
from .objective import Objective
from .problem import OptimizerSpec
from .registry import OPTIMIZERS
from .steering import KineticPreconditioner, TerminalObjective, quadratic_structure, reducible, steering_cost

#: Reassignment is skipped above this many particles (an N x N emd would dominate the run).
REASSIGN_MAX_N = 4000
#: Seconds between the reports a method repeats while it prepares a start in the background.
HEARTBEAT = 0.2

T = TypeVar("T")


@dataclass
class Step:
    """One report from a method: the iterate and its energies (at ``variables``)."""

    variables: torch.Tensor
    energies: dict[str, float]
    grad_norm: float
    step_size: float
    iterations: int  # iterations done by this method so far
    evaluations: int  # objective + gradient evaluations so far
    phase: str = ""
    status: str | None = None  # set on the last step: "converged", ...


def per_particle_grad_norm(g: torch.Tensor) -> float:
    """max_i |dE/dy_i| N: the gradient of one particle's trajectory, free of the 1/N weights."""
    return float(g.abs().max()) * g.shape[0]


def default_lr(objective: Objective) -> float:
    """The paper's scaling of the learning rate with eps (section 4.2): alpha = 0.01 eps (Fig. 2)."""
    return 0.01 * objective.problem.eps


# --------------------------------------------------------------------------------------- gd (paper)
@OPTIMIZERS.register(name="gd")
def gradient_descent(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec) -> Iterator[Step]:
    """The paper's gradient descent (section 4.1): learning rate lr, cut on plateaus (slow, the baseline)."""
    lr = spec.lr or default_lr(objective)
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2, threshold=0.0, factor=0.2)
    best, bad = math.inf, 0
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
            best, bad = loss, 0
        else:
            bad += 1
        status = "converged" if bad >= 5 or gnorm <= spec.gtol else None
        yield Step(here, energies, gnorm, step, it, it, "gd", status=status)
        if status:
            return


# -------------------------------------------------------------------------------------------- adam
@OPTIMIZERS.register(name="adam")
def adam(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec) -> Iterator[Step]:
    """Adam with learning rate lr (default 1e-3)."""
    x = x0.detach().clone().requires_grad_(True)
    lr = spec.lr or 1e-3
    opt = torch.optim.Adam([x], lr=lr)
    for it in range(1, spec.max_iter + 1):
        opt.zero_grad()
        e = objective.energies(x)
        e["objective"].backward()
        energies = {k: float(v.detach()) for k, v in e.items()}
        gnorm = per_particle_grad_norm(x.grad)
        status = "converged" if gnorm <= spec.gtol else None
        if not math.isfinite(energies["objective"]):
            status = "diverged"
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


def _two_loop(g: torch.Tensor, S: list[torch.Tensor], Y: list[torch.Tensor], gamma: float,
              precondition: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """L-BFGS direction -H g from the stored pairs and the initial inverse Hessian gamma P
    (Nocedal and Wright, Algorithm 7.4)."""
    q = g.clone()
    alphas = []
    for s, y in zip(reversed(S), reversed(Y)):
        a = float((s * q).sum()) / float((y * s).sum())
        alphas.append(a)
        q -= a * y
    r = gamma * precondition(q)
    for (s, y), a in zip(zip(S, Y), reversed(alphas)):
        b = float((y * r).sum()) / float((y * s).sum())
        r += (a - b) * s
    return -r


def _capped(d: torch.Tensor, cap: float) -> torch.Tensor:
    """d scaled down so that no particle's block moves farther than ``cap``."""
    longest = float(d.flatten(1).norm(dim=1).max())
    return d * (cap / longest) if longest > cap else d


def _armijo(objective: Objective, x: torch.Tensor, d: torch.Tensor, f: float, gd: float
            ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, int] | None:
    """Backtracking from t = 1 (halving, down to 2^-30: below that the change is lost in rounding)
    until E(x + t d) <= E(x) + 1e-4 t g.d. Returns (x + t d, energies, gradient, evaluations) or None."""
    t = 1.0
    for k in range(1, 31):
        trial = x + t * d
        e_new, g_new = objective.value_and_grad(trial)
        if e_new["objective"] <= f + 1e-4 * t * gd:
            return trial, e_new, g_new, k
        t *= 0.5
    return None


@OPTIMIZERS.register(name="lbfgs")
def lbfgs(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec, phase: str = "lbfgs",
          iterations: int = 0, evaluations: int = 0, history: int = 30) -> Iterator[Step]:
    """Preconditioned L-BFGS with steps capped per particle (any size of problem).

    Steps are capped per particle (``max_move``) and found by an Armijo backtracking line search. The initial inverse Hessian is gamma P, P the inverse Hessian of the control energy
    (``KineticPreconditioner``), gamma = s.y / y.P y from the latest pair.

    Stops when the per-particle gradient N max|dE/dy| is below ``gtol``, when the objective's relative
    decrease over 10 iterations is below ``rtol``, or when no descent step can be found."""
    cap = max_move(objective)
    precondition = KineticPreconditioner(objective)
    x = x0.detach().clone()
    energies, g = objective.value_and_grad(x)
    evaluations += 1
    f = energies["objective"]
    S: list[torch.Tensor] = []
    Y: list[torch.Tensor] = []
    gamma = 1.0 / x.shape[0]  # P is the Hessian inverse of N KE; gamma = 1/N matches KE's scale
    recent = [f]
    it = 0
    while True:
        it += 1
        d = _two_loop(g, S, Y, gamma, precondition) if S else -gamma * precondition(g)
        if not float((g * d).sum()) < 0:  # lost positive definiteness: restart
            S.clear(), Y.clear()
            d = -gamma * precondition(g)
        d = _capped(d, cap)
        found = _armijo(objective, x, d, f, float((g * d).sum()))
        evaluations += 30 if found is None else found[3]
        status = None
        if found is None:
            if S:  # forget the curvature pairs and retry along the preconditioned gradient
                S.clear(), Y.clear()
                continue
            status = "converged"
            trial, e_new, g_new = x, energies, g
        else:
            trial, e_new, g_new = found[:3]
        s, y = trial - x, g_new - g
        sy = float((s * y).sum())
        if sy > 1e-12 * float(s.norm() * y.norm()):
            S.append(s), Y.append(y)
            if len(S) > history:
                S.pop(0), Y.pop(0)
            gamma = sy / float((y * precondition(y)).sum())
        x, g, energies, f = trial, g_new, e_new, e_new["objective"]
        recent.append(f)
        gnorm = per_particle_grad_norm(g)
        if not math.isfinite(f):
            status = "diverged"
        elif gnorm <= spec.gtol:
            status = "converged"
        elif len(recent) > 10:
            old = recent.pop(0)
            if old - f <= spec.rtol * max(abs(f), 1e-30):
                status = "converged"
        yield Step(x, energies, gnorm, float(s.flatten(1).norm(dim=1).max()), iterations + it,
                   evaluations, phase, status=status)
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


def hessian(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """Dense Hessian of eq. (50) in the variables (n x n, n = N V).

    When every term but the nonlocal one is a sum over particles (no interaction, no drift), the
    Hessian is block-diagonal (V x V blocks B_i, all read off with V batched products, a unit vector in
    every particle's block at once) plus J^T H_NE J, with H_NE the (N D) x (N D) Hessian of the
    nonlocal energy in the terminal states and J the shared affine map from a particle's variables to
    its terminal state. Otherwise all n Hessian-vector products are taken."""
    p = objective.problem
    N, n = x.shape[0], x.numel()
    V = n // N
    if not p.separable:
        eye = torch.eye(n, dtype=x.dtype).reshape(n, *x.shape)
        H = _batched_hessian(objective, x, eye).reshape(n, n)
        return 0.5 * (H + H.T)

    def local(v: torch.Tensor) -> torch.Tensor:
        pos = objective.positions(v)
        return objective.kinetic(pos, v) + objective.obstacle(pos) + objective.potential_field(pos)

    tangents = torch.eye(V, dtype=x.dtype)[:, None, :].expand(V, N, V).reshape(V, *x.shape)
    blocks = _batched_hessian(local, x, tangents).reshape(V, N, V).permute(1, 2, 0)  # B_i[:, k]
    J = quadratic_structure(objective)[1]
    H_ne = objective.nonlocal_hessian(p.dynamics.terminal(objective.positions(x.detach()), objective.h))
    H = torch.einsum("dv,idke,ew->ivkw", J, H_ne, J)
    idx = torch.arange(N)
    H[idx, :, idx, :] += blocks
    H = H.reshape(n, n)
    return 0.5 * (H + H.T)


@OPTIMIZERS.register(name="newton")
def newton(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec, phase: str = "newton",
           iterations: int = 0, evaluations: int = 0) -> Iterator[Step]:
    """Saddle-free Newton's method with a structured Hessian (small problems, to the last digits).

    d = -|H|^{-1} g, with |H| the Hessian with its eigenvalues replaced by their
    absolute values (floored at 1e-12 of the largest), so every step descends and negative curvature
    (crossing particles, the concave inside of an obstacle penalty) pushes away from saddles. Steps are
    capped per particle (``max_move``) and backtracked (Armijo). Near a minimum this is Newton's method,
    converging quadratically: the minimizer to the last digits float64 can resolve.

    Stops when the per-particle gradient is below ``gtol``, the Newton decrement g.|H|^{-1}g falls to
    the rounding level of the objective, or the relative decrease over 10 steps is below ``rtol`` and
    ``NEWTON_STALL_RTOL`` (where the objective is not twice differentiable)."""
    cap = max_move(objective)
    x = x0.detach().clone()
    energies, g = objective.value_and_grad(x)
    evaluations += 1
    recent = [energies["objective"]]
    it = 0
    while True:
        it += 1
        lam, Q = torch.linalg.eigh(hessian(objective, x))
        evaluations += 1
        lam = lam.abs().clamp_min(1e-12 * float(lam.abs().max()))
        coef = (Q.T @ g.reshape(-1)) / lam
        d = -(Q @ coef).reshape(x.shape)
        decrement = float((coef * coef * lam).sum())  # g.|H|^{-1} g
        d = _capped(d, cap)
        f = energies["objective"]
        found = _armijo(objective, x, d, f, float((g * d).sum()))
        evaluations += 30 if found is None else found[3]
        accepted = found is not None
        status = None
        if accepted:
            step = float((found[0] - x).flatten(1).norm(dim=1).max())
            x, energies, g = found[:3]
        else:
            step = 0.0
        gnorm = per_particle_grad_norm(g)
        recent.append(energies["objective"])
        stalled = len(recent) > 10 and recent.pop(0) - recent[-1] <= max(spec.rtol, NEWTON_STALL_RTOL) * abs(f)
        if not math.isfinite(energies["objective"]):
            status = "diverged"
        elif gnorm <= spec.gtol or not accepted or stalled or decrement <= 1e-15 * max(abs(f), 1.0):
            status = "converged"
        yield Step(x, energies, gnorm, step, iterations + it, evaluations, phase, status=status)
        if status:
            return


# ------------------------------------------------------------------------------------------ robust
#: Relative decrease (over 10 iterations) below which the robust method hands over from L-BFGS to
#: Newton's method: L-BFGS crosses the nonconvex landscape well, Newton finishes in a few steps.
HANDOVER_RTOL = 1e-7


def _local(objective: Objective, x: torch.Tensor, spec: OptimizerSpec, phase: str, iterations: int,
           evaluations: int) -> Iterator[Step]:
    """L-BFGS until it slows down, then Newton (small problems with a twice differentiable objective:
    no obstacle, whose penalty (59) has a kink at the edge) or L-BFGS to the final tolerance."""
    if x.numel() > NEWTON_MAX_VARS or not objective.problem.smooth:
        yield from lbfgs(objective, x, spec, phase, iterations, evaluations)
        return
    coarse = dataclasses.replace(spec, rtol=max(spec.rtol, HANDOVER_RTOL))
    last = None
    for last in lbfgs(objective, x, coarse, phase, iterations, evaluations):
        final = last.status
        last.status = None
        yield last
        if final == "diverged":
            last.status = final
            yield last
            return
    yield from newton(objective, last.variables, spec, phase + "/newton", last.iterations, last.evaluations)


def reassign(objective: Objective, variables: torch.Tensor) -> torch.Tensor | None:
    """Re-route particles so the assignment of sources to the current terminal states is an exact
    OT assignment (emd) for the cost of steering each particle to each state (``steering_cost``). Returns new variables, or None
    if the current assignment is already optimal.

    Particle i is sent to terminal state s(i) along the minimum-energy path (``paths_to``); with state
    costs it takes the path of particle s(i) shifted by (1 - t)(y_i,0 - y_s(i),0) instead, which starts
    at its own source and keeps any detour (e.g. around an obstacle)."""
    p = objective.problem
    if p.N > REASSIGN_MAX_N:
        return None
    pos = objective.positions(variables).detach()
    terminal = p.dynamics.terminal(pos, objective.h).numpy()
    cost = steering_cost(objective, terminal)
    a = np.full(p.N, 1.0 / p.N)
    perm = ot.emd(a, a, cost / cost.max(), numItermax=10_000_000).argmax(1)
    if np.array_equal(perm, np.arange(p.N)) or len(set(perm.tolist())) != p.N:
        return None
    rows = np.arange(p.N)
    if cost[rows, perm].sum() >= cost[rows, rows].sum() * (1 - 1e-12):
        return None
    if not p.has_state_cost:
        return paths_to(objective, terminal[perm])
    perm_t = torch.as_tensor(perm)
    t = torch.linspace(0.0, 1.0, p.M, dtype=pos.dtype)[None, :, None]
    shift = (objective.source - objective.source[perm_t])[:, None, : pos.shape[2]]
    return objective.variables_from_positions(pos[perm_t] + (1.0 - t) * shift)


def _polished(objective: Objective, x: torch.Tensor, spec: OptimizerSpec, label: str,
              counters: list[int]) -> Iterator[Step]:
    """A local solve (Newton for small problems, else L-BFGS), then reassign-and-resume while that
    lowers the objective."""
    best: Step | None = None
    rounds = 0
    while x is not None:
        last = None
        for last in _local(objective, x, spec, phase=f"{label}" + (f"/reassign {rounds}" if rounds else ""),
                          iterations=counters[0], evaluations=counters[1]):
            final = last.status
            last.status = None  # only the whole method finishes the run
            yield last
            if final == "diverged":
                break
        counters[0], counters[1] = last.iterations, last.evaluations
        if best is not None and last.energies["objective"] >= best.energies["objective"]:
            return
        best = last
        x = reassign(objective, last.variables)
        rounds += 1


def prepared(make: Callable[[threading.Event], T], waiting: Step | None) -> Generator[Step, None, T]:
    """Compute ``make(cancel)`` (e.g. a start that needs a long blob quantization) in a worker thread
    while yielding ``waiting`` every ``HEARTBEAT`` seconds: the caller keeps reporting and can pause,
    stop or hit its time limit meanwhile. Closing the generator sets ``cancel`` and waits for the
    worker (``make`` checks it between evaluations). Returns ``make``'s result."""
    if waiting is None:
        return make(threading.Event())
    outcome: list[tuple[bool, object]] = []
    cancel = threading.Event()

    def work() -> None:
        try:
            outcome.append((True, make(cancel)))
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


@OPTIMIZERS.register(name="robust")
def robust(objective: Objective, x0: torch.Tensor, spec: OptimizerSpec) -> Iterator[Step]:
    """The fast default: L-BFGS then Newton, with OT reassignment, from two starts.

    Local solves with reassignment from two starts: the problem's own start (progress shows at
    once), allowed half of the time limit, then minimum-energy paths to an exact OT assignment onto the
    target (``init="ot"``), allowed the rest. The run keeps the best iterate of both. Problems where only
    the terminal states matter (``reducible``) are solved in the terminal states alone
    (``TerminalObjective``) and every reported iterate is mapped back to full trajectories."""
    p = objective.problem
    work = TerminalObjective(p) if reducible(p) else objective

    starts: list[tuple[str, Callable[[threading.Event], torch.Tensor], float]] = [("start", lambda _: x0, 0.5)]
    if p.init != OTStart() and ot_available(p):
        starts.append(("ot-start", lambda cancel: OTStart().variables(objective, cancel), 1.0))

    counters = [0, 0]
    clock = time.perf_counter()
    last = None
    for label, make, share in starts:
        waiting = None if last is None else dataclasses.replace(last, phase=f"{label}: preparing")
        x = yield from prepared(make, waiting)
        if work is not objective:
            x = work.variables_from_positions(objective.positions(x))
        for step in _polished(work, x, spec, label, counters):
            last = step if work is objective else dataclasses.replace(
                step, variables=work.full_variables(step.variables))
            yield last
            if time.perf_counter() - clock > share * spec.time_limit:
                break
    last.status = "converged"
    yield last


