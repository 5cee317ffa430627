"""What an optimizer reports after each iteration (``Step``), shared by every method."""
from __future__ import annotations

from dataclasses import dataclass

from .lazy import torch


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
    #: an iterate the method does not stand by as an answer: the robust method's steps within a local
    #: solve (only a solve's end is one), e.g. on a continuation's wide band, where the exact objective
    #: can dip below where the solve ends. A run that ends by its method's own rule returns the best
    #: iterate among the others (``solver.run``).
    provisional: bool = False


def per_particle_grad_norm(g: torch.Tensor) -> float:
    """max_i |dE/dy_i| N: the gradient of one particle's trajectory, free of the 1/N weights."""
    return float(g.abs().max()) * g.shape[0]
