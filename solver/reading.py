"""Reading problem-file values: numbers, arrays, matrices and objects, each checked on the way in.

Every reader takes the value's place in the file (``where``, e.g. ``"target.cov"``) and raises
``ProblemError`` with one line naming that place and the fix. The readers use numpy only, so a
problem is validated before torch is loaded (``solver.lazy``).

``Context`` carries what a part of a problem needs to know about the rest while it is read: the
dynamics (and so the dimensions of positions and states), N, M, h and eps.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ProblemError
from .registry import suggestion


@dataclass(frozen=True)
class Context:
    """What the parts of a problem read while they are validated: the dynamics (None when a part is
    read on its own, e.g. an obstacle edited in the explorer), ``dim`` (positions: obstacles,
    potentials and drawings act on these), ``state_dim`` (what the terminal constraint acts on), N,
    M and eps."""

    dynamics: Any
    dim: int
    state_dim: int
    N: int = 0
    M: int = 2
    eps: float = 1.0

    @classmethod
    def of(cls, dynamics: Any, N: int, M: int, eps: float) -> "Context":
        return cls(dynamics, dynamics.dim, dynamics.state_dim, N, M, eps)

    @classmethod
    def positions(cls, dim: int) -> "Context":
        """The context of a part read on its own, in ``dim`` dimensions."""
        return cls(None, dim, dim)

    @property
    def h(self) -> float:
        return 1.0 / (self.M - 1)

    @property
    def state_coordinates(self) -> str:
        """The terminal state's coordinates by name ("x0, x1, v0, v1" under acceleration control), for
        messages about a target's dimension; empty when the dynamics is not known."""
        return ", ".join(self.dynamics.state_names()) if self.dynamics is not None else ""


def mapping(value: Any, where: str, example: str) -> dict:
    """``value`` as a JSON object, or an error showing ``example``."""
    if not isinstance(value, dict):
        raise ProblemError(where, f"must be an object such as {example} (got {type(value).__name__})")
    return value


def check_keys(spec: dict, allowed: tuple[str, ...] | list[str], where: str) -> None:
    """Refuse keys that look like misspellings of ``allowed`` ones (other unknown keys are ignored:
    files may carry notes)."""
    for key in spec:
        if key not in allowed and suggestion(key, list(allowed)):
            raise ProblemError(f"{where}.{key}" if where else key,
                               f"unknown key{suggestion(key, list(allowed))}; rename it")


def finite_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (int or float, not a boolean) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(spec: dict, key: str, where: str, default: Any = None, *, positive: bool = False,
           minimum: float | None = None, maximum: float | None = None, integer: bool = False) -> Any:
    """``spec[key]`` as a finite float (or int), with ``default`` when absent."""
    value = spec.get(key, default)
    if value is None:
        raise ProblemError(where, f"is required; add \"{key}\" to the problem")
    if not finite_number(value):
        raise ProblemError(where, f"must be a number (got {value!r})")
    if integer and int(value) != value:
        raise ProblemError(where, f"must be a whole number (got {value!r})")
    if positive and value <= 0:
        raise ProblemError(where, f"must be > 0 (got {value!r}); use a small positive value")
    if minimum is not None and value < minimum:
        raise ProblemError(where, f"must be >= {minimum} (got {value!r})")
    if maximum is not None and value > maximum:
        raise ProblemError(where, f"must be <= {maximum} (got {value!r})")
    return int(value) if integer else float(value)


def array(value: Any, where: str, ndim: int, fix: str) -> np.ndarray:
    """A finite float64 array with ``ndim`` axes and at least one entry."""
    shape_text = {1: "a list of numbers", 2: "a list of points (lists of numbers of equal length)"}.get(
        ndim, f"a {ndim}-dimensional array of numbers")
    if value is None:
        raise ProblemError(where, f"is required; {fix}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except ValueError:
        raise ProblemError(where, f"must be {shape_text}, with rows of equal length; {fix}") from None
    except TypeError:
        raise ProblemError(where, f"must be numbers; {fix}") from None
    if arr.ndim != ndim or arr.size == 0:
        raise ProblemError(where, f"must be {shape_text} (got shape {arr.shape}); {fix}")
    if not np.all(np.isfinite(arr)):
        raise ProblemError(where, f"contains NaN or infinite values; {fix}")
    return arr


def vector(value: Any, where: str, dim: int, coordinates: str = "") -> np.ndarray:
    """A point of dimension ``dim``; ``coordinates`` names them in the message (e.g. a target on the
    states under acceleration control needs positions and velocities: "x0, x1, v0, v1")."""
    v = array(value, where, 1, f"give {dim} coordinates")
    if v.shape[0] != dim:
        named = f" ({coordinates})" if coordinates else ""
        raise ProblemError(where, f"must have dimension {dim} (got {v.shape[0]}); give {dim} coordinates{named}")
    return v


def points(value: Any, where: str, dim: int | None = None, fix: str = "give points as [[x0, x1], ...]") -> np.ndarray:
    """An (n, dim) array of points (any dim when ``dim`` is None)."""
    pts = array(value, where, 2, fix)
    if dim is not None and pts.shape[1] != dim:
        raise ProblemError(where, f"must have dimension {dim} (got {pts.shape[1]})")
    return pts


def covariance(value: Any, where: str, dim: int, coordinates: str = "") -> np.ndarray:
    """A symmetric positive definite dim x dim matrix; a number s means s I. ``coordinates`` as in
    ``vector``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value) * np.eye(dim)
    cov = array(value, where, 2, f"give a {dim}x{dim} symmetric positive definite matrix")
    if cov.shape != (dim, dim) or not np.allclose(cov, cov.T):
        named = f" over {coordinates}" if coordinates and cov.shape != (dim, dim) else ""
        raise ProblemError(where, f"must be a symmetric {dim}x{dim} matrix{named} (got shape {cov.shape})")
    if np.linalg.eigvalsh(cov).min() <= 0:
        raise ProblemError(where, "must be positive definite; use a positive variance")
    return cov


def floats(arr: np.ndarray) -> Any:
    """An array as nested lists of Python floats (what ``to_spec`` writes)."""
    return np.asarray(arr, dtype=np.float64).tolist()


def json_file(path: str | Path, where: str, what: str = "a problem JSON file") -> Any:
    """The parsed content of the JSON file ``path``; a missing, binary or malformed file is a
    ``ProblemError`` at ``where`` (e.g. "problem", "sweep", "base") saying what to give instead."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ProblemError(where, f"file {path} not found; check the path") from None
    except IsADirectoryError:
        raise ProblemError(where, f"{path} is a directory; give {what}") from None
    except UnicodeDecodeError:
        raise ProblemError(where, f"{path} is not a text file; give {what}") from None
    except json.JSONDecodeError as err:
        raise ProblemError(where, f"{path} is not valid JSON (line {err.lineno}: {err.msg})") from None
