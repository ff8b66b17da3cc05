"""Procedural shapes: analytic test cases and the demo's built-in shapes.

Every function returns a shape in the units of its arguments. The same
shapes are reachable from the command line as ``builtin:NAME`` (see
:data:`BUILTIN_SHAPES`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from lipsdf.errors import InputFileError
from lipsdf.geometry.shapes import Polyline, Shape, TriangleMesh


def _loop_edges(n: int, offset: int = 0) -> np.ndarray:
    i = np.arange(n)
    return np.column_stack([i, (i + 1) % n]) + offset


def circle(radius: float = 1.0, n: int = 256, center: tuple[float, float] = (0.0, 0.0)) -> Polyline:
    """Regular ``n``-gon inscribed in a circle, counter-clockwise.

    Examples
    --------
    >>> circle(2.0, n=64).vertices.shape
    (64, 2)
    """
    t = 2 * np.pi * np.arange(n) / n
    vertices = np.column_stack([np.cos(t), np.sin(t)]) * radius + np.asarray(center, dtype=float)
    return Polyline(vertices, _loop_edges(n))


def rectangle(width: float = 2.0, height: float = 1.0) -> Polyline:
    """Axis-aligned rectangle centred at the origin.

    Examples
    --------
    >>> rectangle(2.0, 1.0).bounds()[1]
    array([1. , 0.5])
    """
    w, h = width / 2, height / 2
    return Polyline(np.array([[-w, -h], [w, -h], [w, h], [-w, h]]), _loop_edges(4))


def flower(petals: int = 5, radius: float = 1.0, amplitude: float = 0.3, n: int = 400) -> Polyline:
    """A closed star-shaped curve ``r(t) = radius (1 + amplitude cos(petals t))`` with a round hole.

    Examples
    --------
    >>> flower().n_components
    2
    """
    t = 2 * np.pi * np.arange(n) / n
    r = radius * (1 + amplitude * np.cos(petals * t))
    outer = np.column_stack([r * np.cos(t), r * np.sin(t)])
    m = n // 4
    s = 2 * np.pi * np.arange(m) / m
    hole = 0.3 * radius * np.column_stack([np.cos(s), np.sin(s)])
    return Polyline(np.vstack([outer, hole]), np.vstack([_loop_edges(n), _loop_edges(m, n)]))


def segment(a: tuple[float, ...] = (0.0, 0.0, 0.0), b: tuple[float, ...] = (1.0, 0.0, 0.0)) -> Polyline:
    """A single straight segment from ``a`` to ``b`` (2D or 3D)."""
    return Polyline(np.array([a, b], dtype=float), np.array([[0, 1]]))


def helix(radius: float = 1.0, pitch: float = 0.5, turns: float = 3.0, n: int = 300) -> Polyline:
    """Open 3D helix around the z axis, sampled with ``n`` segments.

    Examples
    --------
    >>> helix(n=10).edges.shape
    (10, 2)
    """
    t = 2 * np.pi * turns * np.arange(n + 1) / n
    vertices = np.column_stack([radius * np.cos(t), radius * np.sin(t), pitch * t / (2 * np.pi)])
    i = np.arange(n)
    return Polyline(vertices, np.column_stack([i, i + 1]))


def _grid_faces(n_u: int, n_v: int, wrap_u: bool, wrap_v: bool) -> np.ndarray:
    """Two triangles per cell of an (n_u x n_v) vertex grid, index ``u * n_v + v``.

    Triangles follow the orientation of ``dP/du x dP/dv``.
    """
    u, v = np.meshgrid(np.arange(n_u if wrap_u else n_u - 1), np.arange(n_v if wrap_v else n_v - 1), indexing="ij")
    u, v = u.ravel(), v.ravel()
    u1, v1 = (u + 1) % n_u, (v + 1) % n_v
    a, b, c, d = u * n_v + v, u1 * n_v + v, u1 * n_v + v1, u * n_v + v1
    return np.vstack([np.column_stack([a, b, c]), np.column_stack([a, c, d])])


def sphere(radius: float = 1.0, n_theta: int = 32, n_phi: int = 64) -> TriangleMesh:
    """UV sphere with outward-facing triangles, poles included.

    Examples
    --------
    >>> mesh = sphere(n_theta=8, n_phi=16)
    >>> bool(np.allclose(np.linalg.norm(mesh.vertices, axis=1), 1.0))
    True
    """
    theta = np.pi * np.arange(1, n_theta) / n_theta
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    rings = np.column_stack([(np.sin(th) * np.cos(ph)).ravel(), (np.sin(th) * np.sin(ph)).ravel(), np.cos(th).ravel()])
    north, south = len(rings), len(rings) + 1
    vertices = np.vstack([rings, [[0, 0, 1], [0, 0, -1]]]) * radius
    body = _grid_faces(n_theta - 1, n_phi, wrap_u=False, wrap_v=True)
    j = np.arange(n_phi)
    last = (n_theta - 2) * n_phi
    top = np.column_stack([np.full(n_phi, north), j, (j + 1) % n_phi])
    bottom = np.column_stack([np.full(n_phi, south), last + (j + 1) % n_phi, last + j])
    return TriangleMesh(vertices, np.vstack([top, body, bottom]))


def torus(major: float = 1.0, minor: float = 0.35, n_u: int = 96, n_v: int = 48) -> TriangleMesh:
    """Torus around the z axis with outward-facing triangles.

    Examples
    --------
    >>> torus(n_u=8, n_v=6).faces.shape
    (96, 3)
    """
    u = 2 * np.pi * np.arange(n_u) / n_u
    v = 2 * np.pi * np.arange(n_v) / n_v
    uu, vv = np.meshgrid(u, v, indexing="ij")
    ring = major + minor * np.cos(vv)
    vertices = np.column_stack([(ring * np.cos(uu)).ravel(), (ring * np.sin(uu)).ravel(), (minor * np.sin(vv)).ravel()])
    return TriangleMesh(vertices, _grid_faces(n_u, n_v, wrap_u=True, wrap_v=True))


def box(size: tuple[float, float, float] = (2.0, 1.0, 1.0)) -> TriangleMesh:
    """Axis-aligned box centred at the origin, 12 outward-facing triangles.

    Examples
    --------
    >>> box().faces.shape
    (12, 3)
    """
    half = np.asarray(size, dtype=float) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float) * half
    faces = np.array([
        [0, 1, 3], [0, 3, 2],  # x = -
        [4, 6, 7], [4, 7, 5],  # x = +
        [0, 4, 5], [0, 5, 1],  # y = -
        [2, 3, 7], [2, 7, 6],  # y = +
        [0, 2, 6], [0, 6, 4],  # z = -
        [1, 5, 7], [1, 7, 3],  # z = +
    ])
    return TriangleMesh(corners, faces)


BUILTIN_SHAPES: dict[str, Callable[[], Shape]] = {
    "circle": circle,
    "rectangle": rectangle,
    "flower": flower,
    "helix": helix,
    "sphere": sphere,
    "torus": torus,
    "box": box,
}

BUILTIN_PREFIX = "builtin:"


def builtin_shape(name: str) -> Shape:
    """The built-in shape called ``name`` (see :data:`BUILTIN_SHAPES`)."""
    if name not in BUILTIN_SHAPES:
        raise InputFileError(f"unknown built-in shape {name!r}; choose one of: {', '.join(BUILTIN_SHAPES)}")
    return BUILTIN_SHAPES[name]()
