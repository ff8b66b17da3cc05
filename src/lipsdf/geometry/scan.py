"""Distances estimated from a scan: points with oriented normals, and no surface between them.

A point cloud has no exact distance: the distance to the nearest point overestimates the distance to the
surface the points were taken from by up to half their spacing, and is noisy with them. Near the points
:class:`ScanDistance` reads instead the distance to their tangent planes, averaged over the
nearest points with Gaussian weights (a moving-least-squares estimate, as in Kolluri's IMLS surfaces): it
is exact for a plane, is signed by the normals, and averages the points' noise away. Farther out, where
the planes' average says nothing, it is the distance to the nearest point, signed by the winding number;
between the two, a smooth blend. ``lipsdf`` trains point clouds on these estimates with the same loss as
meshes (``fit-hinge``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from lipsdf.geometry.queries import GEOMETRY_BATCH_SIZE

NEIGHBOURS = 10  # points averaged; the bandwidth is each point's distance to its NEIGHBOURS-th neighbour
NEAR_BAND = 1.0  # bandwidths (from the nearest point) where the planes' average holds; blended over as many


class ScanDistance:
    """The estimated signed distance to the surface of ``points`` with outward ``normals``.

    Examples
    --------
    >>> xy = np.stack(np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-1, 1, 41)), -1).reshape(-1, 2)
    >>> plane = np.column_stack([xy, np.zeros(len(xy))])
    >>> scan = ScanDistance(plane, np.tile([0.0, 0.0, 1.0], (len(xy), 1)))
    >>> q = np.array([[0.013, 0.02, 0.03], [0.0, 0.0, -0.01]])
    >>> np.round(scan(q, far_sign=np.array([1.0, -1.0])), 4)   # exact for a plane, between its points too
    array([ 0.03, -0.01])
    """

    def __init__(self, points: np.ndarray, normals: np.ndarray, neighbours: int = NEIGHBOURS) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.normals = np.asarray(normals, dtype=np.float64)
        self.neighbours = min(neighbours, len(self.points))
        self.tree = cKDTree(self.points)
        if self.neighbours > 1:
            spacing = self.tree.query(self.points, k=self.neighbours + 1, workers=-1)[0][:, -1]
        else:
            spacing = np.ones(len(self.points))
        self.bandwidth = np.maximum(spacing, 1e-12)

    def __call__(self, queries: np.ndarray, far_sign: np.ndarray) -> np.ndarray:
        """Signed distances of ``queries``; ``far_sign`` (+1 outside, -1 inside: the winding number's) signs
        the points beyond the planes' band."""
        queries, far_sign = np.asarray(queries, dtype=np.float64), np.asarray(far_sign)
        out = np.empty(len(queries))
        for start in range(0, len(queries), GEOMETRY_BATCH_SIZE):  # batches bound the (n, k, 3) arrays
            part = slice(start, start + GEOMETRY_BATCH_SIZE)
            out[part] = self._batch(queries[part], far_sign[part])
        return out

    def _batch(self, queries: np.ndarray, far_sign: np.ndarray) -> np.ndarray:
        distance, index = self.tree.query(queries, k=self.neighbours, workers=-1)
        distance, index = distance.reshape(len(queries), -1), index.reshape(len(queries), -1)
        h = self.bandwidth[index[:, 0]]
        weights = np.exp(-(distance / h[:, None]) ** 2)
        offsets = np.einsum("qkd,qkd->qk", queries[:, None, :] - self.points[index], self.normals[index])
        planes = (weights * offsets).sum(1) / np.maximum(weights.sum(1), 1e-300)
        nearest = distance[:, 0]
        blend = np.clip((nearest - NEAR_BAND * h) / (NEAR_BAND * h), 0.0, 1.0)
        blend = blend * blend * (3 - 2 * blend)  # smoothstep
        return (1 - blend) * planes + blend * np.where(far_sign < 0, -nearest, nearest)
