"""Query points in batches, in spatial order: how every exact geometric query is run.

libigl's trees (distances, winding numbers) answer a query by walking from the root; consecutive queries
that lie near each other walk the same nodes, which stay in the CPU's caches. :func:`batched` therefore
sorts the queries along a Morton curve (:func:`morton_order`) before it cuts them into batches, and puts
the answers back in the caller's order: on a mesh of a million triangles the same distances take half the
time (``benchmarks/results/scale.md``). Each answer depends on its own point only, so the order changes
no value.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

GEOMETRY_BATCH_SIZE = 1 << 18  # query points per chunk of exact distances and winding numbers
Kernel = Callable[[np.ndarray], np.ndarray]


def morton_order(points: np.ndarray) -> np.ndarray:
    """The permutation that sorts ``points`` (n, d) along a Morton (Z-order) curve of their bounding box.

    Examples
    --------
    >>> morton_order(np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    array([1, 3, 2, 0])
    """
    points = np.asarray(points, dtype=np.float64)
    dim = points.shape[1]
    bits = 63 // dim
    lo, hi = points.min(axis=0, initial=np.inf), points.max(axis=0, initial=-np.inf)
    scale = np.where(hi > lo, hi - lo, 1.0)
    cells = ((points - lo) / scale * ((1 << bits) - 1)).astype(np.uint64)
    code = np.zeros(len(points), dtype=np.uint64)
    for bit in range(bits):
        for axis in range(dim):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(bit * dim + axis)
    return np.argsort(code, kind="stable")


def batched(fn: Kernel, points: np.ndarray, batch_size: int = GEOMETRY_BATCH_SIZE,
            progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """``fn`` of ``points``, one float64 value a point, computed in Morton order in batches of
    ``batch_size`` rows (bounded memory) and returned in the order of ``points``.

    Examples
    --------
    >>> points = np.random.default_rng(0).normal(size=(1000, 3))
    >>> values = batched(lambda q: np.linalg.norm(q, axis=1), points, batch_size=64)
    >>> bool(np.array_equal(values, np.linalg.norm(points, axis=1)))
    True
    """
    points = np.asarray(points, dtype=np.float64)
    order = morton_order(points)
    ordered = np.ascontiguousarray(points[order])
    out = np.empty(len(points), dtype=np.float64)
    for start in range(0, len(points), batch_size):
        stop = min(start + batch_size, len(points))
        out[order[start:stop]] = fn(ordered[start:stop])
        if progress is not None:
            progress(stop - start)
    return out
