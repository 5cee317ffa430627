"""Exact V on sparse graphs by variable elimination on a 1-D grid per player.

    n V = -log Z,   Z = int e^{-nG} d gamma = int prod_i phi_i(x_i) prod_{(i,j) in E} psi_ij(x_i, x_j) dx,
    phi_i(x) = N(0, T)(x) e^{-U(x)},   psi_ij(x, y) = e^{-W_ij K(x - y)}.

Each x_i runs over the CAVI grid (``cavi.make_grid``: spacing sd_min / points_per_sd, half-width 13
sd_max, trapezoid weights), on which the integrand is analytic and Gaussian-tailed, so the rule
converges faster than any power of the spacing. The sum over the grid's m^n points is done by
eliminating one player at a time (greedy minimum degree): the factors holding that player are
multiplied and summed over its grid, leaving a factor on its neighbours, which then become neighbours
of each other. This is exact (no approximation beyond the grid) and costs m^(k+1) per player, k its
number of neighbours when eliminated; here k <= 2 (m^2 memory): paths, trees and stars (k = 1),
rings and other series-parallel graphs (k = 2). ``eliminable(graph)`` says whether the order exists.
Factors are rescaled to a maximum of 1 as they are formed (their logs summed), so nothing underflows.

``elimination_value`` returns V at two grid spacings and takes their difference as the error
estimate (the coarser grid's error, which bounds the finer one's by far for a spectrally convergent
rule).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..lazy import torch
from .cavi import make_grid
from .graphs import Graph
from .model import Model

Array = NDArray[np.float64]

#: Players may have at most this many neighbours when eliminated (factors of m^MAX_WIDTH entries).
MAX_WIDTH = 2
#: Grid densities (points per smallest standard deviation) of the value and of its check.
FINE, COARSE = 6.0, 4.0


@dataclass(frozen=True)
class EliminationResult:
    V: float
    V_err: float  # |V(fine grid) - V(coarse grid)|
    width: int  # the largest number of neighbours a player had when eliminated
    grid_points: int


def elimination_order(graph: Graph) -> tuple[list[int], int]:
    """A greedy minimum-degree elimination order and its width (the largest neighbourhood met)."""
    nbrs: list[set[int]] = [set() for _ in range(graph.n)]
    for i, j, _ in graph.edges:
        nbrs[int(i)].add(int(j))
        nbrs[int(j)].add(int(i))
    remaining = set(range(graph.n))
    order, width = [], 0
    while remaining:
        v = min(remaining, key=lambda u: (len(nbrs[u]), u))
        order.append(v)
        width = max(width, len(nbrs[v]))
        for a in nbrs[v]:
            nbrs[a].discard(v)
            nbrs[a].update(nbrs[v] - {a})
        remaining.discard(v)
    return order, width


def eliminable(graph: Graph) -> bool:
    """Whether greedy elimination keeps every factor within ``MAX_WIDTH`` players."""
    return elimination_order(graph)[1] <= MAX_WIDTH


def checked_order(graph: Graph) -> tuple[list[int], int]:
    """``elimination_order``, or a one-line ValueError when its width exceeds ``MAX_WIDTH``."""
    order, width = elimination_order(graph)
    if width > MAX_WIDTH:
        raise ValueError(f"graph: elimination needs at most {MAX_WIDTH} neighbours per eliminated player "
                         f"(got {width}); fix: use a path, tree, star, ring or n <= 3")
    return order, width


def eliminate(log_unary: "torch.Tensor", log_pair: dict[tuple[int, int], "torch.Tensor"],
              order: list[int]) -> "torch.Tensor":
    """log sum over the nodes of prod_i phi_i(x_i) prod_(a,b) psi_ab(x_a, x_b), batched: ``log_unary``
    (n, P, m) holds log phi_i at player i's m nodes for each of P problems, ``log_pair[(a, b)]`` (P, m, m)
    log psi_ab indexed [x_a, x_b] (a < b); players are summed out in ``order`` (width <= MAX_WIDTH).
    Returns log Z of shape (P,); differentiable (torch autograd), so d log Z / d log_unary[i] is the
    marginal law of player i's node under the normalized product (what the drift of the full-information
    control needs). Factors are rescaled by their (detached) maximum as they are formed."""
    n, P, m = log_unary.shape
    log_scale = torch.zeros(P, dtype=log_unary.dtype)

    def normalized(log_f: "torch.Tensor") -> "torch.Tensor":
        nonlocal log_scale
        top = log_f.detach().reshape(P, -1).amax(dim=1)
        log_scale = log_scale + top
        return torch.exp(log_f - top.reshape((P,) + (1,) * (log_f.dim() - 1)))

    unary = {i: normalized(log_unary[i]) for i in range(n)}
    pair = {key: normalized(f) for key, f in log_pair.items()}
    for v in order:
        a_v = unary.pop(v, None)
        a_v = torch.ones(P, m, dtype=log_unary.dtype) if a_v is None else a_v
        mats: dict[int, torch.Tensor] = {}  # other player u -> (P, m, m) indexed [x_v, x_u]
        for key in [k for k in pair if v in k]:
            f = pair.pop(key)
            u, f = (key[1], f) if key[0] == v else (key[0], f.transpose(1, 2))
            mats[u] = mats[u] * f if u in mats else f
        others = sorted(mats)
        if not others:
            new, scope = a_v.sum(dim=1), ()
        elif len(others) == 1:
            new, scope = torch.einsum("pk,pku->pu", a_v, mats[others[0]]), (others[0],)
        else:
            u1, u2 = others
            new, scope = torch.bmm((a_v[:, :, None] * mats[u1]).transpose(1, 2), mats[u2]), (u1, u2)
        top = new.detach().reshape(P, -1).amax(dim=1)
        if not bool(torch.all(top > 0)):
            raise FloatingPointError("the integrand vanished on the grid (a grid too narrow for this model)")
        log_scale = log_scale + torch.log(top)
        new = new / top.reshape((P,) + (1,) * (new.dim() - 1))
        if len(scope) == 1:
            unary[scope[0]] = unary[scope[0]] * new if scope[0] in unary else new
        elif len(scope) == 2:
            pair[scope] = pair[scope] * new if scope in pair else new
        else:  # a finished component: new / top is 1, but only log(new) carries the gradient (top is detached)
            log_scale = log_scale + torch.log(new)
    return log_scale


def edge_log_factors(model: Model, nodes: Array) -> dict[tuple[int, int], "torch.Tensor"]:
    """log psi_ab = -sum of W_ab K(x_a - x_b) over the edges (a, b), a < b, at the players' nodes
    ``nodes`` (n, P, m): a (P, m, m) tensor per connected pair."""
    pair: dict[tuple[int, int], torch.Tensor] = {}
    for i, j, w in model.edges:
        a, b = sorted((int(i), int(j)))
        f = torch.from_numpy(-w * model.K.value(nodes[a][:, :, None] - nodes[b][:, None, :]))  # K is even
        pair[(a, b)] = pair[(a, b)] + f if (a, b) in pair else f
    return pair


def log_partition(model: Model, points_per_sd: float, order: list[int]) -> tuple[float, int]:
    """log Z on the grid of the given density, eliminating players in ``order`` (``elimination_order``,
    of width at most ``MAX_WIDTH``); returns (log Z, grid points)."""
    prec_max = 1.0 / model.T + model.U.hess_sup + model.K.hess_sup * float(model.degrees.max(initial=0.0))
    grid = make_grid(model.T, model.U, prec_max, points_per_sd)
    m = len(grid.x)
    log_unary = torch.from_numpy(grid.log_ref - model.U.value(grid.x)).expand(model.n, 1, m)
    nodes = np.broadcast_to(grid.x, (model.n, 1, m))
    return float(eliminate(log_unary, edge_log_factors(model, nodes), order)[0]), m


def elimination_value(model: Model) -> EliminationResult:
    """V = -log Z / n on the fine grid, with the fine-coarse difference as its error estimate."""
    order, width = checked_order(model.graph)
    fine, m = log_partition(model, FINE, order)
    coarse, _ = log_partition(model, COARSE, order)
    V, Vc = -fine / model.n, -coarse / model.n
    return EliminationResult(V, abs(V - Vc), width, m)
