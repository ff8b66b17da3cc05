"""Generalized winding numbers on plain arrays: the lowest geometric layer.

* :func:`polyline_winding_number`: exact 2D winding number of directed segments.
* :func:`mesh_winding_number`: fast (hierarchical) generalized winding number of a triangle soup.
* :func:`point_cloud_winding`: the same for oriented points with areas, precomputed once.

These take arrays, not shapes, so that the shapes module can use them (to
orient the loops of a closed polyline) without importing anything above it.
"""

from __future__ import annotations

from typing import Callable

import igl
import numpy as np

GEOMETRY_BATCH_SIZE = 1 << 18  # query points per chunk of exact distances and winding numbers
Kernel = Callable[[np.ndarray], np.ndarray]


def batched(fn: Kernel, points: np.ndarray, batch_size: int = GEOMETRY_BATCH_SIZE,
            progress: Callable[[int], None] | None = None) -> np.ndarray:
    """``fn`` over ``points`` in batches of ``batch_size`` rows (bounded memory), as one float64 array."""
    points = np.ascontiguousarray(points, dtype=np.float64)
    out = np.empty(len(points), dtype=np.float64)
    for start in range(0, len(points), batch_size):
        stop = min(start + batch_size, len(points))
        out[start:stop] = fn(points[start:stop])
        if progress is not None:
            progress(stop - start)
    return out


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
    """A function of query points giving their fast generalized winding number with respect to triangles.

    Examples
    --------
    >>> tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.]])
    >>> faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    >>> np.round(mesh_winding_kernel(tet, faces)(np.array([[0.1, 0.1, 0.1], [2, 2, 2.]])), 3)
    array([1., 0.])
    """
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    return lambda q: igl.fast_winding_number(vertices, faces, q)


def point_cloud_winding_kernel(points: np.ndarray, normals: np.ndarray, areas: np.ndarray) -> Kernel:
    """A function of query points giving the point-cloud winding number of oriented points with areas.

    The octree and its expansion coefficients are built once, here.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    normals = np.ascontiguousarray(normals, dtype=np.float64)
    areas = np.ascontiguousarray(areas, dtype=np.float64)
    indices, children, _, _ = igl.octree(points)
    centers, radii, coefficients = igl.fast_winding_number_precompute(points, normals, areas, indices, children)

    def kernel(q: np.ndarray) -> np.ndarray:
        return igl.fast_winding_number(points, normals, areas, indices, children, centers, radii, coefficients, q)

    return kernel
