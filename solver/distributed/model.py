"""The control problem of the slides (d = 1):

    dX^i = alpha_i dt + dW^i,  X_0 = 0,  cost  E[ G(X_T) + (1/(2n)) sum_i int_0^T |alpha_i|^2 dt ],
    G(x) = (1/n) sum_i U(x_i) + (1/n) sum_{i<j} W_ij K(x_i - x_j),  W = (J + J^T)/2.

``Model`` is a frozen, picklable description; ``n_cost`` evaluates nG and its gradient on a
batch of points (rows) through the sparse incidence matrix of the edge list.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .graphs import Graph
from .potentials import Confinement, Interaction, is_quadratic

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Model:
    """n players on [0, T] with confinement U, interaction K and interaction matrix graph.J."""

    T: float
    U: Confinement
    K: Interaction
    graph: Graph

    @property
    def n(self) -> int:
        return self.graph.n

    @property
    def quadratic(self) -> bool:
        return is_quadratic(self.U, self.K)

    @cached_property
    def edges(self) -> Array:
        return self.graph.edges

    @cached_property
    def incidence(self) -> sp.csr_matrix:
        """B with B[e, i] = 1, B[e, j] = -1 for edge e = (i, j), so (x B^T)_e = x_i - x_j."""
        E = self.edges
        m = len(E)
        rows = np.r_[np.arange(m), np.arange(m)]
        cols = np.r_[E[:, 0], E[:, 1]].astype(np.int64)
        data = np.r_[np.ones(m), -np.ones(m)]
        return sp.csr_matrix((data, (rows, cols)), shape=(m, self.n))

    @cached_property
    def degrees(self) -> Array:
        return self.graph.degrees

    def n_cost(self, x: Array) -> Array:
        """nG(x) for x of shape (..., n)."""
        x2 = x.reshape(-1, self.n)
        z = (self.incidence @ x2.T).T
        out = self.U.value(x2).sum(axis=1) + self.K.value(z) @ self.edges[:, 2]
        return out.reshape(x.shape[:-1])

    def n_grad(self, x: Array) -> Array:
        """grad nG(x) = U'(x_i) + sum_j W_ij K'(x_i - x_j), shape (..., n)."""
        x2 = x.reshape(-1, self.n)
        z = (self.incidence @ x2.T).T
        g = self.U.grad(x2) + (self.incidence.T @ (self.K.grad(z) * self.edges[:, 2]).T).T
        return g.reshape(x.shape)
