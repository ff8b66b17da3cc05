"""Messy meshes, made in code, each with its analytic inside: what users bring that is not clean.

A plain module shared by ``tests/geometry/test_orientation.py`` (small versions, in CI) and
``benchmarks/robustness.py --messy`` (by hand, with fits and the large meshes). Every shape is built
from unit spheres (icospheres, whose faces are consistently outward), so its inside is known exactly:
:attr:`MessyShape.inside` says which points are in it, or is None where no inside is defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import trimesh

from lipsdf.geometry import TriangleMesh

Inside = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MessyShape:
    """A messy mesh, its analytic inside (None: none is defined), and what lipsdf should say about it."""

    name: str
    mesh: TriangleMesh
    inside: Optional[Inside]
    expect: str  # a phrase of the report's lines, or of the refusal where there is no inside
    defined: Optional[Inside] = None  # where ``inside`` holds (None: everywhere); a hole's mouth has no side

    def agreement(self, points: np.ndarray, inside: np.ndarray) -> float:
        """The share of ``points`` where the labels ``inside`` agree with the analytic inside (where defined)."""
        where = np.ones(len(points), dtype=bool) if self.defined is None else self.defined(points)
        return float(np.mean(inside[where] == self.inside(points[where])))


def icosphere(subdivisions: int, radius: float = 1.0, center=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and outward faces of an icosphere (``20 * 4**subdivisions`` triangles)."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(sphere.vertices) + np.asarray(center), np.asarray(sphere.faces, dtype=np.int64)


def _ball(center, radius: float) -> Inside:
    return lambda x: np.linalg.norm(x - np.asarray(center), axis=1) < radius


def _joined(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for v, f in parts:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.vstack(vertices), np.vstack(faces)


def mobius_strip(n: int = 96) -> TriangleMesh:
    """A Möbius strip: one side, no inside, no consistent orientation."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, n, endpoint=False), [-0.3, 0.3], indexing="ij")
    points = np.stack([(1 + v * np.cos(u / 2)) * np.cos(u), (1 + v * np.cos(u / 2)) * np.sin(u),
                       v * np.sin(u / 2)], axis=-1).reshape(-1, 3)
    i = np.arange(n)
    a, b, c, d = 2 * i, 2 * i + 1, 2 * ((i + 1) % n), 2 * ((i + 1) % n) + 1
    c, d = np.where(i == n - 1, d, c), np.where(i == n - 1, c, d)  # the half twist joins top to bottom
    return TriangleMesh(points, np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]))


def messy_shapes(subdivisions: int = 4, seed: int = 0) -> list[MessyShape]:
    """The suite, at ``20 * 4**subdivisions`` triangles a sphere."""
    rng = np.random.default_rng(seed)
    v, f = icosphere(subdivisions)
    unit = _ball((0, 0, 0), 1.0)
    half = f.copy()
    half[::2] = half[::2, ::-1]
    scattered = f.copy()
    flip = rng.random(len(f)) < 0.3
    scattered[flip] = scattered[flip, ::-1]
    left, right = icosphere(subdivisions, 0.7, (-0.4, 0, 0)), icosphere(subdivisions, 0.7, (0.4, 0, 0))
    union = lambda x: _ball((-0.4, 0, 0), 0.7)(x) | _ball((0.4, 0, 0), 0.7)(x)  # noqa: E731
    shell = lambda x: unit(x) & ~_ball((0, 0, 0), 0.5)(x)  # noqa: E731
    inner = icosphere(subdivisions, 0.5)
    duplicated = np.vstack([f, f[rng.choice(len(f), len(f) // 5, replace=False)]])
    # slivers: zero-area triangles (three points on an edge) and near-zero ones, stitched to the surface
    a, b = f[:, 0], f[:, 1]
    mid = len(v) + np.arange(len(f))
    sliver_vertices = np.vstack([v, 0.5 * (v[a] + v[b])])
    slivers = np.vstack([f, np.stack([a, mid, b], 1)])
    kept = v[f].mean(axis=1)[:, 2] < 0.9  # a cap cut off: a hole of a tenth of the radius in height
    far = rng.uniform(3, 4, size=(2000, 3))
    return [
        MessyShape("inverted sphere", TriangleMesh(v, f[:, ::-1]), unit, "inverted"),
        MessyShape("half-flipped sphere", TriangleMesh(v, half), unit, "inconsistently oriented"),
        MessyShape("30% of faces flipped", TriangleMesh(v, scattered), unit, "inconsistently oriented"),
        MessyShape("overlapping spheres", TriangleMesh(*_joined(left, right)), union, "winding number reaches 2"),
        MessyShape("overlapping spheres, one inverted",
                   TriangleMesh(*_joined(left, (right[0], right[1][:, ::-1]))), union, "1 inverted component"),
        MessyShape("nested shells (a cavity)", TriangleMesh(*_joined((v, f), (inner[0], inner[1][:, ::-1]))), shell,
                   "1 inside another"),
        MessyShape("nested shells, inverted", TriangleMesh(*_joined((v, f[:, ::-1]), inner)), shell, "inverted"),
        MessyShape("duplicated faces", TriangleMesh(v, duplicated), unit, "non-manifold edges"),
        MessyShape("zero-area slivers", TriangleMesh(sliver_vertices, slivers), unit, "mesh:"),
        MessyShape("open: a cap cut off", TriangleMesh(v, f[kept]), unit, "open",
                   defined=lambda x: (np.abs(x[:, 2] - 0.9) > 0.15) | (np.hypot(x[:, 0], x[:, 1]) > 0.5)),
        MessyShape("isolated vertex cloud", TriangleMesh(np.vstack([v, far]), f[:, ::-1]), unit, "inverted"),
        MessyShape("Möbius strip", mobius_strip(), None, "cannot be oriented consistently"),
    ]
