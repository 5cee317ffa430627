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


def per_particle_grad_norm(g: torch.Tensor) -> float:
    """max_i |dE/dy_i| N: the gradient of one particle's trajectory, free of the 1/N weights."""
    return float(g.abs().max()) * g.shape[0]
