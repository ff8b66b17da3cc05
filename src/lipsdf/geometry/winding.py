"""Generalized winding numbers on plain arrays.

* :func:`polyline_winding_number` / :func:`polyline_winding_kernel`: exact 2D winding number of directed
  segments.
* :func:`mesh_winding_kernel`: fast (hierarchical) generalized winding number of a triangle soup, its
  hierarchy built once.
* :func:`point_cloud_winding_kernel`: the same for oriented points with areas.

These take arrays, not shapes, so that the shapes module can use them (to
orient the loops of a closed polyline) without importing anything above it.
"""

from __future__ import annotations

import igl
import numpy as np

from lipsdf.geometry.queries import GEOMETRY_BATCH_SIZE, Kernel, batched


def polyline_winding_number(points: np.ndarray, vertices: np.ndarray, edges: np.ndarray,
                            batch_size: int = GEOMETRY_BATCH_SIZE) -> np.ndarray:
    """2D winding number of ``points`` with respect to directed segments.

    Examples
    --------
    >>> square = np.array([[0, 0], [1, 0], [1, 1], [0, 1.]])
    >>> edges = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
    >>> np.round(polyline_winding_number(np.array([[0.5, 0.5], [2, 2.]]), square, edges), 6)
    array([1., 0.])
    """
    return batched(polyline_winding_kernel(vertices, edges), points, batch_size)


def polyline_winding_kernel(vertices: np.ndarray, edges: np.ndarray) -> Kernel:
    """A function of query points giving their 2D winding number with respect to the segments."""
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    edges = np.ascontiguousarray(edges, dtype=np.int64)
    return lambda q: igl.winding_number(vertices, edges, q)


def mesh_winding_kernel(vertices: np.ndarray, faces: np.ndarray) -> Kernel:
    """A function of query points giving their fast generalized winding number with respect to triangles,
    whose hierarchy is built once, here.

    Examples
    --------
    >>> tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.]])
    >>> faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    >>> np.round(mesh_winding_kernel(tet, faces)(np.array([[0.1, 0.1, 0.1], [2, 2, 2.]])), 3)
    array([1., 0.])
    """
    hierarchy = igl.FastWindingNumberBVH()  # built once: each call rebuilt it before (benchmarks/results/scale.md)
    hierarchy.init(np.ascontiguousarray(vertices, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64))
    return hierarchy.winding_number


def point_cloud_winding_kernel(points: np.ndarray, normals: np.ndarray, areas: np.ndarray) -> Kernel:
    """A function of query points giving the point-cloud winding number of oriented points with areas.

    Each call builds libigl's octree and its expansion coefficients anew, inside one C++ call: libigl's
    separate precompute step, given the octree's cells as Python lists, takes over ten times as long as
    that whole call for the same numbers (``benchmarks/results/scale.md``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.normal(size=(2000, 3)); p /= np.linalg.norm(p, axis=1, keepdims=True)
    >>> winding = point_cloud_winding_kernel(p, p, np.full(2000, 4 * np.pi / 2000))
    >>> np.round(winding(np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])), 1)
    array([1., 0.])
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    normals = np.ascontiguousarray(normals, dtype=np.float64)
    areas = np.ascontiguousarray(areas, dtype=np.float64)

    def kernel(q: np.ndarray) -> np.ndarray:
        return igl.fast_winding_number(points, normals, areas, np.ascontiguousarray(q, dtype=np.float64))

    return kernel
