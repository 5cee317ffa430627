"""Seeded point generators (pure numpy): the explorer's scene editor and sweep files use the same ones.

Every generator returns an (n, 2) array; ``generate`` dispatches by name and places the cloud at
``center`` with a length ``scale`` (the side of the square, the radius of the ring, ...). The shapes
follow the paper's examples: a grid on a square (Figs. 1-4), Gaussian samples (Fig. 2), mixtures,
a ring, two moons, and evenly spaced points on a segment, ends included (Fig. 9's uniform grids).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Generator = Callable[[int, np.random.Generator], np.ndarray]


def grid_square(n: int, rng: np.random.Generator) -> np.ndarray:
    """The first n points of a ceil(sqrt n)^2 regular grid on [-1/2, 1/2]^2 (cell centres)."""
    k = int(np.ceil(np.sqrt(max(n, 1))))
    axis = (np.arange(k) + 0.5) / k - 0.5
    xx, yy = np.meshgrid(axis, axis)
    return np.column_stack([xx.ravel(), yy.ravel()])[:n]


def uniform_square(n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniform samples on [-1/2, 1/2]^2."""
    return rng.uniform(-0.5, 0.5, size=(n, 2))


def gaussian(n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of N(0, (1/4)^2 I)."""
    return rng.normal(0.0, 0.25, size=(n, 2))


def mixture(n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of an equal mixture of three Gaussians (std 0.1) at the corners of a triangle."""
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    means = 0.35 * np.column_stack([np.cos(angles), np.sin(angles)])
    which = rng.integers(0, 3, size=n)
    return means[which] + rng.normal(0.0, 0.1, size=(n, 2))


def ring(n: int, rng: np.random.Generator) -> np.ndarray:
    """n points evenly spaced on the circle of radius 1/2, jittered radially (std 0.02)."""
    theta = 2 * np.pi * (np.arange(n) + rng.uniform()) / max(n, 1)
    r = 0.5 + rng.normal(0.0, 0.02, size=n)
    return np.column_stack([r * np.cos(theta), r * np.sin(theta)])


def two_moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """n points on two interleaved half circles (the classic 'two moons'), noise std 0.03, centred."""
    n1 = n // 2
    t1 = np.pi * rng.uniform(size=n1)
    t2 = np.pi * rng.uniform(size=n - n1)
    upper = np.column_stack([np.cos(t1), np.sin(t1)])
    lower = np.column_stack([1.0 - np.cos(t2), 0.5 - np.sin(t2)])
    pts = np.vstack([upper, lower]) - np.array([0.5, 0.25])
    return 0.4 * pts + rng.normal(0.0, 0.03 * 0.4, size=(n, 2))


def line(n: int, rng: np.random.Generator) -> np.ndarray:
    """n evenly spaced points from -1/2 to 1/2 on the first axis, both ends included (Fig. 9: with
    ``dim`` 1, centre 0.5 and scale 1 this is {0, 1/(n-1), ..., 1})."""
    x = np.linspace(-0.5, 0.5, n) if n > 1 else np.zeros(n)
    return np.column_stack([x, np.zeros(n)])


GENERATORS: dict[str, Generator] = {
    "grid": grid_square, "uniform": uniform_square, "gaussian": gaussian,
    "mixture": mixture, "ring": ring, "two moons": two_moons, "line": line,
}


def generate(shape: str, n: int, seed: int = 0, center: tuple[float, float] = (0.0, 0.0),
             scale: float = 1.0, dim: int = 2) -> np.ndarray:
    """n points of the named shape, scaled by ``scale`` about ``center``; ``dim`` = 1 keeps the first
    coordinate (a 1-D cloud). Raises ValueError for an unknown kind or n < 1."""
    if shape not in GENERATORS:
        raise ValueError(f"generator: unknown kind {shape!r}; use one of {', '.join(GENERATORS)}")
    if n < 1:
        raise ValueError("generator: the number of points must be at least 1")
    rng = np.random.default_rng(seed)
    if dim == 1 and shape == "grid":  # a 1-D grid: n evenly spaced cell centres
        raw = np.column_stack([(np.arange(n) + 0.5) / n - 0.5, np.zeros(n)])
    else:
        raw = GENERATORS[shape](int(n), rng)
    pts = raw * scale + np.asarray(center, float)
    return pts[:, :dim].copy()


#: At most this many points from one brush stroke (a long, wide stroke at a fine spacing).
BRUSH_MAX_POINTS = 5000


def brush_points(stroke: np.ndarray, spacing: float, width: float) -> np.ndarray:
    """Points painted by a freehand ``stroke`` (k, 2): a band of the given ``width`` along the stroke,
    filled with a lattice of the given ``spacing`` (density 1/spacing² per unit area): stations every
    ``spacing`` of arc length, and at each station max(1, round(width / spacing)) points across the
    stroke, ``spacing`` apart, centred on it. A single click (a stroke of no length) paints one row.
    At most ``BRUSH_MAX_POINTS``; raises ValueError for a spacing or width that is not positive."""
    if not spacing > 0:
        raise ValueError(f"brush spacing: must be > 0 (got {spacing})")
    if not width >= 0:
        raise ValueError(f"brush width: must be >= 0 (got {width})")
    stroke = np.asarray(stroke, dtype=float).reshape(-1, 2)
    stroke = stroke[np.all(np.isfinite(stroke), axis=1)]
    if len(stroke) == 0:
        return np.zeros((0, 2))
    steps = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    stations = np.arange(0.0, arc[-1] + 1e-12 * max(arc[-1], 1.0), spacing)
    x = np.interp(stations, arc, stroke[:, 0])
    y = np.interp(stations, arc, stroke[:, 1])
    # unit normals from the stroke's direction at each station (any normal for a click)
    dx, dy = np.gradient(x) if len(x) > 1 else np.zeros(1), np.gradient(y) if len(y) > 1 else np.ones(1)
    norm = np.hypot(dx, dy)
    norm[norm == 0] = 1.0
    normal = np.column_stack([-dy / norm, dx / norm])
    rows = max(1, int(round(width / spacing)))
    offsets = (np.arange(rows) - (rows - 1) / 2) * spacing
    points = (np.column_stack([x, y])[:, None, :] + offsets[None, :, None] * normal[:, None, :]).reshape(-1, 2)
    if len(points) > BRUSH_MAX_POINTS:
        raise ValueError(f"brush: the stroke would paint {len(points)} points (at most {BRUSH_MAX_POINTS}); "
                         "increase the brush spacing or shorten the stroke")
    return points
