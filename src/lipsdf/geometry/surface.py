"""Samples of a shape: on its surface, near it, and uniform in the unit box.

These are the geometric primitives every later stage draws from: training
sets (:mod:`lipsdf.sampling`), projections onto a field's level set, and the
evaluation of a field against its shape.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from lipsdf.geometry.shapes import Polyline, Shape, TriangleMesh


def surface_samples(shape: Shape, n: int, rng: np.random.Generator,
                    unoriented: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``n`` points on the shape (area- or length-uniform) and their unit normals (None where undefined).

    Normals are outward where the shape has an inside. With ``unoriented``,
    open 2D curves get normals too, of arbitrary sign.

    Examples
    --------
    >>> from lipsdf.geometry.primitives import sphere
    >>> points, normals = surface_samples(sphere(), 100, np.random.default_rng(0))
    >>> bool(np.all(np.linalg.norm(points, axis=1) <= 1.0 + 1e-12))
    True
    """
    if isinstance(shape, TriangleMesh):
        areas = shape.face_areas()
        faces = rng.choice(len(areas), size=n, p=areas / areas.sum())
        r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
        corners = shape.vertices[shape.faces[faces]]
        points = ((1 - r1)[:, None] * corners[:, 0] + (r1 * (1 - r2))[:, None] * corners[:, 1]
                  + (r1 * r2)[:, None] * corners[:, 2])
        return points, shape.face_normals()[faces]
    if isinstance(shape, Polyline):
        lengths = shape.segment_lengths()
        edges = rng.choice(len(lengths), size=n, p=lengths / lengths.sum())
        a, b = shape.vertices[shape.edges[edges, 0]], shape.vertices[shape.edges[edges, 1]]
        points = a + rng.random(n)[:, None] * (b - a)
        if shape.dim == 3 or not (shape.has_inside or unoriented):
            return points, None
        # Loops are oriented counter-clockwise around their inside: outward is the edge turned clockwise.
        tangent = (b - a) / lengths[edges, None]
        return points, np.column_stack([tangent[:, 1], -tangent[:, 0]])
    index = rng.choice(len(shape.points), size=n, replace=n > len(shape.points))
    normals = None if shape.normals is None else shape.normals[index]
    return shape.points[index], normals


def uniform_samples(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniform in the unit box ``[-1, 1]^dim``."""
    return rng.uniform(-1.0, 1.0, size=(n, dim))


def near_surface_samples(shape: Shape, n: int, sigmas: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """``n`` surface points moved by isotropic Gaussian noise, split evenly over ``sigmas``, kept in the box.

    Points that the noise pushes out of the box are drawn again (the noise is
    not clipped, which would pile points up on the box's faces).
    """
    groups = np.array_split(np.arange(n), len(sigmas))
    out = np.empty((n, shape.dim))
    for sigma, group in zip(sigmas, groups):
        filled = 0
        while filled < len(group):
            want = len(group) - filled
            base, _ = surface_samples(shape, 2 * want, rng)
            moved = base + rng.normal(scale=sigma, size=base.shape)
            moved = moved[np.all(np.abs(moved) <= 1.0, axis=1)][:want]
            out[group[filled: filled + len(moved)]] = moved
            filled += len(moved)
    return out[rng.permutation(n)]
