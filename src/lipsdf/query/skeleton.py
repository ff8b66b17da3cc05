"""Medial-axis (skeleton) sampling: the ridges of a signed distance field inside the shape.

A distance field has unit gradient everywhere except on the medial axis,
where the gradient jumps between the directions to two nearest surface
points. Differences taken across a grid cell see that jump: where two
directions meet at an angle ``theta``, the central-difference gradient has
norm about ``cos(theta / 2)``. Grid vertices inside the shape whose
central-difference gradient norm is below ``threshold`` are kept: this is the
theta-medial axis, which drops the faint branches that come from shallow
corners and noise (``threshold`` 0.8 keeps ridges sharper than about 74
degrees; a trained field, smooth across its ridges, shows them the same way).

Refinement moves each candidate onto its ridge: across a ridge the field has
a valley (its largest Hessian eigenvalue, from second differences on the same
grid, points across it), and a golden-section search along that direction
within one cell finds the valley floor. Candidates with no floor within the
cell (the field merely flat there, as trained fields can be deep inside) are
dropped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from lipsdf.errors import LipsdfError, ModeError
from lipsdf.field import DEFAULT_BATCH_SIZE, NeuralField
from lipsdf.query.contour import sample_grid_where
from lipsdf.query.grid import Device, field_grid, use_device

DEFAULT_RESOLUTION = {2: 256, 3: 96}
DEFAULT_THRESHOLD = 0.8
_SEARCH_STEPS = 20  # golden-section search, one evaluation each: the bracket shrinks to 0.618^20 ~ 7e-5


@dataclass
class Skeleton:
    """Points on the medial axis (world units), the radius of the maximal ball at each, and the cost."""

    points: np.ndarray
    radii: np.ndarray
    evaluations: int


def skeleton(field: NeuralField, resolution: Optional[int] = None, threshold: float = DEFAULT_THRESHOLD,
             refine: bool = True, bounds: Optional[Sequence[float]] = None, batch_size: int = DEFAULT_BATCH_SIZE,
             device: Device = None, quiet: bool = True) -> Skeleton:
    """Sample the medial axis of a signed field's inside.

    Parameters
    ----------
    field : a signed field.
    resolution : grid vertices along the longest side of the box (default 256 in 2D, 96 in 3D);
        the skeleton is found to within a cell before refinement.
    threshold : keep vertices whose central-difference gradient norm is below this (0 < T < 1).
    refine : move each point onto its ridge (a few dozen evaluations per point).
    bounds : ``lower..., upper...`` in world units (default: the field's box).

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.geometry.normalize import Normalization
    >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 1.0), config)
    >>> result = skeleton(field, resolution=32)
    >>> result.points.shape[1], len(result.points) == len(result.radii)
    (2, True)
    """
    if field.kind != "signed":
        raise ModeError("the skeleton is the medial axis of a shape's inside, which needs a signed field; "
                        "train on a signed dataset")
    if not 0 < threshold < 1:
        raise LipsdfError(f"the gradient-norm threshold must be between 0 and 1, got {threshold}")
    field = use_device(field, device)
    grid = field_grid(field, resolution or DEFAULT_RESOLUTION[field.dim], bounds)
    h = grid.spacing
    # Exact values wherever a difference stencil around an inside vertex reaches (within sqrt(d) cells).
    reach = np.sqrt(grid.dim) * h
    sampling = sample_grid_where(field, grid, lambda values, radii: values - radii < reach,
                                 prune=field.is_lipschitz, batch_size=batch_size, quiet=quiet)
    values = sampling.values.astype(np.float64)
    gradient = np.stack(np.gradient(values, h), axis=-1)
    interior = np.zeros(grid.shape, bool)
    interior[tuple(slice(1, -1) for _ in range(grid.dim))] = True
    candidates = interior & (values < 0) & (np.linalg.norm(gradient, axis=-1) < threshold)
    index = np.flatnonzero(candidates)
    points = grid.vertices(index)
    evaluations = sampling.evaluations
    if refine and len(index):
        directions = _across_ridge(values, index, h)
        points, floor, cost = _valley_floor(field, points, directions, h, batch_size)
        points = points[floor]  # no valley within a cell: a flat slope, not a ridge
        evaluations += cost
    radii = -field(points, batch_size=batch_size) if len(points) else np.zeros(0)
    evaluations += len(points)
    inside = radii > 0
    return Skeleton(points[inside], radii[inside], evaluations)


def _across_ridge(values: np.ndarray, index: np.ndarray, h: float) -> np.ndarray:
    """Unit eigenvector of the largest Hessian eigenvalue (second differences on the grid) at flat vertex indices."""
    dim = values.ndim
    multi = np.stack(np.unravel_index(index, values.shape), axis=-1)

    def at(offset) -> np.ndarray:
        return values[tuple((multi + offset).T)]

    eye = np.eye(dim, dtype=int)
    hessian = np.empty((len(index), dim, dim))
    centre = at(np.zeros(dim, int))
    for i in range(dim):
        hessian[:, i, i] = (at(eye[i]) - 2 * centre + at(-eye[i])) / h ** 2
    for i, j in itertools.combinations(range(dim), 2):
        mixed = (at(eye[i] + eye[j]) - at(eye[i] - eye[j]) - at(eye[j] - eye[i]) + at(-eye[i] - eye[j])) / (4 * h ** 2)
        hessian[:, i, j] = hessian[:, j, i] = mixed
    return np.linalg.eigh(hessian)[1][:, :, -1]


def _valley_floor(field: NeuralField, points: np.ndarray, directions: np.ndarray, h: float,
                  batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise ``f(x + s d)`` over ``s`` in ``[-h, h]`` by golden-section search, for all points at once.

    Returns the moved points, whether each minimum lies inside the bracket (a
    valley floor, not a slope that keeps falling past it), and the evaluations spent.
    """
    norm = field.normalization
    start = torch.from_numpy(norm.to_unit(points).astype(np.float32)).to(field.device)
    step = torch.from_numpy((directions / norm.scale).astype(np.float64)).to(field.device)

    def f(s: torch.Tensor) -> torch.Tensor:
        return field.unit_values(start + (s[:, None] * step).float(), batch_size)

    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    low = torch.full((len(points),), -h, dtype=torch.float64, device=field.device)
    high = -low
    c, d = high - ratio * (high - low), low + ratio * (high - low)
    fc, fd = f(c), f(d)
    for _ in range(_SEARCH_STEPS):
        left = fc < fd  # the minimum is in [low, d]
        high, low = torch.where(left, d, high), torch.where(left, low, c)
        c_new, d_new = high - ratio * (high - low), low + ratio * (high - low)
        probe = torch.where(left, c_new, d_new)  # the one point of the pair that is new
        value = f(probe)
        c, d = torch.where(left, c_new, d), torch.where(left, c, d_new)
        fc, fd = torch.where(left, value, fd), torch.where(left, fc, value)
    s = (0.5 * (low + high)).cpu().numpy()
    floor = np.abs(s) < h * (1 - 2 * ratio ** _SEARCH_STEPS) - 1e-12
    return points + s[:, None] * directions, floor, 2 + _SEARCH_STEPS * len(points)
